#!/usr/bin/env python3
"""Word count: counts words, lines and characters of input.text and lists the top words.

Input:  {"text": "...", ...}   (other keys are passed through)
Output: the input plus {"words": N, "lines": N, "chars": N, "topWords": [[word, count], ...]}
"""
import json
import re
import sys
from collections import Counter

def main():
    data = json.load(sys.stdin)
    text = data.get("text")
    if not isinstance(text, str):
        print("input.text must be a string", file=sys.stderr)
        return 1
    words = re.findall(r"[A-Za-z0-9']+", text)
    top = Counter(w.lower() for w in words if len(w) > 3).most_common(5)
    print(f"counted {len(words)} words", file=sys.stderr)
    out = dict(data)
    out.update({"words": len(words), "lines": text.count("\n") + 1, "chars": len(text), "topWords": top})
    json.dump(out, sys.stdout)
    return 0

if __name__ == "__main__":
    sys.exit(main())

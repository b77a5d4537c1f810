#!/usr/bin/env python3
"""Extractive summariser: keeps the sentences whose words are most frequent in the text.

Input:  {"text": "...", "sentences": 2}
Output: {"summary": "...", "text": "<the summary>", "sentences": N, "sourceWords": N}
Standard library only. Progress goes to stderr, which the engine keeps as the run's logs.
"""
import json
import re
import sys
from collections import Counter

STOP = set("a an and are as at be but by for from has have in is it its of on or that the this to was were will with".split())

def main():
    data = json.load(sys.stdin)
    text = data.get("text", "")
    if not isinstance(text, str) or not text.strip():
        print("input.text must be a non-empty string", file=sys.stderr)
        return 1
    want = int(data.get("sentences", 2))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    words = [w for w in re.findall(r"[a-z']+", text.lower()) if w not in STOP]
    freq = Counter(words)
    print(f"{len(sentences)} sentences, {len(words)} content words", file=sys.stderr)
    def score(s):
        ws = [w for w in re.findall(r"[a-z']+", s.lower()) if w not in STOP]
        return sum(freq[w] for w in ws) / (len(ws) or 1)
    best = sorted(range(len(sentences)), key=lambda i: -score(sentences[i]))[:want]
    summary = " ".join(sentences[i] for i in sorted(best))
    print(f"kept sentences {sorted(i + 1 for i in best)}", file=sys.stderr)
    json.dump({"summary": summary, "text": summary, "sentences": len(best), "sourceWords": len(text.split())}, sys.stdout)
    return 0

if __name__ == "__main__":
    sys.exit(main())

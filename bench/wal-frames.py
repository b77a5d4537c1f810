#!/usr/bin/env python3
"""How many WAL frames (4 KiB page writes) one group commit costs, and which B-tree they belong to.

Replays the engine's write pattern for echo runs on the engine's own schema (read from
src/engine/store/schema.rs): each commit inserts BATCH new runs and finishes the previous
commit's BATCH runs, as `POST /api/agents/echo` under load does. After a warm-up it reads the
frames each commit appends to the -wal file and names their pages with the dbstat table.

    python3 bench/wal-frames.py [BATCH=16] [COMMITS=60]

Every frame is a pwrite plus a checksum at commit and part of the fsync's writeback, so this is
the per-commit cost that grows with the schema (see BENCHMARKS.md, "The missed target").
"""
import os
import sqlite3
import struct
import sys
import tempfile
from collections import Counter
from pathlib import Path

BATCH = int(sys.argv[1]) if len(sys.argv) > 1 else 16
COMMITS = int(sys.argv[2]) if len(sys.argv) > 2 else 60
WARMUP = 200

src = (Path(__file__).resolve().parent.parent / "src/engine/store/schema.rs").read_text()
schema = "CREATE TABLE runs" + src.split('"CREATE TABLE runs')[1].split('",\n];')[0]

db = Path(tempfile.mkdtemp(prefix="wal-frames.")) / "restack.db"
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA wal_autocheckpoint=0")  # keep every frame in the WAL to count it
conn.executescript(schema)

seq = 0
previous: list[str] = []


def commit() -> None:
    """One group commit: BATCH inserts, then the previous batch's ends (as the executor writes them)."""
    global seq, previous
    conn.execute("BEGIN")
    ids = []
    for _ in range(BATCH):
        seq += 1
        run_id = "%012x-7000-8000-%016x" % (1_700_000_000_000 + seq // 16, seq)  # time-ordered, like v7
        ids.append(run_id)
        conn.execute(
            "INSERT INTO runs (id, kind, name, status, input, created_at) VALUES (?, 0, 'echo', 0, ?, ?)",
            (run_id, '{"x":1}', 1_700_000_000_000),
        )
    for run_id in previous:
        conn.execute(
            "UPDATE runs SET status = 2, output = ?, error = NULL, completed_at = ?,"
            " started_at = coalesce(started_at, ?), canceled = 0 WHERE id = ? AND status < 2",
            ('{"x":1}', 1_700_000_000_001, 1_700_000_000_001, run_id),
        )
    conn.execute("COMMIT")
    previous = ids


for _ in range(WARMUP):
    commit()
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
wal = Path(str(db) + "-wal")
page_size = conn.execute("PRAGMA page_size").fetchone()[0]
frames: Counter[str] = Counter()
for _ in range(COMMITS):
    start = max(wal.stat().st_size if wal.exists() else 0, 32)
    commit()
    owner = {page: name for name, page in conn.execute("SELECT name, pageno FROM dbstat")}
    data = wal.read_bytes()
    for off in range(start, len(data), 24 + page_size):
        (page,) = struct.unpack(">I", data[off : off + 4])
        frames[owner.get(page, "(freed)")] += 1

total = sum(frames.values())
print(f"batch {BATCH} runs/commit: {total / COMMITS:.2f} WAL frames per commit")
for name, n in frames.most_common():
    print(f"  {name:14} {n / COMMITS:5.2f}")
os.remove(db)
for suffix in ("-wal", "-shm"):
    Path(str(db) + suffix).unlink(missing_ok=True)
os.rmdir(db.parent)

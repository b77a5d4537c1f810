//! What one group commit costs the writer, by batch size: replays the writer's own statements
//! ([`restack::engine::store::writer::apply`]) on the engine's schema, each commit inserting
//! BATCH completed echo runs, as `POST /api/agents/echo` under load does. Prints the writer's
//! CPU per run (user and system, from `getrusage`), so the fixed per-commit part shows as the
//! difference between batch sizes; then the WAL frames (page writes) one commit appends, by the
//! B-tree each page belongs to (SQLite's `dbstat`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use restack::engine::notify::Notifier;
use restack::engine::store::ids::Mint;
use restack::engine::store::writer::apply;
use restack::engine::store::{Op, Store};
use rusqlite::Connection;

use crate::echo_ops::echo_run;

/// Runs per batch size for the timing: many checkpoints, a few seconds at the smallest batch.
const RUNS: usize = 40_000;
/// Commits whose frames are counted, after the timing.
const COUNTED: usize = 50;

pub fn run(batches: &[usize]) -> Result<()> {
    for &batch in batches {
        let dir = tempfile::tempdir()?;
        // The engine creates and migrates the database; the replay then writes it directly.
        Store::open(dir.path(), true, Arc::new(Notifier::default()))?.close();
        let db = dir.path().join("restack.db");
        let mut conn = Connection::open(&db)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;

        let mut mint = Mint::after(0);
        let (cpu0, t0) = (cpu(), Instant::now());
        for _ in 0..RUNS / batch {
            commit(&mut conn, &mut mint, batch)?;
        }
        let (cpu1, wall) = (cpu(), t0.elapsed().as_secs_f64());
        let commits = (RUNS / batch) as f64;
        let runs = commits * batch as f64;
        println!(
            "commit_batch_{batch}: {:.0} runs/s, writer cpu per run {:.1} us (user {:.1}, system {:.1}), wall per commit {:.0} us",
            runs / wall,
            (cpu1.0 + cpu1.1 - cpu0.0 - cpu0.1) / runs * 1e6,
            (cpu1.0 - cpu0.0) / runs * 1e6,
            (cpu1.1 - cpu0.1) / runs * 1e6,
            wall / commits * 1e6,
        );

        // Keep every frame in the WAL from here on, and read back what each commit appended.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let wal = dir.path().join("restack.db-wal");
        let mut frames: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..COUNTED {
            let start = std::fs::metadata(&wal).map_or(0, |m| m.len()).max(32);
            commit(&mut conn, &mut mint, batch)?;
            let owner: BTreeMap<u32, String> = conn
                .prepare("SELECT pageno, name FROM dbstat")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let bytes = std::fs::read(&wal)?;
            for frame in bytes[start as usize..].chunks(24 + page_size as usize) {
                let page = u32::from_be_bytes(frame[..4].try_into()?);
                let name = owner.get(&page).map_or("(freed)", String::as_str);
                *frames.entry(name.to_string()).or_default() += 1;
            }
        }
        let per_commit = |n: usize| n as f64 / COUNTED as f64;
        let by_tree: Vec<String> = frames
            .iter()
            .map(|(name, &n)| format!("{name} {:.2}", per_commit(n)))
            .collect();
        println!(
            "commit_batch_{batch}_wal_frames: {:.2} per commit ({})",
            per_commit(frames.values().sum()),
            by_tree.join(", ")
        );
    }
    Ok(())
}

/// One group commit of BATCH new echo runs. (The by-name index the writer fills between
/// commits is not part of it.)
fn commit(conn: &mut Connection, mint: &mut Mint, batch: usize) -> Result<()> {
    let tx = conn.transaction()?;
    for _ in 0..batch {
        let (seq, id) = mint.next_id();
        let run = echo_run(1_700_000_000_000);
        apply(&tx, &Op::Insert { seq, id, run })?;
    }
    tx.commit()?;
    Ok(())
}

/// This process's (user, system) CPU seconds.
fn cpu() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(r.ru_utime), secs(r.ru_stime))
}

//! What one group commit costs the writer, by batch size: replays the writer's own statements
//! ([`restack::engine::store::writer::apply`]) on the engine's schema, each commit inserting
//! BATCH echo runs and finishing the previous commit's BATCH, as `POST /api/agents/echo` under
//! load does. Prints the writer's CPU per run (user and system, from `getrusage`), so the fixed
//! per-commit part (WAL frames, the `fsync`) shows as the difference between batch sizes.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use restack::api::{Kind, RunStatus};
use restack::engine::notify::Notifier;
use restack::engine::store::writer::apply;
use restack::engine::store::{NewRun, Op, Store};

/// Runs per batch size: enough for many checkpoints, a few seconds at the smallest batch.
const RUNS: usize = 40_000;

pub fn run(batches: &[usize]) -> Result<()> {
    for &batch in batches {
        let dir = tempfile::tempdir()?;
        // The engine creates and migrates the database; the replay then writes it directly.
        Store::open(dir.path(), true, Arc::new(Notifier::default()))?.close();
        let mut conn = rusqlite::Connection::open(dir.path().join("restack.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (cpu0, t0) = (cpu(), Instant::now());
        let mut previous: Vec<String> = Vec::new();
        let mut commits = 0;
        for chunk in 0..RUNS / batch {
            let tx = conn.transaction()?;
            let ids: Vec<String> = (0..batch)
                .map(|_| uuid::Uuid::now_v7().to_string())
                .collect();
            for id in &ids {
                apply(&tx, &insert(id, chunk as i64))?;
            }
            for id in previous.drain(..) {
                apply(&tx, &finish(id))?;
            }
            tx.commit()?;
            previous = ids;
            commits += 1;
        }
        let (cpu1, wall) = (cpu(), t0.elapsed().as_secs_f64());
        let runs = (commits * batch) as f64;
        println!(
            "commit_batch_{batch}: {:.0} runs/s, writer cpu per run {:.1} us (user {:.1}, system {:.1}), wall per commit {:.0} us",
            runs / wall,
            (cpu1.0 + cpu1.1 - cpu0.0 - cpu0.1) / runs * 1e6,
            (cpu1.0 - cpu0.0) / runs * 1e6,
            (cpu1.1 - cpu0.1) / runs * 1e6,
            wall / commits as f64 * 1e6,
        );
    }
    Ok(())
}

fn insert(id: &str, at: i64) -> Op {
    Op::Insert(NewRun {
        id: id.to_string(),
        kind: Kind::Agent,
        name: "echo".into(),
        input: r#"{"x":1}"#.into(),
        created_at: 1_700_000_000_000 + at,
    })
}

fn finish(id: String) -> Op {
    Op::Finish {
        id,
        status: RunStatus::Completed,
        output: Some(r#"{"x":1}"#.into()),
        error: None,
        at: 1_700_000_000_001,
        canceled: false,
        step: None,
    }
}

/// This process's (user, system) CPU seconds.
fn cpu() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(r.ru_utime), secs(r.ru_stime))
}

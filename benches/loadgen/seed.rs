//! Fills a data directory with completed echo runs through `restack::engine::store`, so the
//! rows, indexes and schema are exactly what the engine itself writes.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use restack::api::now_ms;
use restack::engine::notify::Notifier;
use restack::engine::store::Store;

use crate::echo_ops::echo_run;

/// Runs written between two waits for the writer; bounds the queued ops held in memory.
const CHUNK: usize = 50_000;
/// IDs written to the sample file: enough for random fetches, few enough to read at once.
const SAMPLE: usize = 10_000;

pub async fn run(dir: &str, n: usize, ids_file: &str) -> Result<()> {
    let dir = Path::new(dir);
    std::fs::create_dir_all(dir)?;
    let t0 = Instant::now();
    // `normal` sync: a seed is rebuilt rather than recovered, and fsyncs would dominate.
    let store = Store::open(dir, false, Arc::new(Notifier::default()))?;
    let every = (n / SAMPLE).max(1);
    let mut ids = std::io::BufWriter::new(std::fs::File::create(ids_file)?);
    let mut done = 0;
    while done < n {
        let end = (done + CHUNK).min(n);
        let at = now_ms();
        for i in done..end {
            // Waiting for the chunk's last write waits for everything queued before it.
            let id = if i + 1 == end {
                store.insert(echo_run(at)).await?
            } else {
                store.insert_later(echo_run(at))?
            };
            if i % every == 0 {
                writeln!(ids, "{id}")?;
            }
        }
        done = end;
    }
    ids.flush()?;
    store.close();
    // Leave the data directory as a stopped engine would: everything in the main file.
    let conn = rusqlite::Connection::open(dir.join("restack.db"))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let secs = t0.elapsed().as_secs_f64();
    println!("seed_runs: {n}");
    println!("seed_s: {secs:.2}");
    println!("seed_runs_per_s: {:.0}", n as f64 / secs);
    println!(
        "seed_db_bytes: {}",
        std::fs::metadata(dir.join("restack.db"))?.len()
    );
    Ok(())
}

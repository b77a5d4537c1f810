//! The store's own share of a fetch: `Store::get_run` called in-process, with no HTTP, no
//! client and no wake-ups around it. Read beside the client-measured fetch, it tells how much
//! of a difference between two stores is the lookup itself.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, ensure};
use restack::engine::notify::Notifier;
use restack::engine::store::Store;

use crate::{fetch, stats};

/// Looks up every sampled ID once (so every sampled run's page is in memory, as for the
/// fetches), then `n` random sampled IDs, timing each `get_run`.
pub fn run(dir: &str, ids_file: &str, n: usize, prefix: &str) -> Result<()> {
    let ids = fetch::read_ids(ids_file)?;
    let store = Store::open(Path::new(dir), true, Arc::new(Notifier::default()))?;
    for id in &ids {
        ensure!(
            store.get_run(id)?.is_some(),
            "run {id} is not stored in {dir}"
        );
    }
    let mut pick = fetch::picker();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let id = &ids[pick(ids.len())];
        let t0 = Instant::now();
        let row = store.get_run(id)?;
        samples.push(t0.elapsed());
        ensure!(row.is_some(), "run {id} is not stored in {dir}");
    }
    store.close();
    stats::report(prefix, &mut samples);
    // A lookup takes a few microseconds, finer than the report's milliseconds show.
    println!(
        "{prefix}_p50_us: {:.2}",
        stats::pct(&samples, 50.0) * 1000.0
    );
    Ok(())
}

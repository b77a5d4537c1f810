//! The benchmark's load client: the measurements wrk cannot make (waiting for runs to finish,
//! per-run latency, seeding a large store, start-up time). Driven by `bench/run.sh`; every
//! figure is printed as a `name: value` line on stdout so the script can read it back.
//!
//! `cargo bench --bench loadgen -- MODE ARGS`; run it without arguments for the modes.

mod client;
mod commit;
mod e2e;
mod echo_ops;
mod fetch;
mod scale;
mod seed;
mod stats;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: loadgen MODE ARGS
  e2e     URL PATH N C          N runs of PATH (e.g. /api/workflows/pipe3) from C workers, each
                                scheduled and then awaited with ?wait= long-polls
  latency URL PATH N            sequential schedule -> completed, one at a time (after a warm-up)
  fetch   URL PATH IDS N        sequential GET PATH/ID over random IDs from the file IDS
  seed    DATA_DIR N IDS        store N completed echo runs through the crate's own store;
                                writes a sample of their IDs to IDS
  scale   BIN CONFIG DATA_DIR IDS N
                                start-up time (spawn -> /health answers, median of 3) of
                                `BIN serve` on DATA_DIR, then `fetch` with N requests, then
                                N/5 pages of `GET /api/runs?name=echo&limit=20&before=ID`
  commit  BATCH...              the writer's CPU per echo run when each commit carries BATCH
                                completed echo runs, sync = full; then the WAL frames one
                                such commit writes, by B-tree";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(mode) = args.first() else {
        bail!("{USAGE}");
    };
    let rest = &args[1..];
    let arg = |i: usize| -> Result<&str> {
        rest.get(i)
            .map(String::as_str)
            .with_context(|| format!("missing argument {}\n{USAGE}", i + 1))
    };
    let num = |i: usize| -> Result<usize> {
        arg(i)?
            .replace('_', "")
            .parse()
            .with_context(|| format!("argument {} is not a count", i + 1))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match mode.as_str() {
        "e2e" => rt.block_on(e2e::run(arg(0)?, arg(1)?, num(2)?, num(3)?, "e2e")),
        "latency" => rt.block_on(e2e::latency(arg(0)?, arg(1)?, num(2)?)),
        "fetch" => rt.block_on(fetch::run(arg(0)?, arg(1)?, arg(2)?, num(3)?, "fetch")),
        "seed" => rt.block_on(seed::run(arg(0)?, num(1)?, arg(2)?)),
        "scale" => rt.block_on(scale::run(arg(0)?, arg(1)?, arg(2)?, arg(3)?, num(4)?)),
        "commit" => commit::run(&(0..rest.len()).map(num).collect::<Result<Vec<_>>>()?),
        other => bail!("unknown mode {other:?}\n{USAGE}"),
    }
}

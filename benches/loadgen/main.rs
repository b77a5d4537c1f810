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
mod lookup;
mod scale;
mod seed;
mod stats;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: loadgen MODE ARGS
  e2e     URL PATH N C          N runs of PATH (e.g. /api/workflows/pipe3) from C workers, each
                                scheduled and then awaited with ?wait= long-polls
  latency URL PATH N            sequential schedule -> completed, one at a time (after a warm-up)
  fetch   URL PATH IDS N        sequential GET PATH/ID over random IDs from the file IDS,
                                after one GET of each (untimed)
  seed    DATA_DIR N IDS        store N completed echo runs through the crate's own store;
                                writes a sample of their IDs to IDS
  scale   [--one-cpu] BIN CONFIG N DATA_DIR IDS [DATA_DIR IDS ...]
                                start-up time (spawn -> /health answers, median of 3) of
                                `BIN serve` on each DATA_DIR; then, with all of them up and
                                taking turns request by request: the files' pages dropped,
                                fetches of as many IDs from each as the smallest IDS holds
                                (cold_fetch), one untimed GET of every ID, N random fetches
                                (fetch) and N/5 pages of `GET /api/runs?name=echo&limit=20
                                &before=ID` (list); figures per store as storeK_... (K from
                                1); --one-cpu keeps the client and the engines on one CPU
  lookup  DATA_DIR IDS N        N in-process `Store::get_run` calls for random IDs from IDS
                                (no HTTP): the store's own share of a fetch
  commit  BATCH...              the writer's CPU per echo run when each commit carries BATCH
                                completed echo runs, sync = full; then the WAL frames one
                                such commit writes, by B-tree";

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    // `scale`'s one option (see `scale::pin_to_this_cpu`).
    let one_cpu = args.iter().any(|a| a == "--one-cpu");
    args.retain(|a| a != "--one-cpu");
    if one_cpu && args.first().is_some_and(|m| m != "scale") {
        bail!("--one-cpu is an option of scale only\n{USAGE}");
    }
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
        "scale" => {
            let stores: Vec<(&str, &str)> = rest
                .get(3..)
                .unwrap_or(&[])
                .chunks(2)
                .map(|p| match p {
                    [dir, ids] => Ok((dir.as_str(), ids.as_str())),
                    _ => bail!("a DATA_DIR without its IDS file\n{USAGE}"),
                })
                .collect::<Result<_>>()?;
            if stores.is_empty() {
                bail!("scale needs at least one DATA_DIR IDS pair\n{USAGE}");
            }
            rt.block_on(scale::run(arg(0)?, arg(1)?, &stores, num(2)?, one_cpu))
        }
        "commit" => commit::run(&(0..rest.len()).map(num).collect::<Result<Vec<_>>>()?),
        "lookup" => lookup::run(arg(0)?, arg(1)?, num(2)?, "lookup"),
        other => bail!("unknown mode {other:?}\n{USAGE}"),
    }
}

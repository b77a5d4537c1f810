//! Fetching one stored run by ID, the read every `status` and `--follow` starts with.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::{client, stats};

/// An engine to read from and a sample of the run IDs stored in it.
pub struct Target {
    pub url: String,
    pub ids: Vec<String>,
}

impl Target {
    pub fn new(url: &str, ids_file: &str) -> Result<Target> {
        Ok(Target {
            url: url.to_string(),
            ids: read_ids(ids_file)?,
        })
    }
}

/// The IDs in `ids_file`, one per line (as `seed` writes them).
pub fn read_ids(ids_file: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(ids_file).with_context(|| format!("reading {ids_file}"))?;
    let ids: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    ensure!(!ids.is_empty(), "{ids_file} holds no IDs");
    Ok(ids)
}

/// Sequential GETs of random IDs from `ids_file`, after one of each (see `warm_up`); reports
/// the latency the client sees.
pub async fn run(url: &str, path: &str, ids_file: &str, n: usize, prefix: &str) -> Result<()> {
    let http = client::new()?;
    let targets = [Target::new(url, ids_file)?];
    warm_up(&http, &targets, path).await?;
    let mut samples = by_id(&http, &targets, path, n).await?;
    stats::report(prefix, &mut samples[0]);
    Ok(())
}

/// `n` fetches of `path/ID` for random sampled IDs from each target, the targets taking turns
/// request by request (see `take_turns`). Call `warm_up` first.
pub async fn by_id(
    http: &reqwest::Client,
    targets: &[Target],
    path: &str,
    n: usize,
) -> Result<Vec<Vec<Duration>>> {
    let mut pick = picker();
    take_turns(http, targets, n, |_, ids| {
        format!("{path}/{}", ids[pick(ids.len())])
    })
    .await
}

/// As many sampled runs from each target as the smallest sample holds, spread evenly over
/// each sample and fetched in a shuffled order, the targets taking turns. Made after the
/// stores' pages were dropped from memory, these are fetches that read their run from disk.
pub async fn from_disk(
    http: &reqwest::Client,
    targets: &[Target],
    path: &str,
) -> Result<Vec<Vec<Duration>>> {
    let count = targets.iter().map(|t| t.ids.len()).min().unwrap_or(0);
    // Fisher-Yates with the fixed sequence: random pages, the same ones every run.
    let mut order: Vec<usize> = (0..count).collect();
    let mut pick = picker();
    for i in (1..count).rev() {
        order.swap(i, pick(i + 1));
    }
    take_turns(http, targets, count, |turn, ids| {
        format!("{path}/{}", ids[order[turn] * ids.len() / count])
    })
    .await
}

/// Every sampled run once from each target, untimed, so that `by_id` measures fetches whose
/// run is in memory: the engine's work, not the disk's.
pub async fn warm_up(http: &reqwest::Client, targets: &[Target], path: &str) -> Result<()> {
    for target in targets {
        for id in &target.ids {
            get(http, &target.url, &format!("{path}/{id}")).await?;
        }
    }
    Ok(())
}

/// `n` pages of `/api/runs?name=echo&limit=20&before=ID` for random stored IDs from each
/// target: a page of a listing by name, at a random depth, the read `restack status` without
/// an ID makes. The same `n` pages are read once untimed first, so that these too measure
/// the engine's work with the pages in memory.
pub async fn list(
    http: &reqwest::Client,
    targets: &[Target],
    n: usize,
) -> Result<Vec<Vec<Duration>>> {
    let mut samples = Vec::new();
    for _ in 0..2 {
        let mut pick = picker();
        samples = take_turns(http, targets, n, |_, ids| {
            format!(
                "/api/runs?name=echo&limit=20&before={}",
                ids[pick(ids.len())]
            )
        })
        .await?;
    }
    Ok(samples)
}

/// Random indexes below the length asked for, from a fixed xorshift sequence: every run of the
/// benchmark asks for the same spread of IDs.
pub fn picker() -> impl FnMut(usize) -> usize {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    move |len| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % len as u64) as usize
    }
}

/// `turns` rounds of one request to each target, one request at a time, so that the host's
/// drift between moments falls on every target alike (BENCHMARKS.md, "The fetch figure").
/// `path_of(turn, ids)` names a target's request in that turn.
async fn take_turns(
    http: &reqwest::Client,
    targets: &[Target],
    turns: usize,
    mut path_of: impl FnMut(usize, &[String]) -> String,
) -> Result<Vec<Vec<Duration>>> {
    let mut samples: Vec<Vec<Duration>> =
        targets.iter().map(|_| Vec::with_capacity(turns)).collect();
    for turn in 0..turns {
        // Who goes first alternates too, in case going second is cheaper or dearer.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if turn % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let target = &targets[k];
            let path = path_of(turn, &target.ids);
            samples[k].push(get(http, &target.url, &path).await?);
        }
    }
    Ok(samples)
}

/// One GET, read to its end; how long it took. Anything but a success is an error.
async fn get(http: &reqwest::Client, url: &str, path: &str) -> Result<Duration> {
    let t0 = Instant::now();
    let resp = http.get(format!("{url}{path}")).send().await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    let took = t0.elapsed();
    if !status.is_success() {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(took)
}

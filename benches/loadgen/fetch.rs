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

/// Sequential GETs of random IDs from `ids_file`, once every ID has been fetched; reports the
/// latency the client sees.
pub async fn run(url: &str, path: &str, ids_file: &str, n: usize, prefix: &str) -> Result<()> {
    let targets = [Target::new(url, ids_file)?];
    each_once(&targets, path).await?;
    let mut samples = by_id(&targets, path, n).await?;
    stats::report(prefix, &mut samples[0]);
    Ok(())
}

/// `n` fetches of `path/ID` for random sampled IDs from each target, the targets taking turns
/// request by request (see `take_turns`).
pub async fn by_id(targets: &[Target], path: &str, n: usize) -> Result<Vec<Vec<Duration>>> {
    let mut pick = picks();
    take_turns(targets, n + n / 10, |_, ids| {
        let id = &ids[(pick() % ids.len() as u64) as usize];
        Some(format!("{path}/{id}"))
    })
    .await
    .map(|mut samples| {
        // The first tenth warmed the connections.
        samples.iter_mut().for_each(|s| drop(s.drain(..n / 10)));
        samples
    })
}

/// A fetch of `path/ID` for every sampled ID once, in the file's order, the targets taking
/// turns while each has IDs left. After the store's pages were dropped from memory these are
/// the fetches that read a run from disk; they also leave every sampled run's page in memory
/// for `by_id`.
pub async fn each_once(targets: &[Target], path: &str) -> Result<Vec<Vec<Duration>>> {
    let most = targets.iter().map(|t| t.ids.len()).max().unwrap_or(0);
    let mut turn = vec![0; targets.len()];
    take_turns(targets, most, |k, ids| {
        let i = turn[k];
        turn[k] += 1;
        ids.get(i).map(|id| format!("{path}/{id}"))
    })
    .await
}

/// `n` pages of `/api/runs?name=echo&limit=20&before=ID` for random stored IDs from each
/// target: a page of a listing by name, at a random depth, the read `restack status` without
/// an ID makes.
pub async fn list(targets: &[Target], n: usize) -> Result<Vec<Vec<Duration>>> {
    let mut pick = picks();
    take_turns(targets, n, |_, ids| {
        let id = &ids[(pick() % ids.len() as u64) as usize];
        Some(format!("/api/runs?name=echo&limit=20&before={id}"))
    })
    .await
}

/// A fixed xorshift sequence: every run of the benchmark asks for the same spread of IDs.
pub fn picks() -> impl FnMut() -> u64 {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// `turns` rounds of one request to each target, one request at a time, so that the host's
/// drift (which moved a ~0.2 ms median by a fifth between two back-to-back measurements) falls
/// on every target alike and their ratio holds still. `path_of(k, ids)` names target `k`'s
/// next request, or `None` when it has none this turn.
async fn take_turns(
    targets: &[Target],
    turns: usize,
    mut path_of: impl FnMut(usize, &[String]) -> Option<String>,
) -> Result<Vec<Vec<Duration>>> {
    let http = client::new()?;
    let mut samples = vec![Vec::with_capacity(turns); targets.len()];
    for turn in 0..turns {
        // Who goes first alternates too, in case going second is cheaper or dearer.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if turn % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let target = &targets[k];
            let Some(path) = path_of(k, &target.ids) else {
                continue;
            };
            let t0 = Instant::now();
            let resp = http.get(format!("{}{path}", target.url)).send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            let took = t0.elapsed();
            if !status.is_success() {
                bail!(
                    "GET {path} answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            samples[k].push(took);
        }
    }
    Ok(samples)
}

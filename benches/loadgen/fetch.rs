//! Fetching one stored run by ID, the read every `status` and `--follow` starts with.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

use crate::{client, stats};

/// Sequential GETs of random IDs from `ids_file` (one per line), after a warm-up; reports the
/// latency the client sees.
pub async fn run(url: &str, path: &str, ids_file: &str, n: usize, prefix: &str) -> Result<()> {
    get_each(url, ids_file, n, prefix, |id| format!("{path}/{id}")).await
}

/// Sequential GETs of `/api/runs?name=echo&limit=20&before=ID` for random stored IDs: a page of
/// a listing by name, at a random depth, the read `restack status` without an ID makes.
pub async fn list(url: &str, ids_file: &str, n: usize, prefix: &str) -> Result<()> {
    get_each(url, ids_file, n, prefix, |id| {
        format!("/api/runs?name=echo&limit=20&before={id}")
    })
    .await
}

async fn get_each(
    url: &str,
    ids_file: &str,
    n: usize,
    prefix: &str,
    path_of: impl Fn(&str) -> String,
) -> Result<()> {
    let text = std::fs::read_to_string(ids_file).with_context(|| format!("reading {ids_file}"))?;
    let ids: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    ensure!(!ids.is_empty(), "{ids_file} holds no IDs");
    let http = client::new()?;
    // A fixed xorshift sequence: every run of the benchmark asks for the same spread of IDs.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut pick = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[(x % ids.len() as u64) as usize]
    };
    let mut samples = Vec::with_capacity(n);
    for i in 0..(n + n / 10) {
        let id = pick();
        let t0 = Instant::now();
        let path = path_of(id);
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
        if i >= n / 10 {
            samples.push(took);
        }
    }
    println!("{prefix}_ids: {}", ids.len());
    stats::report(prefix, &mut samples);
    Ok(())
}

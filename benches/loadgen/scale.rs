//! A large store must not slow the engine's start or its reads: start-up time of `restack
//! serve` on a seeded data directory, then the fetch latency on it, then a page of a listing
//! by name.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{fetch, stats};

/// Start-ups measured; the median is reported.
const STARTS: usize = 3;

pub async fn run(bin: &str, config: &str, dir: &str, ids: &str, n: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let mut startups = Vec::new();
    for i in 0..STARTS {
        let t0 = Instant::now();
        let (mut child, url) = spawn(bin, config, dir)?;
        let banner = t0.elapsed();
        let result = health(&http, &url, &mut child).await;
        let took = t0.elapsed();
        if result.is_ok() {
            startups.push(took);
            println!("startup_{i}_banner_ms: {:.1}", stats::ms(banner));
        }
        let result = match result {
            Ok(()) if i + 1 == STARTS => {
                match fetch::run(&url, "/api/agents/echo", ids, n, "fetch").await {
                    Ok(()) => fetch::list(&url, ids, n / 5, "list").await,
                    err => err,
                }
            }
            other => other,
        };
        stop(&mut child)?;
        result?;
    }
    stats::report("startup", &mut startups);
    Ok(())
}

/// Starts the engine and reads its banner for the port it bound.
fn spawn(bin: &str, config: &str, dir: &str) -> Result<(Child, String)> {
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir,
            "-c",
            config,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {bin}"))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps draining after the banner so the engine never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let url = rest.split(';').next().unwrap_or_default().to_string();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url);
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => Ok((child, url)),
        Err(_) => {
            stop(&mut child)?;
            bail!("{bin} serve printed no banner within 60 s")
        }
    }
}

async fn health(http: &reqwest::Client, url: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{url}/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            bail!("{url}/health never answered");
        }
    }
}

fn stop(child: &mut Child) -> Result<()> {
    // SAFETY: a plain signal to the PID of a child we spawned and have not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait()?;
    Ok(())
}

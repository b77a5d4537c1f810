//! A large store must not slow the engine's start or its reads: start-up time of `restack
//! serve` on each seeded data directory, then, with an engine up on each, the fetch latency
//! (first from disk, then from memory) and a page of a listing by name, the stores taking
//! turns request by request.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::fetch::{self, Target};
use crate::stats;

/// Start-ups measured per store; the median is reported.
const STARTS: usize = 3;

/// `stores` are (data directory, IDs file) pairs; figures are printed per store as
/// `storeK_...`, K counting from 1 in the order given. With `one_cpu` this process and the
/// engines it starts stay on the CPU it runs on (see `pin_to_this_cpu`).
pub async fn run(
    bin: &str,
    config: &str,
    stores: &[(&str, &str)],
    n: usize,
    one_cpu: bool,
) -> Result<()> {
    if one_cpu {
        println!("scale_cpu: {}", pin_to_this_cpu()?);
    }
    let mut running: Vec<(Child, String)> = Vec::new();
    let result = measure(bin, config, stores, n, &mut running).await;
    for (child, _) in &mut running {
        stop(child)?;
    }
    result
}

async fn measure(
    bin: &str,
    config: &str,
    stores: &[(&str, &str)],
    n: usize,
    running: &mut Vec<(Child, String)>,
) -> Result<()> {
    let http = reqwest::Client::new();
    let mut startups = vec![Vec::new(); stores.len()];
    for i in 0..STARTS {
        for (k, (dir, _)) in stores.iter().enumerate() {
            let t0 = Instant::now();
            let (mut child, url) = spawn(bin, config, dir)?;
            let result = health(&http, &url, &mut child).await;
            startups[k].push(t0.elapsed());
            if i + 1 == STARTS && result.is_ok() {
                running.push((child, url));
            } else {
                stop(&mut child)?;
            }
            result?;
        }
    }
    let targets = running
        .iter()
        .zip(stores)
        .map(|((_, url), (_, ids))| Target::new(url, ids))
        .collect::<Result<Vec<_>>>()?;
    for (dir, _) in stores {
        drop_cached(&Path::new(dir).join("restack.db"))?;
    }
    let mut cold = fetch::each_once(&targets, "/api/agents/echo").await?;
    let mut fetches = fetch::by_id(&targets, "/api/agents/echo", n).await?;
    let mut lists = fetch::list(&targets, n / 5).await?;
    for k in 0..stores.len() {
        stats::report(&format!("store{}_startup", k + 1), &mut startups[k]);
        stats::report(&format!("store{}_cold_fetch", k + 1), &mut cold[k]);
        stats::report(&format!("store{}_fetch", k + 1), &mut fetches[k]);
        stats::report(&format!("store{}_list", k + 1), &mut lists[k]);
    }
    Ok(())
}

/// Keeps this process, and the engines it starts (they inherit it), on the CPU it is on now.
/// A one-connection fetch wakes the engine and then the client; on this VM a wake-up that
/// crosses vCPUs cost 70-100 µs, and with two engines up the kernel often placed one beside
/// the client and the other not, which then decided their ratio (the same pair of stores read
/// 0.84x-1.82x across runs, 1.06x every time on one CPU). On one CPU every store pays the same
/// for the trip, and what remains is the engine's own work.
fn pin_to_this_cpu() -> Result<usize> {
    // SAFETY: plain syscalls on this thread with a zeroed, then filled, CPU set.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            bail!("sched_getcpu failed: {}", std::io::Error::last_os_error());
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!(
                "sched_setaffinity failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(cpu as usize)
    }
}

/// Asks the kernel to drop the file's cached pages, so the next reads of it come from disk:
/// what a store that has not been read for a while costs (this machine pages out file pages
/// idle for about a minute). Needs no privileges, unlike `drop_caches`.
fn drop_cached(path: &Path) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: a valid open descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe {
        libc::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            0,
            libc::POSIX_FADV_DONTNEED,
        )
    };
    if rc != 0 {
        bail!("posix_fadvise of {} failed: {rc}", path.display());
    }
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

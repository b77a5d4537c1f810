//! A large store must not slow the engine's start or its reads: start-up time of `restack
//! serve` on each seeded data directory, then, with an engine up on each, the fetch latency
//! (first from disk, then from memory) and a page of a listing by name, the stores taking
//! turns request by request. Why turns, and why one CPU: BENCHMARKS.md, "The fetch figure".

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::fetch::{self, Target};
use crate::{client, stats};

/// Start-ups measured per store; the median is reported.
const STARTS: usize = 3;

/// Engines this mode started; dropping it stops every one, on every way out (an error, a
/// panic), so none is left serving a data directory.
#[derive(Default)]
struct Engines(Vec<Child>);

impl Drop for Engines {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Err(e) = stop(child) {
                eprintln!("cannot stop engine {}: {e}", child.id());
            }
        }
    }
}

/// `stores` are (data directory, IDs file) pairs; figures are printed per store as
/// `storeK_...`, K counting from 1 in the order given. With `one_cpu` this thread, and so the
/// engines it starts, stay on the CPU it runs on (see `pin_to_this_cpu`).
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
    let http = client::new()?;
    // Every start-up is timed alone: the stores take turns, and each engine is stopped
    // before the next starts.
    let mut startups = vec![Vec::new(); stores.len()];
    for _ in 0..STARTS {
        for (k, (dir, _)) in stores.iter().enumerate() {
            let t0 = Instant::now();
            let mut engine = Engines::default();
            start(&http, bin, config, dir, &mut engine).await?;
            startups[k].push(t0.elapsed());
        }
    }
    let mut engines = Engines::default();
    let mut targets = Vec::new();
    for (dir, ids) in stores {
        let url = start(&http, bin, config, dir, &mut engines).await?;
        targets.push(Target::new(&url, ids)?);
    }
    for (dir, _) in stores {
        drop_cached(&Path::new(dir).join("restack.db"))?;
    }
    let mut cold = fetch::from_disk(&http, &targets, "/api/agents/echo").await?;
    fetch::warm_up(&http, &targets, "/api/agents/echo").await?;
    let mut fetches = fetch::by_id(&http, &targets, "/api/agents/echo", n).await?;
    let mut lists = fetch::list(&http, &targets, n / 5).await?;
    for k in 0..stores.len() {
        stats::report(&format!("store{}_startup", k + 1), &mut startups[k]);
        stats::report(&format!("store{}_cold_fetch", k + 1), &mut cold[k]);
        stats::report(&format!("store{}_fetch", k + 1), &mut fetches[k]);
        stats::report(&format!("store{}_list", k + 1), &mut lists[k]);
    }
    Ok(())
}

/// Starts an engine on `dir` into `engines` and waits until `/health` answers; its URL.
async fn start(
    http: &reqwest::Client,
    bin: &str,
    config: &str,
    dir: &str,
    engines: &mut Engines,
) -> Result<String> {
    let (child, url) = spawn(bin, config, dir)?;
    engines.0.push(child);
    let child = engines.0.last_mut().expect("just pushed");
    health(http, &url, child).await?;
    Ok(url)
}

/// Keeps this thread, and the engines it starts after (they inherit it), on the CPU it is on
/// now: a one-connection fetch wakes the engine and then the client, and a wake-up that
/// crosses vCPUs costs this VM more than the fetch itself. The runtime is single-threaded,
/// so this thread is the whole client. An engine pinned so runs one tokio worker (its size
/// follows the CPUs it may use), on every store alike.
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
        bail!(
            "posix_fadvise of {} failed: {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        );
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
    if child.try_wait()?.is_some() {
        // Reaped already: its PID may be someone else's by now.
        return Ok(());
    }
    // SAFETY: a plain signal to the PID of a child we spawned and have not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    child.wait()?;
    Ok(())
}

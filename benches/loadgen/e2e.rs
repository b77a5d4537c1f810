//! Schedule -> completed, as a client sees it: many at once (throughput) or one at a time
//! (latency at low load).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Mutex;

use crate::{client, stats};

/// `n` runs from `c` workers; the rate counts from the first schedule to the last completion.
pub async fn run(url: &str, path: &str, n: usize, c: usize, prefix: &str) -> Result<()> {
    let http = client::new()?;
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c {
        let (http, url, path) = (http.clone(), url.to_string(), path.to_string());
        let (next, errors, first_error) = (next.clone(), errors.clone(), first_error.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut last_end = started;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t0 = Instant::now();
                let outcome = match client::schedule(&http, &url, &path).await {
                    Ok(id) => client::await_end(&http, &url, &path, &id).await,
                    Err(e) => Err(e),
                };
                last_end = Instant::now();
                match outcome {
                    Ok(()) => samples.push(last_end - t0),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().await.get_or_insert(format!("{e:#}"));
                    }
                }
            }
            (samples, last_end)
        }));
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(n);
    let mut last_end = started;
    for w in workers {
        let (s, end) = w.await?;
        samples.extend(s);
        last_end = last_end.max(end);
    }
    let wall = (last_end - started).as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    println!("{prefix}_path: {path}");
    println!("{prefix}_runs: {n}");
    println!("{prefix}_concurrency: {c}");
    println!("{prefix}_wall_s: {wall:.3}");
    println!("{prefix}_rps: {:.1}", samples.len() as f64 / wall);
    println!("{prefix}_errors: {errors}");
    if let Some(e) = first_error.lock().await.as_ref() {
        eprintln!("loadgen: first error: {e}");
    }
    stats::report(prefix, &mut samples);
    Ok(())
}

/// One run at a time on one kept-alive connection, after a warm-up of a tenth as many.
pub async fn latency(url: &str, path: &str, n: usize) -> Result<()> {
    let http = client::new()?;
    for _ in 0..(n / 10).max(5) {
        let id = client::schedule(&http, url, path).await?;
        client::await_end(&http, url, path, &id).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let id = client::schedule(&http, url, path).await?;
        client::await_end(&http, url, path, &id).await?;
        samples.push(t0.elapsed());
    }
    println!("latency_path: {path}");
    stats::report("latency", &mut samples);
    Ok(())
}

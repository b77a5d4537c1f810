//! One keep-alive HTTP client and the two calls every mode makes: schedule and await a run.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The body wrk also sends, so that scheduling costs the same in every phase.
pub const BODY: &str = r#"{"input":{"x":1}}"#;

pub fn new() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(300))
        .tcp_nodelay(true)
        .build()?)
}

/// Schedules one run of `path` (e.g. `/api/workflows/pipe3`) and returns its ID.
pub async fn schedule(http: &reqwest::Client, url: &str, path: &str) -> Result<String> {
    let resp = http
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await.context("schedule answered no JSON")?;
    if !status.is_success() {
        bail!("schedule answered {status}: {body}");
    }
    body["runId"]
        .as_str()
        .map(str::to_string)
        .context("schedule answered no runId")
}

/// Long-polls the run until it ends; Ok only when it completed. A run that has not ended after
/// `GIVE_UP` is an error, so that a stuck engine fails the benchmark instead of hanging it.
pub async fn await_end(http: &reqwest::Client, url: &str, path: &str, id: &str) -> Result<()> {
    const GIVE_UP: std::time::Duration = std::time::Duration::from_secs(120);
    let poll = format!("{url}{path}/{id}?wait=30");
    let deadline = std::time::Instant::now() + GIVE_UP;
    loop {
        if std::time::Instant::now() > deadline {
            bail!("run {id} had not ended after {GIVE_UP:?}");
        }
        let resp = http.get(&poll).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.context("fetch answered no JSON")?;
        if !status.is_success() {
            bail!("fetch answered {status}: {body}");
        }
        match body["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed") => bail!("run {id} failed: {}", body["error"]),
            _ => continue,
        }
    }
}

//! `restack health`: does the server answer, and how fast.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::error::{Exit, Failure};
use crate::output;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Give up on an answer after this long (exit 3) [default: 30s]
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::parse_answer_timeout)]
    pub timeout: Option<std::time::Duration>,
}

impl HealthArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        let session = g.connect_within(false, self.timeout).await?;
        let started = Instant::now();
        let result = session.client.health(self.timeout).await;
        let rtt = started.elapsed();
        let label = session.label();
        let profile = session.profile.name.clone();
        // For scripts, `url` is a URL or null: the embedded engine's is gone when this exits.
        let (url, data_dir) = match &session.embedded {
            Some(e) => (Value::Null, Some(e.data_dir.display().to_string())),
            None => (Value::from(label.clone()), None),
        };
        let body = session.finish(result).await?;
        // The spec's 200 is "Server is healthy"; its `status` is an optional word (`ok` is only
        // its example), shown as the server says it: unless the word says the opposite.
        let status = match body.get("status") {
            Some(Value::String(word)) if !word.trim().is_empty() => {
                output::printable(&crate::api::clip(word.trim())).into_owned()
            }
            None | Some(Value::Null | Value::String(_)) => "ok".to_string(),
            // `false`, `503`, `{"state": "down"}`: no word to show, and maybe the opposite.
            Some(other) => {
                return Err(Failure::new(
                    Exit::Server,
                    format!(
                        "{label} answers its health check with a status that is not a word: {}",
                        output::printable(&crate::api::clip(&other.to_string()))
                    ),
                )
                .into());
            }
        };
        if says_unwell(&status) {
            return Err(Failure::new(
                Exit::Server,
                format!("{label} answers, but says its status is {status:?}"),
            )
            .into());
        }
        let rtt_ms = (rtt.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        if g.json() {
            let mut body =
                json!({"status": status, "url": url, "profile": profile, "rttMs": rtt_ms});
            if let Some(d) = data_dir {
                body["dataDir"] = Value::from(d);
            }
            output::json(&body);
        } else if !g.quiet {
            output::out(&format!(
                "{status}: {label} (profile {profile}) in {rtt_ms} ms"
            ));
        }
        Ok(Exit::Ok)
    }
}

/// Words health endpoints use for "up, but not well" (Spring, Kubernetes, load balancers).
fn says_unwell(status: &str) -> bool {
    const UNWELL: &[&str] = &[
        "degraded",
        "unhealthy",
        "down",
        "fail",
        "failed",
        "failing",
        "error",
        "unavailable",
        "out_of_service",
        "maintenance",
        "starting",
        "stopping",
        "not_serving",
        "red",
        "critical",
        "offline",
        "not_ready",
        "unready",
    ];
    // `OUT-OF-SERVICE`, `not ready`, `Down`: one spelling.
    let word: String = status
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    UNWELL.contains(&word.as_str())
}

//! `restack health`: does the server answer, and how fast.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::error::{Exit, Failure};
use crate::output;

#[derive(Debug, Args)]
pub struct HealthArgs {}

impl HealthArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        let session = g.connect(false).await?;
        let started = Instant::now();
        let result = session.client.health().await;
        let rtt = started.elapsed();
        let label = session.label();
        let profile = session.profile.name.clone();
        let body = session.finish(result).await?;
        let status = body
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Only a healthy answer is a result; anything else is an error, with nothing on stdout.
        if status != "ok" {
            let said = if status.is_empty() {
                "answered without a status".to_string()
            } else {
                format!("says its status is {status:?}, not \"ok\"")
            };
            return Err(Failure::new(Exit::Server, format!("{label} {said}")).into());
        }
        let rtt_ms = (rtt.as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
        if g.json() {
            output::json(
                &json!({"status": status, "url": label, "profile": profile, "rttMs": rtt_ms}),
            );
        } else if !g.quiet {
            output::out(&format!(
                "{status}: {label} (profile {profile}) in {rtt_ms} ms"
            ));
        }
        Ok(Exit::Ok)
    }
}

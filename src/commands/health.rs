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
        // For scripts, `url` is a URL or null: the embedded engine's is gone when this exits.
        let (url, data_dir) = match &session.embedded {
            Some(e) => (Value::Null, Some(e.data_dir.display().to_string())),
            None => (Value::from(label.clone()), None),
        };
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

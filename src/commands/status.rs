//! `restack status [RUN_ID]`: one run in detail (optionally followed), or a table of this
//! profile's recent runs with their live status.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};

use super::Session;
use crate::api::Kind;
use crate::cli::{GlobalArgs, parse_duration};
use crate::client::fmt_secs;
use crate::error::{Exit, Failure};
use crate::{history, output};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run to show; without it, a table of recent runs of this profile
    pub run_id: Option<String>,
    /// The run's agent (otherwise taken from the local history)
    #[arg(long, value_name = "NAME", conflicts_with = "workflow")]
    pub agent: Option<String>,
    /// The run's workflow (otherwise taken from the local history)
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Watch the run until it ends; the exit status reflects the run
    #[arg(short, long, requires = "run_id")]
    pub follow: bool,
    /// With --follow: stop waiting after this long (exit 6; the run goes on)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "follow")]
    pub timeout: Option<Duration>,
    /// How many recent runs the table shows
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

impl StatusArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        let session = g.connect(self.follow).await?;
        let result = match &self.run_id {
            Some(id) => self.one(id, g, &session).await,
            None => self.recent(g, &session).await,
        };
        session.finish(result).await
    }

    async fn one(&self, id: &str, g: &GlobalArgs, s: &Session) -> Result<Exit> {
        let (kind, name) = match (&self.agent, &self.workflow) {
            (Some(a), _) => (Kind::Agent, a.clone()),
            (None, Some(w)) => (Kind::Workflow, w.clone()),
            (None, None) => {
                match history::find(id, &s.profile.name) {
                    Some(e) => (e.kind, e.name),
                    None => {
                        return Err(Failure::usage(format!("run {id} is not in the local history, so its agent or workflow is unknown"))
                        .with_hint("pass --agent NAME or --workflow NAME")
                        .into());
                    }
                }
            }
        };
        if self.follow {
            return super::run::follow(s, kind, &name, id, self.timeout, g).await;
        }
        let answer = s.client.run(kind, &name, id, None).await?;
        if g.json() {
            output::json(&answer.raw);
        } else {
            output::out(&output::run_detail(
                &answer.typed,
                output::color_enabled(g.no_color),
            ));
        }
        Ok(Exit::Ok)
    }

    async fn recent(&self, g: &GlobalArgs, s: &Session) -> Result<Exit> {
        let entries = history::recent(&s.profile.name, self.limit);
        // Ask for every run at once; the answers come back in any order.
        let lookups = entries
            .iter()
            .map(|e| s.client.run(e.kind, &e.name, &e.run_id, None));
        let answers = futures_util::future::join_all(lookups).await;
        // Failures of the server as a whole fail the command; a run it no longer knows is a row.
        let unreachable = |a: &Result<_>| match a {
            Err(e) => anyhow::Error::downcast_ref::<Failure>(e)
                .is_some_and(|f| matches!(f.exit, Exit::Unreachable | Exit::Unauthorized)),
            Ok(_) => false,
        };
        if let Some(i) = answers.iter().position(unreachable) {
            return Err(answers
                .into_iter()
                .nth(i)
                .and_then(Result::err)
                .expect("an error"));
        }
        let color = output::color_enabled(g.no_color);
        if g.json() {
            let list: Vec<Value> = entries
                .iter()
                .zip(&answers)
                .map(|(e, a)| match a {
                    Ok(a) => a.raw.clone(),
                    Err(err) => json!({
                        "runId": e.run_id, e.kind.name_field(): e.name, "status": "unknown", "error": format!("{err:#}")
                    }),
                })
                .collect();
            output::json(&Value::Array(list));
            return Ok(Exit::Ok);
        }
        if entries.is_empty() {
            if !g.quiet {
                eprintln!(
                    "no runs scheduled from this machine with profile `{}` yet",
                    s.profile.name
                );
            }
            return Ok(Exit::Ok);
        }
        let rows: Vec<_> = entries
            .iter()
            .zip(&answers)
            .map(|(e, a)| {
                let (status, created, took) = match a {
                    Ok(a) => {
                        let i = &a.typed;
                        (
                            output::status_word(i.status, color),
                            i.created_at.clone().unwrap_or_else(|| e.time.clone()),
                            output::took(i.created_at.as_deref(), i.completed_at.as_deref())
                                .map(fmt_secs)
                                .unwrap_or_default(),
                        )
                    }
                    Err(err) => {
                        let what = match err.downcast_ref::<Failure>().map(|f| f.exit) {
                            Some(Exit::NotFound) => "not found",
                            _ => "unknown",
                        };
                        (what.to_string(), e.time.clone(), String::new())
                    }
                };
                (
                    e.run_id.clone(),
                    e.kind.to_string(),
                    e.name.clone(),
                    status,
                    created,
                    took,
                )
            })
            .collect();
        output::out(&output::runs_table(&rows));
        Ok(Exit::Ok)
    }
}

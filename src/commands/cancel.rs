//! `restack cancel RUN_ID`: stops a queued or running run (its agent's process group is
//! killed), found as `status RUN_ID` finds the run.

use anyhow::Result;
use clap::Args;

use super::status::{Action, StatusArgs};
use crate::api::Kind;
use crate::cli::GlobalArgs;
use crate::client::Client;
use crate::error::Exit;
use crate::output;

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run to cancel
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub run_id: String,
    /// The run's agent (otherwise taken from the local history)
    #[arg(long, value_name = "NAME", conflicts_with = "workflow", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub agent: Option<String>,
    /// The run's workflow (otherwise taken from the local history)
    #[arg(long, value_name = "NAME", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub workflow: Option<String>,
}

impl CancelArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        StatusArgs::for_run(self.run_id, self.agent, self.workflow, Action::Cancel)
            .run(g)
            .await
    }
}

/// Cancels it: `-o json` prints the run as it ended, `-q` nothing. A run that had already
/// ended is exit 1, saying how it ended.
pub async fn cancel(
    client: &Client,
    kind: Kind,
    name: &str,
    id: &str,
    g: &GlobalArgs,
) -> Result<Exit> {
    let answer = client.cancel(kind, name, id).await?;
    if g.json() {
        output::json(&answer.raw);
    } else if !g.quiet {
        output::out(&format!("run {id} canceled"));
    }
    Ok(Exit::Ok)
}

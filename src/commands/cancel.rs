//! `restack cancel RUN_ID`: stops a queued or running run (its agent's process group is
//! killed), found as `status RUN_ID` finds the run.

use anyhow::Result;
use clap::Args;

use super::status::{Action, OneRun};
use crate::api::Kind;
use crate::cli::GlobalArgs;
use crate::client::Client;
use crate::error::Exit;
use crate::output;

#[derive(Debug, Args)]
#[command(mut_arg("run_id", |a| a.help("The run to cancel")))]
pub struct CancelArgs {
    #[command(flatten)]
    pub run: OneRun,
}

impl CancelArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        self.run.status(Action::Cancel).run(g).await
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

//! `restack logs RUN_ID`: a run's log lines (its agents' stderr, and the engine's word on each
//! attempt and step), found as `status RUN_ID` finds the run.

use anyhow::Result;
use clap::Args;

use super::status::{Action, OneRun};
use crate::api::{Kind, LogLine};
use crate::cli::GlobalArgs;
use crate::client::Client;
use crate::error::Exit;
use crate::output;

#[derive(Debug, Args)]
#[command(mut_arg("run_id", |a| a.help("The run whose logs to print")))]
pub struct LogsArgs {
    #[command(flatten)]
    pub run: OneRun,
}

impl LogsArgs {
    pub async fn run(self, g: &GlobalArgs) -> Result<Exit> {
        self.run.status(Action::Logs).run(g).await
    }
}

/// Prints the lines: `-o json` the server's object, `-q` the lines alone, else each with its
/// time, and its step and attempt when it has them.
pub async fn print(
    client: &Client,
    kind: Kind,
    name: &str,
    id: &str,
    g: &GlobalArgs,
) -> Result<Exit> {
    let answer = client.logs(kind, name, id).await?;
    if g.json() {
        output::json(&answer.raw);
        return Ok(Exit::Ok);
    }
    if let Some(n) = answer.typed.omitted.filter(|_| !g.quiet) {
        eprintln!("note: {n} earlier lines are not shown: the server answers with the latest");
    }
    let mut text = String::new();
    for l in &answer.typed.lines {
        if !g.quiet {
            text.push_str(&format!("{}  {}", output::printable(&l.at), place(l)));
        }
        text.push_str(&output::printable(&l.line));
        text.push('\n');
    }
    if !text.is_empty() {
        output::out(&text);
    }
    Ok(Exit::Ok)
}

/// `step 2, attempt 1: `, for the people reading: steps count from 1, as in errors.
fn place(l: &LogLine) -> String {
    match (l.step, l.attempt) {
        (Some(s), Some(a)) => format!("step {}, attempt {a}: ", s + 1),
        (Some(s), None) => format!("step {}: ", s + 1),
        (None, Some(a)) => format!("attempt {a}: "),
        (None, None) => String::new(),
    }
}

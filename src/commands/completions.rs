//! `restack completions SHELL`: the completion script, generated from the clap definitions
//! (the files in `completions/` are this output, kept in sync by a test).

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::Exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

impl CompletionsArgs {
    pub fn run(self) -> Result<Exit> {
        let mut out = Vec::new();
        clap_complete::generate(self.shell, &mut Cli::command(), "restack", &mut out);
        crate::output::out(&String::from_utf8_lossy(&out));
        Ok(Exit::Ok)
    }
}

//! `restack completions SHELL`: the completion script, generated from the clap definitions
//! (the files in `completions/` are this output, kept in sync by a test).

use anyhow::Result;
use clap::{Args, CommandFactory, ValueEnum};
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
        let mut script = String::from_utf8_lossy(&out).into_owned();
        if self.shell == Shell::Fish {
            // clap_complete's fish script completes no positional values: add the shells.
            let shells: Vec<String> = Shell::value_variants()
                .iter()
                .map(ToString::to_string)
                .collect();
            script.push_str(&format!(
                "complete -c restack -n \"__fish_restack_using_subcommand completions\" -f -a \"{}\"\n",
                shells.join(" ")
            ));
        }
        crate::output::out(&script);
        Ok(Exit::Ok)
    }
}

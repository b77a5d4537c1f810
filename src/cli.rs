//! Command-line definitions. Help text comes from these doc comments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::commands::{
    cancel::CancelArgs, completions::CompletionsArgs, health::HealthArgs, logs::LogsArgs,
    run::RunArgs, serve::ServeArgs, status::StatusArgs,
};

/// Schedule, watch and inspect AI-agent and workflow runs through the Restack API — against
/// Restack Cloud, a Restack engine, or the engine built into this binary.
#[derive(Debug, Parser)]
#[command(
    name = "restack",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Config file [default: $RESTACK_CONFIG, else <config dir>/restack/config.toml]
    #[arg(short = 'c', long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Profile to use (built in: `local`, `embedded`)
    #[arg(
        short = 'p',
        long,
        global = true,
        env = "RESTACK_PROFILE",
        value_name = "NAME"
    )]
    pub profile: Option<String>,
    /// Server URL, overriding the profile's
    #[arg(long, global = true, env = "RESTACK_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Print only what scripts need (a run ID, an output, a status word; `health`: nothing,
    /// the exit status says it), no progress
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Show each request, and its answer's status, size and time, on stderr (the token shows
    /// as `Bearer ***`)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No colours (also: NO_COLOR in the environment)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run agents
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Run workflows
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Show one run, or a table of recent runs of this profile
    Status(StatusArgs),
    /// Print a run's log lines: its agents' stderr, each retry, and each step's start and end
    Logs(LogsArgs),
    /// Cancel a queued or running run (its agent's processes are stopped)
    Cancel(CancelArgs),
    /// Check that the server answers, and how fast
    Health(HealthArgs),
    /// Serve the Restack API from the embedded engine
    Serve(ServeArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Schedule an agent run (and with --follow, watch it to the end)
    #[command(mut_arg("name", |a| a.help("The agent to run")))]
    Run(RunArgs),
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Schedule a workflow run (and with --follow, watch it to the end)
    #[command(mut_arg("name", |a| a.help("The workflow to run")))]
    Run(RunArgs),
}

/// `5s`, `2m`, `1h30m`: the config's parser, whose errors give examples.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s).map_err(|e| format!("{e:#}"))
}

/// A wait for an answer: zero would fail every request before it is sent, and then blame the
/// server for being slow.
pub fn parse_answer_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(ZERO_TIMEOUT.to_string());
    }
    Ok(d)
}

pub const ZERO_TIMEOUT: &str = "a zero timeout leaves no time for an answer; give more than 0s";

//! `restack`: a client for the Restack API and an embedded engine that serves the same API.
//!
//! A map of the crate:
//! - [`api`]: wire types both halves share, lenient where remote servers differ.
//! - [`config`]: the TOML file, profiles and precedence, engine settings.
//! - [`error`]: the CLI's failures and their exit codes; the one place errors are printed.
//! - [`cli`]: clap definitions; [`commands`]: one module per subcommand, each `Args` + `run()`.
//! - [`client`]: the typed HTTP client, including `--follow` (long-poll, then polling).
//! - [`output`]: text, JSON and table rendering; [`history`]: the local record of scheduled runs.
//! - [`engine`]: the embedded engine (HTTP router, SQLite store, executor, workflows).

pub mod api;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod history;
pub mod output;

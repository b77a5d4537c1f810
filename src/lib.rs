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

/// `eprintln!` that cannot panic. The standard one panics when stderr is gone (`2>&1 | head`
/// once head has exited, `2>/dev/full`), and with `panic = "abort"` that turns a result and its
/// exit status into SIGABRT. A message nobody can read is dropped instead. Defined before the
/// modules so that it shadows the standard macro in every one of them. It also hides the
/// tokens this process sends ([`output::keep_secret`]) wherever a server's words repeat them.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::output::unsecret(&line));
    }};
}

pub mod api;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod engine;
pub mod error;
pub mod history;
pub mod output;

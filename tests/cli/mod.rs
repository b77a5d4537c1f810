//! The `restack` CLI, end to end: the real binary against a real engine (or, for a remote
//! server's quirks, a stand-in), each test in its own sandbox.

mod auth;
mod completions;
mod embedded;
mod exit_codes;
mod fixtures;
mod follow;
mod follow_failures;
mod follow_fallback;
mod foreign_servers;
mod health;
mod logs_and_cancel;
mod profiles;
mod remote_quirks;
mod run_input;
mod status;
mod streams;

//! What the CLI does when its own output cannot be written: a result that did not reach
//! stdout is a failure, not a silent exit 0, and a stderr nobody reads never changes the exit
//! status the table promises.

use std::fs::File;
use std::process::Stdio;

use super::fixtures::{closed_url, engine};
use crate::support::Sandbox;

/// `/dev/full` refuses every write with ENOSPC, as a full disk would.
fn full() -> Stdio {
    Stdio::from(
        File::options()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

#[test]
fn a_result_stdout_refuses_fails_the_command() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .std_cmd()
        .args(["--url", &server.url, "agent", "run", "echo", "-q"])
        .stdout(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot write the result to stdout"),
        "{err}"
    );
}

#[test]
fn a_stderr_that_refuses_writes_keeps_the_exit_status() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    for (args, code) in [
        (vec!["--url", closed_url().as_str(), "health"], 3),
        (
            vec!["--url", server.url.as_str(), "agent", "run", "nope"],
            4,
        ),
        (
            vec!["--url", server.url.as_str(), "agent", "run", "echo", "-f"],
            0,
        ),
    ] {
        let out = sb.std_cmd().args(&args).stderr(full()).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    }
}

/// `-v` with the embedded engine logs to stderr; a log line that cannot be written is lost,
/// and the run and its result are not.
#[test]
fn an_engine_log_that_cannot_be_written_costs_nothing_but_the_log() {
    let sb = Sandbox::new();
    let out = sb
        .std_cmd()
        .args([
            "-v", "-p", "embedded", "agent", "run", "echo", "--set", "k=1", "-f",
        ])
        .stderr(full())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result, serde_json::json!({"k": 1}));
}

//! `run` with and without `--follow`: what lands on stdout (results only), what on stderr
//! (progress), and the exit status that reflects the run.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{assert_error, closed_url, code, engine, runs, stderr, stdout, stdout_json};
use crate::support::Sandbox;

#[test]
fn follow_prints_the_output_on_stdout_and_plain_status_lines_on_stderr() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "agent", "run", "slow"])
        .args(["--set", "seconds=0.2", "--follow"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"done": true}));
    let id = runs(&server)[0]["runId"].as_str().unwrap().to_string();
    let err = stderr(&out);
    // Not a terminal: whole lines naming the run, no spinner redraws or escape codes.
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("run {id}: completed"))),
        "{err}"
    );
    assert!(
        err.lines().all(|l| l.starts_with(&format!("run {id}: "))),
        "{err}"
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
}

#[test]
fn without_follow_it_prints_the_run_id_and_how_to_follow_it() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&["--url", &server.url, "agent", "run", "echo"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let id = runs(&server)[0]["runId"].as_str().unwrap().to_string();
    let text = stdout(&out);
    assert!(text.contains(&id), "{text}");
    // The hint reaches the same server: it carries the --url this command was given.
    assert!(
        text.contains(&format!(
            "restack --url {} status {id} --agent echo --follow",
            server.url
        )),
        "{text}"
    );
}

#[test]
fn quiet_prints_the_run_id_alone() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "-q", "agent", "run", "echo"])
        .args(["--set", "k=v"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let text = stdout(&out);
    let id = text.strip_suffix('\n').expect("one line");
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "{text:?}"
    );
    // The ID is the engine's: the run can be looked up by it.
    let done = server.wait_done("agents", "echo", id, Duration::from_secs(30));
    assert_eq!(done["output"], json!({"k": "v"}));
}

#[test]
fn quiet_follow_prints_the_output_and_no_progress() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "-q", "agent", "run", "echo"])
        .args(["--set", "k=v", "--follow"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"k": "v"}));
}

#[test]
fn json_output_is_the_schedule_answer_alone() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&["--url", &server.url, "-o", "json", "agent", "run", "echo"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let body = stdout_json(&out);
    assert_eq!(body["status"], "completed", "echo is stored completed");
    assert_eq!(body["runId"], runs(&server)[0]["runId"]);
}

#[test]
fn json_follow_prints_the_whole_status_object_alone() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args([
            "--url",
            &server.url,
            "-o",
            "json",
            "workflow",
            "run",
            "pair",
        ])
        .args(["--set", "x=1", "--follow"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let body = stdout_json(&out);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["output"], json!({"x": 1}));
    assert_eq!(body["workflowName"], "pair");
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(2));
}

#[test]
fn a_failed_run_is_exit_1_with_the_agents_error() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&["--url", &server.url, "agent", "run", "fail", "--follow"]);
    let err = assert_error(&out, 1);
    assert!(err.contains("exit status 3"), "{err}");
    assert!(err.contains("boom: no luck today"), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}

#[test]
fn a_failed_run_in_json_is_exit_1_with_the_status_object() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&[
        "--url",
        &server.url,
        "-o",
        "json",
        "agent",
        "run",
        "fail",
        "-f",
    ]);
    assert_eq!(code(&out), 1, "{out:?}");
    let body = stdout_json(&out);
    assert_eq!(body["status"], "failed");
    assert!(body["error"].as_str().unwrap().contains("exit status 3"));
}

#[test]
fn timeout_is_exit_6_and_the_run_goes_on() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "agent", "run", "sleep"])
        .args(["--set", "seconds=60", "--follow", "--timeout", "300ms"])
        .output()
        .unwrap();
    let err = assert_error(&out, 6);
    assert!(err.contains("--timeout"), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let run = &runs(&server)[0];
    assert!(
        matches!(run["status"].as_str(), Some("queued" | "running")),
        "{run}"
    );
    let id = run["runId"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "restack --url {} status {id} --agent sleep --follow",
            server.url
        )),
        "{err}"
    );
}

/// A script following with `-o json` still gets the run's object when `--timeout` passes,
/// as last seen, beside exit 6.
#[test]
fn timeout_in_json_prints_the_run_as_last_seen() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "-o", "json", "agent", "run", "sleep"])
        .args(["--set", "seconds=60", "--follow", "--timeout", "300ms"])
        .output()
        .unwrap();
    assert_error(&out, 6);
    let body = stdout_json(&out);
    assert_eq!(body["runId"], runs(&server)[0]["runId"], "{body}");
    assert!(
        matches!(body["status"].as_str(), Some("queued" | "running")),
        "{body}"
    );
}

/// The hint names the agent, so the command it gives works where the local history does not
/// hold the run: here, a machine that never scheduled it.
#[test]
fn the_timeout_hint_works_without_the_history() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let (code_, body) = server.post("/api/agents/sleep", json!({"input": {"seconds": 60}}));
    assert_eq!(code_, 200, "{body}");
    let id = body["runId"].as_str().unwrap();
    let elsewhere = Sandbox::new();
    let out = elsewhere.run(&[
        "--url",
        &server.url,
        "status",
        id,
        "--agent",
        "sleep",
        "--follow",
        "--timeout",
        "300ms",
    ]);
    let err = assert_error(&out, 6);
    assert_error(&run_the_hint(&elsewhere, &err), 6);
}

/// Runs the `restack … status …` command that the hint in `err` gives, with a short timeout.
fn run_the_hint(sb: &Sandbox, err: &str) -> std::process::Output {
    let hinted = err
        .split('`')
        .find(|part| part.starts_with("restack ") && part.contains(" status "))
        .unwrap_or_else(|| panic!("no command in the hint:\n{err}"));
    let mut args: Vec<&str> = hinted.split_whitespace().skip(1).collect();
    args.extend(["--timeout", "300ms"]);
    sb.run(&args)
}

/// A run the history places on another server than the profile's is watched there, and the
/// hint, which names the agent, names that server too.
#[test]
fn the_timeout_hint_of_a_run_found_elsewhere_reaches_that_server() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&[
        "--url",
        &server.url,
        "agent",
        "run",
        "sleep",
        "--set",
        "seconds=60",
        "-q",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let id = stdout(&out).trim().to_string();
    // The profile is `local`; the history says the run is at the engine's URL.
    let out = sb.run(&["status", &id, "--follow", "--timeout", "300ms"]);
    let err = assert_error(&out, 6);
    assert!(err.contains(&format!("--url {}", server.url)), "{err}");
    assert_error(&run_the_hint(&sb, &err), 6);
}

#[test]
fn timeout_needs_follow() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["--url", &closed_url(), "agent", "run", "echo"])
        .args(["--timeout", "5s"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{out:?}");
    assert!(stderr(&out).contains("--follow"), "{}", stderr(&out));
}

#[test]
fn on_a_terminal_follow_draws_a_spinner_and_still_prints_the_output() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    // `script` runs the CLI on a pseudo-terminal, as a person at a shell would.
    let inner = format!(
        "{} --url {} agent run slow --set seconds=0.5 --follow --timeout 60s",
        crate::support::BIN,
        server.url
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", sb.path("home"))
        .env("XDG_DATA_HOME", sb.path("data"))
        .env("XDG_CONFIG_HOME", sb.path("config"))
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from bsdutils");
    assert_eq!(code(&out), 0, "{out:?}");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("\u{1b}[") || screen.contains('\r'),
        "no redraws: {screen:?}"
    );
    assert!(screen.contains(": running"), "no live status: {screen:?}");
    assert!(screen.contains("\"done\": true"), "no output: {screen:?}");
}

//! `restack logs` and `restack cancel`: they find a run as `status` does (the history, or
//! `--agent`/`--workflow`), and say what the engine says.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{assert_error, code, stdout, stdout_json};
use crate::engine::fixtures::{agent, pids, sandbox};
use crate::support::standin::{Reply, Standin};
use crate::support::{Sandbox, process_alive, wait_until};

const T: Duration = Duration::from_secs(30);

#[test]
fn logs_print_a_runs_lines_with_their_attempts() {
    let (sb, cfg) = sandbox(&agent("probe", "retries = 1"));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let input = json!({"stderr": ["reading the input"], "fail_attempts": 1}).to_string();
    let out = sb.run_at(
        &server.url,
        &["agent", "run", "probe", "--follow", "--input", &input],
    );
    assert_eq!(code(&out), 0, "{out:?}");
    let id = stdout_json(&sb.run_at(&server.url, &["status", "-o", "json"]))[0]["runId"]
        .as_str()
        .unwrap()
        .to_string();

    // From the history: no --agent needed.
    let out = sb.run_at(&server.url, &["logs", &id]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = stdout(&out);
    for line in [
        "attempt 1: reading the input",
        "attempt 1: attempt 1 fails on purpose",
        "attempt 1: attempt 1 failed: exit status 3: attempt 1 fails on purpose; retrying in 500ms",
        "attempt 2: reading the input",
    ] {
        assert!(text.contains(line), "{line:?} not in {text}");
    }
    let out = sb.run_at(&server.url, &["logs", &id, "-q"]);
    assert!(stdout(&out).starts_with("reading the input\n"), "{out:?}");
    let out = sb.run_at(
        &server.url,
        &["logs", &id, "--agent", "probe", "-o", "json"],
    );
    let lines = &stdout_json(&out)["lines"];
    assert_eq!(lines[0]["line"], "reading the input", "{lines}");
    assert_eq!(lines[0]["attempt"], 1, "{lines}");

    // A run the history does not know needs its name, as for status.
    let err = assert_error(
        &sb.run_at(
            &server.url,
            &["logs", "01a20000-0000-7000-8000-000000000000"],
        ),
        2,
    );
    assert!(err.contains("--agent NAME"), "{err}");
}

#[test]
fn cancel_stops_a_running_run_and_refuses_an_ended_one() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let input = json!({"pidfile": "pids", "gate": "never"}).to_string();
    let out = sb.run_at(
        &server.url,
        &["agent", "run", "probe", "-q", "--input", &input],
    );
    assert_eq!(code(&out), 0, "{out:?}");
    let id = stdout(&out).trim().to_string();
    let pid = pids(&sb, "pids", 1)[0];

    let out = sb.run_at(&server.url, &["cancel", &id]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out).trim(), format!("run {id} canceled"));
    wait_until("the agent to be stopped", T, || {
        (!process_alive(pid)).then_some(())
    });
    let out = sb.run_at(&server.url, &["status", &id, "-o", "json"]);
    let run = stdout_json(&out);
    assert_eq!(
        (&run["status"], &run["canceled"]),
        (&json!("failed"), &json!(true))
    );

    // Again: it has ended, which is exit 1, saying how.
    let err = assert_error(&sb.run_at(&server.url, &["cancel", &id]), 1);
    assert!(
        err.contains("cannot cancel") && err.contains("canceled"),
        "{err}"
    );
    assert!(err.contains("status"), "the hint shows how to look: {err}");
    // A run the server does not know is exit 4.
    let out = sb.run_at(
        &server.url,
        &[
            "cancel",
            "01a20000-0000-7000-8000-000000000000",
            "--agent",
            "probe",
        ],
    );
    assert_error(&out, 4);
}

/// Against a server with only the spec's operations: no logs route (exit 4, saying logs are an
/// extension), and a bare 409 to a cancel is still "it had ended" (exit 1). A restack engine's
/// own "not found" for a run is not mistaken for a missing route.
#[test]
fn logs_and_cancel_against_a_server_without_the_extensions() {
    let sb = Sandbox::new();
    let standin = Standin::start(|req, _| match req.method.as_str() {
        "POST" => Reply::raw(409, "text/plain", "Conflict"),
        _ => Reply::raw(404, "text/plain", "Not Found"),
    });
    let err = assert_error(
        &sb.run_at(&standin.url, &["logs", "r-1", "--agent", "a"]),
        4,
    );
    assert!(err.contains("extension"), "{err}");
    let err = assert_error(
        &sb.run_at(&standin.url, &["cancel", "r-1", "--agent", "a"]),
        1,
    );
    assert!(
        err.contains("cannot cancel: run r-1 has already ended"),
        "{err}"
    );
    let routeless = Standin::start(|_, _| Reply::raw(404, "text/plain", "Not Found"));
    let err = assert_error(
        &sb.run_at(&routeless.url, &["cancel", "r-1", "--agent", "a"]),
        4,
    );
    assert!(err.contains("cancel is an extension"), "{err}");

    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let out = sb.run_at(
        &server.url,
        &[
            "logs",
            "01a20000-0000-7000-8000-000000000000",
            "--agent",
            "probe",
        ],
    );
    let err = assert_error(&out, 4);
    assert!(!err.contains("extension"), "{err}");
}

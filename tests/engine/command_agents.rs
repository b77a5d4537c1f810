//! Command agents' contract: JSON in on stdin, one JSON object out on stdout, stderr as logs,
//! the exit status decides, and the process sees its run's identity and configured `env`.

use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{agent, sandbox};

const T: Duration = Duration::from_secs(30);

#[test]
fn agent_gets_its_input_env_and_the_config_folder_as_working_directory() {
    let (sb, cfg) = sandbox(&agent("probe", "env = { GREETING = \"hej\" }"));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("agents", "probe", json!({"text": "x", "n": [1, 2]}));
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let out = &run["output"];
    assert_eq!(out["text"], "x");
    assert_eq!(out["n"], json!([1, 2]));
    assert_eq!(out["env"]["RESTACK_RUN_ID"], id.as_str());
    assert_eq!(out["env"]["RESTACK_AGENT_NAME"], "probe");
    assert_eq!(out["env"]["RESTACK_ATTEMPT"], "1");
    assert_eq!(out["env"]["GREETING"], "hej");
    let cwd = std::fs::canonicalize(out["cwd"].as_str().unwrap()).unwrap();
    assert_eq!(cwd, std::fs::canonicalize(sb.root.path()).unwrap());
}

#[test]
fn stdout_that_is_not_one_json_object_fails_the_run() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    for (stdout, says) in [
        ("hello", "not one JSON object"),
        ("{\"a\": 1}\n{\"b\": 2}\n", "not one JSON object"),
        ("[1, 2]", "must be one JSON object, not an array"),
        ("", "wrote nothing to stdout"),
    ] {
        let id = server.schedule("agents", "probe", json!({"stdout": stdout}));
        let run = server.wait_done("agents", "probe", &id, T);
        assert_eq!(run["status"], "failed", "stdout {stdout:?}: {run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "stdout {stdout:?}: {error}");
        assert!(run.get("output").is_none_or(Value::is_null), "{run}");
    }
}

#[test]
fn nonzero_exit_fails_with_the_status_and_last_stderr_line() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"stderr": ["loading model", "out of tokens"], "exit": 4}),
    );
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "exit status 4: out of tokens");
    assert!(run["completedAt"].is_string());
}

#[test]
fn stderr_lines_are_the_runs_logs() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"stderr": ["step one", "step two: ünïcode"]}),
    );
    assert_eq!(
        server.wait_done("agents", "probe", &id, T)["status"],
        "completed"
    );
    // Log lines are written without waiting for a commit: poll until both are there.
    let lines = crate::support::wait_until("both log lines", T, || {
        let (code, body) = server.get(&format!("/api/agents/probe/{id}/logs"));
        assert_eq!(code, 200, "{body}");
        let lines = body["lines"].as_array().cloned().unwrap_or_default();
        (lines.len() >= 2).then_some(lines)
    });
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["line"].as_str()).collect();
    assert_eq!(texts, ["step one", "step two: ünïcode"]);
    assert!(
        lines
            .iter()
            .all(|l| l["attempt"] == 1 && l["at"].is_string())
    );
}

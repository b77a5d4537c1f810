//! The spec's five operations answer with the spec's shapes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::Sandbox;

const T: Duration = Duration::from_secs(30);

/// RFC 3339 in UTC, e.g. `2025-01-31T12:00:00.123Z`.
fn assert_utc_time(v: &Value, what: &str) {
    let s = v.as_str().unwrap_or_else(|| panic!("{what} missing: {v}"));
    let b = s.as_bytes();
    assert!(
        s.len() >= 20 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' && s.ends_with('Z'),
        "{what} is not RFC 3339 UTC: {s}"
    );
}

#[test]
fn health_is_ok() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    assert_eq!(server.get("/health"), (200, json!({"status": "ok"})));
}

#[test]
fn schedule_answers_with_a_run_id_and_queued() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let (code, body) = server.post("/api/agents/sleep", json!({"input": {"seconds": 30}}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "queued");
    assert!(!body["runId"].as_str().unwrap().is_empty());
}

#[test]
fn an_instant_builtin_is_completed_by_the_time_its_schedule_answers() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let (code, body) = server.post("/api/agents/echo", json!({"input": {"a": 1}}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "completed");
    let id = body["runId"].as_str().unwrap();
    // No waiting: the insert that the 200 stands for already holds the output.
    let (code, run) = server.get(&format!("/api/agents/echo/{id}"));
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], json!({"a": 1}));
    assert_eq!(run["createdAt"], run["completedAt"]);
}

#[test]
fn completed_agent_run_has_every_spec_field() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let id = server.schedule("agents", "echo", json!({"msg": "hi", "n": 2}));
    let run = server.wait_done("agents", "echo", &id, T);
    assert_eq!(run["runId"], id.as_str());
    assert_eq!(run["agentName"], "echo");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], json!({"msg": "hi", "n": 2}));
    assert!(run.get("error").is_none_or(Value::is_null), "{run}");
    assert!(run.get("workflowName").is_none_or(Value::is_null), "{run}");
    assert_utc_time(&run["createdAt"], "createdAt");
    assert_utc_time(&run["completedAt"], "completedAt");
    assert!(run["completedAt"].as_str() >= run["createdAt"].as_str());
}

#[test]
fn failed_run_has_an_error_and_no_output() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "restack.toml",
        "[agents.broken]\ncommand = [\"python3\", \"-c\", \"import sys; sys.exit(2)\"]\n",
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("agents", "broken", json!({}));
    let run = server.wait_done("agents", "broken", &id, T);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "exit status 2");
    assert!(run.get("output").is_none_or(Value::is_null), "{run}");
    assert_utc_time(&run["completedAt"], "completedAt");
}

#[test]
fn an_unfinished_run_has_created_at_but_no_completed_at() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let id = server.schedule("agents", "sleep", json!({"seconds": 60}));
    let (code, run) = server.get(&format!("/api/agents/sleep/{id}"));
    assert_eq!(code, 200);
    assert!(
        matches!(run["status"].as_str(), Some("queued" | "running")),
        "{run}"
    );
    assert_utc_time(&run["createdAt"], "createdAt");
    assert!(run.get("completedAt").is_none_or(Value::is_null), "{run}");
    assert!(run.get("output").is_none_or(Value::is_null), "{run}");
}

#[test]
fn the_body_is_optional_and_no_body_means_empty_input() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "restack.toml",
        "[workflows.w]\nsteps = [{ agent = \"echo\" }]\n",
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    for (kind, name) in [("agents", "echo"), ("workflows", "w")] {
        for body in [&b""[..], b"  \n", b"{}", b"{\"input\": null}"] {
            let (code, resp) = server.post_raw(
                &format!("/api/{kind}/{name}"),
                "application/json",
                body.to_vec(),
            );
            assert_eq!(
                code,
                200,
                "{kind} {:?}: {resp}",
                String::from_utf8_lossy(body)
            );
            let id = resp["runId"].as_str().unwrap();
            let run = server.wait_done(kind, name, id, T);
            assert_eq!(run["output"], json!({}), "{run}");
        }
    }
    // No Content-Type at all, as `curl -X POST` sends it.
    let (code, resp) = crate::support::send(
        reqwest::blocking::Client::new().post(format!("{}/api/agents/echo", server.url)),
    );
    assert_eq!(code, 200, "{resp}");
}

#[test]
fn numbers_are_stored_and_answered_as_sent() {
    // Past 64 bits, more digits than an f64 holds, a trailing zero: an agent's input is data,
    // and a rounded wei amount or price is a changed one. The workflow also carries the input
    // through its steps into its stored output.
    let sb = Sandbox::new();
    let cfg = sb.write(
        "restack.toml",
        "[workflows.w]\nsteps = [{ agent = \"echo\" }, { sleep = \"10ms\" }]\n",
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let body = br#"{"input": {"wei": 1000000000000000000000, "pi": 3.14159265358979323846,
        "debt": -99999999999999999999, "price": 1.50}}"#;
    for (kind, name) in [("agents", "echo"), ("workflows", "w")] {
        let (code, resp) = server.post_raw(
            &format!("/api/{kind}/{name}"),
            "application/json",
            body.to_vec(),
        );
        assert_eq!(code, 200, "{resp}");
        let run = server.wait_done(kind, name, resp["runId"].as_str().unwrap(), T);
        let out = &run["output"];
        for (key, sent) in [
            ("wei", "1000000000000000000000"),
            ("pi", "3.14159265358979323846"),
            ("debt", "-99999999999999999999"),
            ("price", "1.50"),
        ] {
            assert_eq!(out[key].to_string(), sent, "{kind} {key}: {run}");
        }
    }
}

#[test]
fn workflow_run_has_workflow_name_and_steps() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "restack.toml",
        "[workflows.w]\nsteps = [{ agent = \"echo\" }, { sleep = \"10ms\" }]\n",
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "w", json!({"k": "v"}));
    let run = server.wait_done("workflows", "w", &id, T);
    assert_eq!(run["runId"], id.as_str());
    assert_eq!(run["workflowName"], "w");
    assert!(run.get("agentName").is_none_or(Value::is_null), "{run}");
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], json!({"k": "v"}));
    assert_utc_time(&run["createdAt"], "createdAt");
    assert_utc_time(&run["completedAt"], "completedAt");
    assert_eq!(run["steps"].as_array().map(Vec::len), Some(2), "{run}");
}

#[test]
fn run_ids_are_unique_and_time_ordered() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let ids: Vec<String> = (0..50)
        .map(|i| server.schedule("agents", "echo", json!({"i": i})))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, ids,
        "IDs must be distinct and sort in scheduling order"
    );
}

//! Workflows: each step gets the previous step's output, a sleep step is a timer, the last
//! step's output is the workflow's, and a failed step ends the workflow.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{agent, sandbox};

const T: Duration = Duration::from_secs(30);

fn config() -> String {
    format!(
        "{}{}[workflows.chain]\nsteps = [{{ agent = \"first\" }}, {{ sleep = \"200ms\" }}, {{ agent = \"echo\" }}, {{ agent = \"last\" }}]\n",
        agent("first", ""),
        agent("last", "")
    )
}

#[test]
fn steps_chain_their_outputs_and_the_last_one_is_the_workflows() {
    let (sb, cfg) = sandbox(&config());
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "chain", json!({"topic": "rust"}));
    let run = server.wait_done("workflows", "chain", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["workflowName"], "chain");
    assert_eq!(run["output"]["topic"], "rust");
    assert_eq!(run["output"]["seen"], json!(["first", "last"]));

    let steps = run["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4);
    assert!(names[0].contains("first") && names[1].contains("sleep"));
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["index"], i);
        assert_eq!(s["status"], "completed", "{s}");
        assert!(
            s["startedAt"].is_string() && s["completedAt"].is_string(),
            "{s}"
        );
    }
    // The timer held the workflow: the step after it started no earlier than it ended.
    assert!(steps[2]["startedAt"].as_str() >= steps[1]["completedAt"].as_str());
}

#[test]
fn a_failing_step_fails_the_workflow_and_later_steps_never_run() {
    let (sb, cfg) = sandbox(&config());
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "workflows",
        "chain",
        json!({"append": "marks", "first": {"exit": 9, "stderr": ["bad input"]}}),
    );
    let run = server.wait_done("workflows", "chain", &id, T);
    assert_eq!(run["status"], "failed");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("step 1") && error.contains("exit status 9: bad input"),
        "{error}"
    );
    assert_eq!(run["steps"][0]["status"], "failed");
    assert_eq!(run["steps"][1]["status"], "queued");
    assert_eq!(sb.read("marks"), "first 1\n");
}

#[test]
fn workflow_logs_hold_the_step_events() {
    let (sb, cfg) = sandbox(&config());
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "chain", json!({}));
    server.wait_done("workflows", "chain", &id, T);
    let (code, logs) = server.get(&format!("/api/workflows/chain/{id}/logs"));
    assert_eq!(code, 200, "{logs}");
    let lines: Vec<String> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect();
    for n in 1..=4 {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("step {n} ")) && l.contains("started")),
            "no start of step {n}: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("step {n} ")) && l.contains("completed")),
            "no end of step {n}: {lines:?}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("wakes at")), "{lines:?}");
}

/// A step's input is the step before it's output, so it is checked against the step's agent
/// when the step starts; only the first step's is known when the workflow is scheduled.
#[test]
fn a_later_steps_input_is_checked_against_its_agents_schema() {
    let (sb, cfg) =
        sandbox("[workflows.nap]\nsteps = [{ agent = \"echo\" }, { agent = \"sleep\" }]\n");
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "nap", json!({"x": 1}));
    let run = server.wait_done("workflows", "nap", &id, T);
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("step 2") && error.contains("input_schema of agent `sleep`"),
        "{error}"
    );
    assert_eq!(run["steps"][0]["status"], "completed");
    assert_eq!(run["steps"][1]["status"], "failed");
    assert!(
        run["steps"][1].get("startedAt").is_none_or(|t| t.is_null()),
        "it never started: {run}"
    );
    let (_, logs) = server.get(&format!("/api/workflows/nap/{id}/logs"));
    let said = |what: &str| {
        logs.to_string()
            .contains(&format!("step 2 (agent sleep) {what}"))
    };
    assert!(said("failed") && !said("started"), "{logs}");
}

/// A canceled workflow's running step ends with it: no step shows `running` afterwards.
#[test]
fn cancel_ends_the_running_step_too() {
    let (sb, cfg) = sandbox(&format!(
        "{}[workflows.one]\nsteps = [{{ agent = \"long\" }}]\n",
        agent("long", "")
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "one", json!({"pidfile": "pids", "sleep": 60}));
    super::fixtures::pids(&sb, "pids", 1);
    let (code, run) = server.post(&format!("/api/workflows/one/{id}/cancel"), json!({}));
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["canceled"], true);
    let step = &run["steps"][0];
    assert_eq!(step["status"], "failed", "{run}");
    assert_eq!(step["error"], "canceled", "{run}");
    assert!(step["completedAt"].is_string(), "{run}");
}

/// A step retried once: its start is logged under the first attempt, its end under the second.
#[test]
fn a_retried_steps_events_carry_their_own_attempts() {
    let (sb, cfg) = sandbox(&format!(
        "{}[workflows.again]\nsteps = [{{ agent = \"flaky\" }}]\n",
        agent("flaky", "retries = 1")
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "again", json!({"fail_attempts": 1}));
    let run = server.wait_done("workflows", "again", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let (_, logs) = server.get(&format!("/api/workflows/again/{id}/logs"));
    let attempt_of = |what: &str| {
        logs["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| {
                l["line"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("step 1 (agent flaky) {what}"))
            })
            .map(|l| l["attempt"].clone())
            .unwrap_or_else(|| panic!("no `{what}` line: {logs}"))
    };
    assert_eq!(attempt_of("started"), json!(1), "{logs}");
    assert_eq!(attempt_of("completed"), json!(2), "{logs}");
}

/// `echo` steps are not committed one by one: their ends ride with the workflow's next write.
/// They are still recorded, each with its times, and recorded before a step after them starts.
#[test]
fn echo_steps_are_recorded_before_the_next_step_starts() {
    let (sb, cfg) = sandbox(&format!(
        "{}[workflows.relay]\nsteps = [{{ agent = \"echo\" }}, {{ agent = \"echo\" }}, {{ agent = \"gated\" }}]\n\
         [workflows.echoes]\nsteps = [{{ agent = \"echo\" }}, {{ agent = \"echo\" }}, {{ agent = \"echo\" }}]\n",
        agent("gated", "")
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let gate = sb.path("gate");
    let id = server.schedule(
        "workflows",
        "relay",
        json!({"pidfile": "pids", "gate": gate.to_str().unwrap()}),
    );
    super::fixtures::pids(&sb, "pids", 1);
    let (code, run) = server.get(&format!("/api/workflows/relay/{id}"));
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["status"], "running", "{run}");
    for s in &run["steps"].as_array().unwrap()[..2] {
        assert_eq!(s["status"], "completed", "{run}");
        assert!(s["completedAt"].is_string(), "{run}");
    }
    assert_eq!(run["steps"][2]["status"], "running", "{run}");
    sb.write("gate", "");
    let run = server.wait_done("workflows", "relay", &id, T);
    assert_eq!(run["status"], "completed", "{run}");

    let id = server.schedule("workflows", "echoes", json!({"n": 3}));
    let run = server.wait_done("workflows", "echoes", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], json!({"n": 3}));
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    for s in steps {
        assert_eq!(s["status"], "completed", "{run}");
        let (started, ended) = (s["startedAt"].as_str(), s["completedAt"].as_str());
        assert!(started.is_some() && started <= ended, "{run}");
    }
    // The workflow started when its first step did, not when the last write landed.
    assert_eq!(run["startedAt"], steps[0]["startedAt"], "{run}");
}

//! The engine's additions to the spec: `?wait=` long-poll, `GET /api/runs`, cancel, and the
//! agent and workflow lists.

use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{agent, sandbox};
use crate::support::{Sandbox, wait_until};

const T: Duration = Duration::from_secs(30);

#[test]
fn wait_answers_when_the_status_changes() {
    let (sb, cfg) = sandbox(&agent("gated", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "gated",
        json!({"gate": "gate", "append": "marks"}),
    );
    let path = format!("/api/agents/gated/{id}");
    wait_until("the run to be running", T, || {
        let (_, run) = server.get(&path);
        (run["status"] == "running" && !sb.read("marks").is_empty()).then_some(())
    });

    // A short wait with nothing happening answers with the same status.
    let (code, run) = server.get(&format!("{path}?wait=0.2"));
    assert_eq!((code, run["status"].as_str()), (200, Some("running")));

    // A caller that last saw `queued` is told at once that the run has moved on, even with a
    // minute to wait (else a change between two looks would be slept through).
    let url = format!("{}{path}?wait=60&since=queued", server.url);
    let look =
        std::thread::spawn(move || crate::support::send(reqwest::blocking::Client::new().get(url)));
    wait_until(
        "the look with since=queued to answer",
        Duration::from_secs(20),
        || look.is_finished().then_some(()),
    );
    let (code, run) = look.join().unwrap();
    assert_eq!((code, run["status"].as_str()), (200, Some("running")));
    let (code, body) = server.get(&format!("{path}?wait=1&since=paused"));
    assert_eq!(code, 400, "{body}");

    // A long wait answers with the change, not after the full minute.
    let url = format!("{}{path}?wait=60", server.url);
    let poll =
        std::thread::spawn(move || crate::support::send(reqwest::blocking::Client::new().get(url)));
    sb.write("gate", "");
    wait_until("the long wait to answer", Duration::from_secs(20), || {
        poll.is_finished().then_some(())
    });
    let (code, run) = poll.join().unwrap();
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["status"], "completed", "{run}");
    assert!(run["output"].is_object());

    // On an ended run a wait answers at once with the end.
    let (_, run) = server.get(&format!("{path}?wait=60"));
    assert_eq!(run["status"], "completed");
}

#[test]
fn runs_list_filters_newest_first_and_pages() {
    let sb = Sandbox::new();
    let cfg = sb.write(
        "restack.toml",
        "[workflows.w]\nsteps = [{ agent = \"echo\" }]\n",
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let echoes: Vec<String> = (0..5)
        .map(|i| server.schedule("agents", "echo", json!({"i": i})))
        .collect();
    let sleeper = server.schedule("agents", "sleep", json!({"seconds": 60}));
    let wf = server.schedule("workflows", "w", json!({}));
    for id in &echoes {
        server.wait_done("agents", "echo", id, T);
    }
    server.wait_done("workflows", "w", &wf, T);
    // Its start is written after its insert: listed by status, it must have been.
    server.wait_status("agents", "sleep", &sleeper, "running", T);

    let ids = |body: &Value| -> Vec<String> {
        body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["runId"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, all) = server.get("/api/runs");
    assert_eq!(code, 200, "{all}");
    let mut newest_first: Vec<String> = echoes.clone();
    newest_first.push(sleeper.clone());
    newest_first.push(wf.clone());
    newest_first.reverse();
    assert_eq!(ids(&all), newest_first);
    assert!(all.get("next").is_none_or(Value::is_null), "{all}");

    let (_, body) = server.get("/api/runs?kind=agent&name=echo");
    let mut expected = echoes.clone();
    expected.reverse();
    assert_eq!(ids(&body), expected);
    assert!(
        body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["agentName"] == "echo")
    );

    let (_, body) = server.get("/api/runs?kind=workflow");
    assert_eq!(ids(&body), [wf.as_str()]);
    assert_eq!(body["runs"][0]["workflowName"], "w");

    let (_, body) = server.get("/api/runs?status=running");
    assert_eq!(ids(&body), [sleeper.as_str()]);

    // Pages of two, following `next`, give each echo once, in order.
    let mut paged = Vec::new();
    let mut before = String::new();
    loop {
        let (code, page) = server.get(&format!(
            "/api/runs?kind=agent&name=echo&limit=2&before={before}"
        ));
        assert_eq!(code, 200, "{page}");
        let page_ids = ids(&page);
        assert!(page_ids.len() <= 2);
        paged.extend(page_ids);
        match page["next"].as_str() {
            Some(next) => before = next.to_string(),
            None => break,
        }
    }
    assert_eq!(paged, expected);
}

#[test]
fn cancel_ends_a_run_once_and_a_second_cancel_is_409() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let id = server.schedule("agents", "sleep", json!({"seconds": 60}));
    let (code, run) = server.post(&format!("/api/agents/sleep/{id}/cancel"), json!({}));
    assert_eq!(code, 200, "{run}");
    assert_eq!(
        (&run["status"], &run["error"], &run["canceled"]),
        (&json!("failed"), &json!("canceled"), &json!(true))
    );
    assert!(run["completedAt"].is_string());
    let (code, body) = server.post(&format!("/api/agents/sleep/{id}/cancel"), json!({}));
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].is_string());

    let done = server.schedule("agents", "echo", json!({}));
    server.wait_done("agents", "echo", &done, T);
    let (code, _) = server.post(&format!("/api/agents/echo/{done}/cancel"), json!({}));
    assert_eq!(code, 409);
}

#[test]
fn canceling_a_sleeping_workflow_stops_it_before_its_next_step() {
    let toml = format!(
        "{}[workflows.nap]\nsteps = [{{ sleep = \"30s\" }}, {{ agent = \"last\" }}]\n",
        agent("last", "")
    );
    let (sb, cfg) = sandbox(&toml);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "nap", json!({"append": "marks"}));
    let path = format!("/api/workflows/nap/{id}");
    wait_until("the sleep step to start", T, || {
        let (_, run) = server.get(&path);
        (run["steps"][0]["status"] == "running").then_some(())
    });
    let (code, run) = server.post(&format!("{path}/cancel"), json!({}));
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["canceled"], true);
    let (_, run) = server.get(&format!("{path}?wait=1"));
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"][1]["status"], "queued");
    assert_eq!(sb.read("marks"), "");
}

#[test]
fn agent_and_workflow_lists_show_what_is_registered_with_schemas() {
    let toml = format!(
        "{}[workflows.digest]\nsteps = [{{ agent = \"summarize\" }}, {{ sleep = \"10s\" }}, {{ agent = \"echo\" }}]\n",
        agent(
            "summarize",
            "timeout = \"5m\"\nretries = 2\nconcurrency = 4\ninput_schema = { type = \"object\", required = [\"text\"] }\noutput_schema = { type = \"object\", required = [\"summary\"] }"
        )
    );
    let (sb, cfg) = sandbox(&toml);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);

    let (code, body) = server.get("/api/agents");
    assert_eq!(code, 200, "{body}");
    let agents = body["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "sleep", "summarize"]);
    let s = &agents[2];
    assert_eq!(s["kind"], "command");
    assert_eq!(s["inputSchema"]["required"], json!(["text"]));
    assert_eq!(s["outputSchema"]["required"], json!(["summary"]));
    assert_eq!(
        (&s["timeout"], &s["retries"], &s["concurrency"]),
        (&json!("5m"), &json!(2), &json!(4))
    );
    assert_eq!(agents[1]["kind"], "builtin");
    assert_eq!(agents[1]["inputSchema"]["required"], json!(["seconds"]));
    assert_eq!(
        agents[1]["outputSchema"]["required"],
        json!(["sleptSeconds"])
    );

    let (code, body) = server.get("/api/workflows");
    assert_eq!(code, 200, "{body}");
    let wfs = body["workflows"].as_array().unwrap();
    assert_eq!(wfs.len(), 1);
    assert_eq!(wfs[0]["name"], "digest");
    assert_eq!(
        wfs[0]["steps"],
        json!(["agent summarize", "sleep 10s", "agent echo"])
    );
}

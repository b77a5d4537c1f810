//! `input_schema` guards the door (400 naming the field, nothing stored); `output_schema`
//! guards the result (the run fails and says why).

use std::time::Duration;

use serde_json::json;

use super::fixtures::{agent, sandbox};

const SCHEMAS: &str = r#"input_schema = { type = "object", required = ["text"], properties = { text = { type = "string" } } }
output_schema = { type = "object", required = ["summary"] }"#;

#[test]
fn input_that_fails_the_schema_is_a_400_naming_the_field_and_is_not_stored() {
    let (sb, cfg) = sandbox(&agent("summarize", SCHEMAS));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    for input in [json!({"text": 5}), json!({"other": "x"})] {
        let (code, body) = server.post("/api/agents/summarize", json!({ "input": input }));
        assert_eq!(code, 400, "{input}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("text"), "{input}: {error}");
    }
    let (code, body) = server.get("/api/runs?name=summarize");
    assert_eq!(code, 200);
    assert_eq!(body["runs"], json!([]), "rejected runs must not be stored");
}

/// Sleep steps pass their input on, so a workflow that sleeps first is checked against its
/// first agent's schema too: the caller hears of a bad input now, not when the sleep ends.
#[test]
fn a_workflow_checks_its_input_against_the_first_agents_schema() {
    let toml = format!(
        "{}[workflows.digest]\nsteps = [{{ agent = \"summarize\" }}]\n\
         [workflows.later]\nsteps = [{{ sleep = \"1h\" }}, {{ agent = \"summarize\" }}, {{ agent = \"echo\" }}]\n",
        agent("summarize", SCHEMAS)
    );
    let (sb, cfg) = sandbox(&toml);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    for name in ["digest", "later"] {
        let (code, body) = server.post(
            &format!("/api/workflows/{name}"),
            json!({"input": {"text": []}}),
        );
        assert_eq!(code, 400, "{name}: {body}");
        assert!(body["error"].as_str().unwrap().contains("text"), "{body}");
    }
    let (code, body) = server.post("/api/workflows/later", json!({"input": {"text": "hi"}}));
    assert_eq!(code, 200, "{body}");
    // And the listing shows the schemas that apply: the first agent's input, and the output of
    // the last agent that changes it (an `echo` after it passes it on).
    let (code, body) = server.get("/api/workflows");
    assert_eq!(code, 200, "{body}");
    let later = body["workflows"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["name"] == "later"))
        .unwrap_or_else(|| panic!("no `later` in {body}"));
    assert_eq!(later["inputSchema"]["required"], json!(["text"]), "{later}");
    assert_eq!(
        later["outputSchema"]["required"],
        json!(["summary"]),
        "{later}"
    );
}

#[test]
fn output_that_fails_the_schema_fails_the_run_saying_why() {
    let (sb, cfg) = sandbox(&agent("summarize", SCHEMAS));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    // The probe echoes its input back, which has no `summary`.
    let id = server.schedule("agents", "summarize", json!({"text": "hello"}));
    let run = server.wait_done("agents", "summarize", &id, Duration::from_secs(30));
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains("output_schema") && error.contains("summary"),
        "{error}"
    );

    let id = server.schedule(
        "agents",
        "summarize",
        json!({"text": "hi", "summary": "ok"}),
    );
    let run = server.wait_done("agents", "summarize", &id, Duration::from_secs(30));
    assert_eq!(run["status"], "completed", "{run}");
}

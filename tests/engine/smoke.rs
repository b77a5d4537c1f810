use std::time::Duration;

use serde_json::json;

use crate::support::Sandbox;

#[test]
fn echo_run_completes_with_its_input_as_output() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let id = server.schedule("agents", "echo", json!({"x": 1}));
    let run = server.wait_done("agents", "echo", &id, Duration::from_secs(20));
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], json!({"x": 1}));
    assert_eq!(run["agentName"], "echo");
    assert!(run["createdAt"].is_string() && run["completedAt"].is_string());
}

//! SIGTERM stops the engine gracefully: no new requests, the running agent gets its grace
//! period to finish, and what was still queued runs at the next start.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{agent, sandbox};
use crate::support::wait_until;

const T: Duration = Duration::from_secs(30);

#[test]
fn sigterm_lets_the_running_agent_finish_and_leaves_the_queue_for_the_next_start() {
    let (sb, cfg) = sandbox(&agent("gated", "concurrency = 1"));
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let input = json!({"gate": "gate", "append": "marks"});
    let running = server.schedule("agents", "gated", input.clone());
    let queued = server.schedule("agents", "gated", input);
    wait_until("the first run to start", T, || {
        (sb.read("marks") == "gated 1\n").then_some(())
    });

    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    let health = format!("{}/health", server.url);
    wait_until("the engine to stop accepting requests", T, || {
        reqwest::blocking::get(&health).is_err().then_some(())
    });
    sb.write("gate", "");
    let status = wait_until("the engine to exit", T, || server.child.try_wait().unwrap());
    assert!(status.success(), "{status:?}\n{}", server.logs());

    let server = sb.serve(Some(&cfg), &data, &[]);
    let (_, run) = server.get(&format!("/api/agents/gated/{running}"));
    assert_eq!(
        run["status"], "completed",
        "finished within the grace period: {run}"
    );
    assert_eq!(run["attempt"], 1);
    let run = server.wait_done("agents", "gated", &queued, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(sb.read("marks"), "gated 1\ngated 1\n");
}

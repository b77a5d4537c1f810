//! A command agent's queue longer than the engine holds in memory (256 runs) waits in the store
//! and is read back as runs finish: every run still runs, once, and after a `kill -9` the next
//! engine picks the whole queue up.

use std::time::Duration;

use serde_json::json;

use super::fixtures::sandbox;
use crate::support::{Sandbox, Server, wait_until};

/// Generous: 400 runs one at a time, each two synced commits and a process, on a busy machine.
const T: Duration = Duration::from_secs(180);

/// Past the 256 runs held in memory, so that the queue is read back from the store in more than
/// one batch.
const RUNS: usize = 400;

/// One run at a time, each held until the `gate` file exists, each noting its run ID in `order`.
const CONFIG: &str = r#"[agents.gated]
command = ["sh", "-c", "while [ ! -e gate ]; do sleep 0.02; done; echo \"$RESTACK_RUN_ID\" >> order; cat"]
concurrency = 1
retries = 1
"#;

fn schedule_all(server: &Server) -> Vec<String> {
    (0..RUNS)
        .map(|n| server.schedule("agents", "gated", json!({ "n": n })))
        .collect()
}

/// Waits until every scheduled run has run, and checks that none ran twice. (The order is
/// roughly the schedule's: the runs read back in one batch start in whatever order the
/// runtime polls their drivers.)
fn each_ran_once(sb: &Sandbox, ids: &[String]) {
    let order = wait_until("every run to run", T, || {
        let order: Vec<String> = sb.read("order").lines().map(String::from).collect();
        (order.len() >= ids.len()).then_some(order)
    });
    let ran: std::collections::HashSet<&String> = order.iter().collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !ran.contains(id)).collect();
    assert!(missing.is_empty(), "never ran: {missing:?}");
    assert_eq!(order.len(), ids.len(), "some run ran twice");
}

#[test]
fn a_queue_past_what_the_engine_holds_runs_every_run_once() {
    let (sb, cfg) = sandbox(CONFIG);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let ids = schedule_all(&server);
    sb.write("gate", "");
    each_ran_once(&sb, &ids);
    let last = server.wait_done("agents", "gated", ids.last().unwrap(), T);
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["output"], json!({ "n": RUNS - 1 }));
}

#[test]
fn after_kill_9_the_next_engine_runs_the_whole_queue() {
    let (sb, cfg) = sandbox(CONFIG);
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let ids = schedule_all(&server);
    let cut = wait_until("a run to start", T, || {
        let (_, running) = server.get("/api/runs?name=gated&status=running");
        running["runs"][0]["runId"].as_str().map(String::from)
    });
    server.kill9();
    let server = sb.serve(Some(&cfg), &data, &[]);
    sb.write("gate", "");
    each_ran_once(&sb, &ids);
    // The run that was running at the kill had its attempt cut short, and ran again.
    let cut = server.wait_done("agents", "gated", &cut, T);
    assert_eq!(cut["status"], "completed", "{cut}");
    assert_eq!(cut["attempt"], 2, "{cut}");
}

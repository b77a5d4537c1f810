//! A command agent's queue, or a workflow's, longer than the engine holds in memory (256 runs
//! of an agent; `workflows_in_memory` of a workflow) waits in the store and is read back as
//! runs finish: every run still runs, once, and after a `kill -9` the next engine picks the
//! whole queue up.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{agent, sandbox};
use crate::support::{Sandbox, Server, wait_until};

/// Generous: 400 runs one at a time, each two synced commits and a process, on a busy machine.
const T: Duration = Duration::from_secs(180);

/// Past the 256 runs of an agent held in memory (and far past the workflows' 64), so that the
/// queue is read back from the store in more than one batch.
const RUNS: usize = 400;

/// One run at a time, each held until the `gate` file exists, each noting its run ID in
/// `order`; and a workflow whose one step is that agent (its step runs under the workflow's
/// run ID).
const CONFIG: &str = r#"[serve]
workflows_in_memory = 64

[agents.gated]
command = ["sh", "-c", "while [ ! -e gate ]; do sleep 0.02; done; echo \"$RESTACK_RUN_ID\" >> order; cat"]
concurrency = 1
retries = 1

[workflows.flow]
steps = [{ agent = "gated" }]
"#;

fn schedule_all(server: &Server, area: &str, name: &str) -> Vec<String> {
    (0..RUNS)
        .map(|n| server.schedule(area, name, json!({ "n": n })))
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

fn a_long_queue_runs_every_run_once(area: &str, name: &str) {
    let (sb, cfg) = sandbox(CONFIG);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let ids = schedule_all(&server, area, name);
    sb.write("gate", "");
    each_ran_once(&sb, &ids);
    let last = server.wait_done(area, name, ids.last().unwrap(), T);
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["output"], json!({ "n": RUNS - 1 }));
}

#[test]
fn an_agents_queue_past_what_the_engine_holds_runs_every_run_once() {
    a_long_queue_runs_every_run_once("agents", "gated");
}

#[test]
fn a_workflows_queue_past_what_the_engine_holds_runs_every_run_once() {
    a_long_queue_runs_every_run_once("workflows", "flow");
}

/// Returns the run that was running at the kill, once it has completed again.
fn after_kill_9_the_next_engine_runs_the_whole_queue(area: &str, name: &str) -> serde_json::Value {
    let (sb, cfg) = sandbox(CONFIG);
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let ids = schedule_all(&server, area, name);
    let cut = wait_until("a run to start", T, || {
        let (_, running) = server.get(&format!("/api/runs?name={name}&status=running"));
        running["runs"][0]["runId"].as_str().map(String::from)
    });
    server.kill9();
    let server = sb.serve(Some(&cfg), &data, &[]);
    // Only part of the queue was read back at the start; the rest waits in the store.
    let kind = area.trim_end_matches('s');
    assert!(
        server.logs().contains(&format!("{kind} `{name}`: "))
            && server.logs().contains("queued runs wait in the store"),
        "{}",
        server.logs()
    );
    sb.write("gate", "");
    each_ran_once(&sb, &ids);
    let cut = server.wait_done(area, name, &cut, T);
    assert_eq!(cut["status"], "completed", "{cut}");
    cut
}

#[test]
fn after_kill_9_the_next_engine_runs_an_agents_whole_queue() {
    let cut = after_kill_9_the_next_engine_runs_the_whole_queue("agents", "gated");
    // Its attempt was cut short, and it ran again.
    assert_eq!(cut["attempt"], 2, "{cut}");
}

#[test]
fn after_kill_9_the_next_engine_runs_a_workflows_whole_queue() {
    let cut = after_kill_9_the_next_engine_runs_the_whole_queue("workflows", "flow");
    assert_eq!(cut["steps"][0]["attempt"], 2, "{cut}");
}

/// A workflow of three runs, `workflows_in_memory = 1`: each sleeps 3 s, then holds the probe
/// agent 0.4 s and reports how many others were inside at once.
fn nap_sandbox() -> (Sandbox, std::path::PathBuf) {
    sandbox(&format!(
        "[serve]\nworkflows_in_memory = 1\n\n{}[workflows.nap]\nsteps = [{{ sleep = \"3s\" }}, {{ agent = \"probe\" }}]\n",
        agent("probe", "")
    ))
}

/// Schedules the three naps and waits until all three are asleep at once.
fn three_asleep(sb: &Sandbox, server: &Server) -> Vec<String> {
    let input = json!({ "active": sb.path("inside"), "hold": 0.4 });
    let ids = (0..3)
        .map(|_| server.schedule("workflows", "nap", input.clone()))
        .collect();
    wait_until("all three asleep at once", Duration::from_secs(30), || {
        let (_, runs) = server.get("/api/runs?name=nap&status=running&limit=100");
        (runs["runs"].as_array().map_or(0, Vec::len) == 3).then_some(())
    });
    ids
}

/// Each run completes, and none ran the probe while another did.
fn took_turns(server: &Server, ids: &[String]) {
    for id in ids {
        let run = server.wait_done("workflows", "nap", id, T);
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(
            run["output"]["others"], 0,
            "two ran the step at once: {run}"
        );
    }
}

/// A workflow asleep for long gives its place up: with `workflows_in_memory = 1`, three runs
/// of a workflow that sleeps 3 s are all under way at once (before, the second started only
/// when the first ended). Woken, they take turns again.
#[test]
fn runs_asleep_give_their_place_up_and_woken_runs_take_turns() {
    let (sb, cfg) = nap_sandbox();
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let ids = three_asleep(&sb, &server);
    took_turns(&server, &ids);
}

/// After a `kill -9`, runs whose sleep ended while no engine ran still take turns: the next
/// engine does not drive every run it finds under way at once.
#[test]
fn after_kill_9_runs_whose_sleep_ended_meanwhile_still_take_turns() {
    let (sb, cfg) = nap_sandbox();
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let ids = three_asleep(&sb, &server);
    // Every sleep began before now, so each is over by then.
    let due = std::time::Instant::now() + Duration::from_secs(3);
    server.kill9();
    // The wake-up times pass while no engine runs.
    wait_until("the sleeps to be over", T, || {
        (std::time::Instant::now() > due).then_some(())
    });
    let server = sb.serve(Some(&cfg), &data, &[]);
    took_turns(&server, &ids);
}

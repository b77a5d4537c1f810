//! Workflows after `kill -9`: they resume at the first unfinished step, a completed step never
//! runs again, and a sleep step keeps its stored wake-up time.

use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{agent, sandbox};
use crate::support::{Server, wait_until};

const T: Duration = Duration::from_secs(30);

fn config() -> String {
    format!(
        "{}{}[workflows.nap]\nsteps = [{{ agent = \"first\" }}, {{ sleep = \"5s\" }}, {{ agent = \"last\" }}]\n\n\
         [workflows.pair]\nsteps = [{{ agent = \"first\" }}, {{ agent = \"last\" }}]\n\n\
         [workflows.doze]\nsteps = [{{ agent = \"first\" }}, {{ sleep = \"2s\" }}, {{ agent = \"last\" }}]\n",
        agent("first", ""),
        agent("last", "retries = 1")
    )
}

/// Waits for the workflow at `path` to sleep in its second step; its status, and its wake-up time.
fn asleep(server: &Server, path: &str) -> (Value, String) {
    let run: Value = wait_until("the sleep step to start", T, || {
        let (_, run) = server.get(path);
        (run["steps"][1]["status"] == "running").then_some(run)
    });
    let wake_at = run["steps"][1]["wakeAt"]
        .as_str()
        .expect("wakeAt")
        .to_string();
    (run, wake_at)
}

#[test]
fn killed_during_a_sleep_step_the_workflow_keeps_its_wake_time_and_skips_done_steps() {
    let (sb, cfg) = sandbox(&config());
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule("workflows", "nap", json!({"append": "marks"}));
    let path = format!("/api/workflows/nap/{id}");
    let (before, wake_at) = asleep(&server, &path);
    server.kill9();
    assert_eq!(sb.read("marks"), "first 1\n");

    let server = sb.serve(Some(&cfg), &data, &[]);
    // The stored wake-up time is kept once the step completes, so this holds even if a slow
    // restart let the timer fire before this read.
    let (_, after) = server.get(&path);
    assert_eq!(
        after["steps"][1]["wakeAt"],
        wake_at.as_str(),
        "the timer moved"
    );
    assert_eq!(after["steps"][0], before["steps"][0]);

    let run = server.wait_done("workflows", "nap", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(sb.read("marks"), "first 1\nlast 1\n");
    assert_eq!(run["output"]["seen"], json!(["first", "last"]));
    assert_eq!(run["steps"][1]["wakeAt"], wake_at.as_str());
    let slept_until = run["steps"][1]["completedAt"].as_str().unwrap();
    assert!(slept_until >= wake_at.as_str(), "{slept_until} < {wake_at}");
}

#[test]
fn killed_during_a_later_step_the_workflow_resumes_there_with_the_stored_output() {
    let (sb, cfg) = sandbox(&config());
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule(
        "workflows",
        "pair",
        json!({"append": "marks", "last": {"gate": "gate"}}),
    );
    wait_until("the second step to start", T, || {
        (sb.read("marks") == "first 1\nlast 1\n").then_some(())
    });
    server.kill9();

    sb.write("gate", "");
    let server = sb.serve(Some(&cfg), &data, &[]);
    let run = server.wait_done("workflows", "pair", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(sb.read("marks"), "first 1\nlast 1\nlast 2\n");
    // The resumed step got the first step's stored output, not the workflow's input.
    assert_eq!(run["output"]["seen"], json!(["first", "last"]));
    assert_eq!(run["steps"][1]["attempt"], 2);
}

/// A workflow resumes at its first unfinished step even when that step's agent has no
/// retries: the restart, not the agent, cut it short. (An agent run on its own fails then.)
#[test]
fn a_step_without_retries_cut_short_by_a_kill_runs_again() {
    let (sb, cfg) = sandbox(&config());
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule(
        "workflows",
        "pair",
        json!({"append": "marks", "first": {"gate": "gate"}}),
    );
    wait_until("the first step to start", T, || {
        (sb.read("marks") == "first 1\n").then_some(())
    });
    server.kill9();

    sb.write("gate", "");
    let server = sb.serve(Some(&cfg), &data, &[]);
    let run = server.wait_done("workflows", "pair", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(sb.read("marks"), "first 1\nfirst 2\nlast 1\n");
    assert_eq!(run["steps"][0]["attempt"], 2, "{run}");
    let logs = server.log_lines("workflows", "pair", &id);
    assert!(
        logs.iter()
            .any(|l| l == "attempt 1 interrupted by engine restart; retrying"),
        "{logs:?}"
    );
}

/// A restart stops what the killed engine's running agents left behind, but a workflow asleep
/// at the kill had no agent running, even when its sleep ended during the downtime: what its
/// earlier steps left (a daemon, here) is theirs.
#[test]
fn a_restart_spares_what_an_asleep_workflows_steps_left() {
    let (sb, cfg) = sandbox(&config());
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule(
        "workflows",
        "doze",
        json!({"first": {"daemon": 120, "daemon_pidfile": "first.pid"}}),
    );
    let (_, wake_at) = asleep(&server, &format!("/api/workflows/doze/{id}"));
    let daemon = super::fixtures::pids(&sb, "first.pid", 1)[0];
    server.kill9();
    wait_until("the sleep to end while no engine runs", T, || {
        (restack::api::rfc3339_ms(restack::api::now_ms()) > wake_at).then_some(())
    });

    let server = sb.serve(Some(&cfg), &data, &[]);
    let run = server.wait_done("workflows", "doze", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert!(
        crate::support::process_alive(daemon),
        "the restart swept the first step's daemon"
    );
    // SAFETY: kill(2) on the pid this test's agent started; no memory involved.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
}

/// The config can change between a kill and the restart. A run whose begun steps are no longer
/// the same steps fails when it next moves, saying why, rather than run a finished step again;
/// a sleep may change its length (its stored wake-up time stands), and the steps a run has not
/// reached may change freely.
#[test]
fn a_workflow_edited_under_a_run_stops_it_rather_than_redo_a_step() {
    let config = |pay: &str, nap: &str| {
        format!(
            "{}{}[workflows.pay]\nsteps = [{pay}]\n[workflows.nap]\nsteps = [{nap}]\n",
            agent("first", ""),
            agent("last", "")
        )
    };
    let v1 = r#"{ agent = "first" }, { sleep = "5s" }, { agent = "last" }"#;
    let (sb, cfg) = sandbox(&config(v1, v1));
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let pay = server.schedule("workflows", "pay", json!({"append": "marks"}));
    let nap = server.schedule("workflows", "nap", json!({"n": 1}));
    asleep(&server, &format!("/api/workflows/pay/{pay}"));
    asleep(&server, &format!("/api/workflows/nap/{nap}"));
    server.kill9();

    // `pay` gains a step before the one it finished; `nap` sleeps longer and ends otherwise.
    let pay_v2 = r#"{ agent = "echo" }, { agent = "first" }, { sleep = "3s" }, { agent = "echo" }"#;
    let nap_v2 = r#"{ agent = "first" }, { sleep = "1h" }, { agent = "echo" }"#;
    std::fs::write(&cfg, config(pay_v2, nap_v2)).unwrap();
    let server = sb.serve(Some(&cfg), &data, &[]);
    let run = server.wait_done("workflows", "pay", &pay, T);
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("changed while this run was under way")
            && error.contains("`agent first`")
            && error.contains("`agent echo`"),
        "{error}"
    );
    assert_eq!(sb.read("marks"), "first 1\n", "no step ran twice");
    // The steps it ran are shown as they ran.
    assert_eq!(run["steps"][0]["step"], "agent first", "{run}");
    assert_eq!(run["steps"][1]["step"], "sleep 5s", "{run}");
    // The sleep it was in failed with the run, and ended when the run did.
    assert_eq!(run["steps"][1]["status"], "failed", "{run}");
    assert_eq!(run["steps"][1]["completedAt"], run["completedAt"], "{run}");

    let run = server.wait_done("workflows", "nap", &nap, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"]["n"], 1, "{run}");
    assert_eq!(run["steps"][1]["step"], "sleep 5s", "{run}");
    assert_eq!(run["steps"][2]["step"], "agent echo", "{run}");
}

/// A completed run shows the steps it ran, not steps the config gained after it ended.
#[test]
fn a_completed_run_shows_the_steps_it_ran() {
    let (sb, cfg) = sandbox(&config());
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule("workflows", "pair", json!({}));
    server.wait_done("workflows", "pair", &id, T);
    server.kill9();
    let grown = config().replace(
        "[workflows.pair]\nsteps = [{ agent = \"first\" }, { agent = \"last\" }]",
        "[workflows.pair]\nsteps = [{ agent = \"first\" }, { agent = \"last\" }, { sleep = \"5s\" }]",
    );
    assert_ne!(grown, config());
    std::fs::write(&cfg, grown).unwrap();
    let server = sb.serve(Some(&cfg), &data, &[]);
    let (_, run) = server.get(&format!("/api/workflows/pair/{id}"));
    let steps: Vec<&str> = run["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{run}"))
        .iter()
        .map(|s| s["step"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(steps, ["agent first", "agent last"], "{run}");
}

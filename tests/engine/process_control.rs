//! What the engine does to agent processes: cancel and timeout kill the whole process group
//! (and what left it), failed attempts are retried, `concurrency` bounds how many run at once.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{agent, assert_all_gone, pids, sandbox};
use crate::support::{Sandbox, Server, process_alive};

const T: Duration = Duration::from_secs(30);

/// An agent configured with `extra` that starts a child and sleeps a minute; returns the
/// engine, the run, and the agent's and child's pids once both are up.
fn long_agent_with_child(extra: &str) -> (Sandbox, Server, String, Vec<i32>) {
    let (sb, cfg) = sandbox(&agent("probe", extra));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"pidfile": "pids", "child": true, "sleep": 60}),
    );
    let pids = pids(&sb, "pids", 2);
    (sb, server, id, pids)
}

#[test]
fn cancel_kills_the_agent_and_what_it_started() {
    let (_sb, server, id, pids) = long_agent_with_child("");
    assert!(pids.iter().all(|&p| process_alive(p)));

    let (code, run) = server.post(&format!("/api/agents/probe/{id}/cancel"), json!({}));
    assert_eq!(code, 200, "{run}");
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "canceled");
    assert_eq!(run["canceled"], true);
    assert_all_gone(&pids);

    let (_, run) = server.get(&format!("/api/agents/probe/{id}"));
    assert_eq!(run["status"], "failed", "the cancel must stick: {run}");
    assert_eq!(run["error"], "canceled");
}

#[test]
fn timeout_kills_the_process_group_and_fails_the_run() {
    // Long enough for the agent to start its child and say so on a loaded machine.
    let (_sb, server, id, pids) = long_agent_with_child("timeout = \"3s\"");
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "timed out after 3s");
    assert_all_gone(&pids);
}

/// A process that left the agent's group (a session of its own, as a daemon starts) still
/// carries the run's ID: however an attempt fails (a timeout, a cancel, its exit status, its
/// stdout), it is found by that, as at a restart, and does not go on beside a retry.
#[test]
fn what_left_the_group_ends_with_the_attempt_too() {
    let toml = format!(
        "{}{}",
        agent("probe", ""),
        agent("slow", "timeout = \"3s\"")
    );
    let (sb, cfg) = sandbox(&toml);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    for (name, end, value) in [
        ("slow", "sleep", json!(60)),
        ("probe", "sleep", json!(60)),
        ("probe", "exit", json!(3)),
        ("probe", "stdout", json!("not json")),
    ] {
        let file = format!("{name}-{end}.pid");
        let mut input = json!({"daemon": 120, "daemon_pidfile": file});
        input[end] = value;
        let id = server.schedule("agents", name, input);
        let daemon = pids(&sb, &file, 1);
        if (name, end) == ("probe", "sleep") {
            let (code, run) = server.post(&format!("/api/agents/probe/{id}/cancel"), json!({}));
            assert_eq!(code, 200, "{run}");
        }
        let run = server.wait_done("agents", name, &id, T);
        assert_eq!(run["status"], "failed", "{name} {end}: {run}");
        assert_all_gone(&daemon);
    }
}

/// An output its schema refuses fails the attempt as bad stdout does: what the attempt left
/// running is swept, and the retry gets its chance (a model's next answer may fit).
#[test]
fn an_output_the_schema_refuses_is_retried_and_its_leftovers_swept() {
    let (sb, cfg) = sandbox(&agent(
        "strict",
        "retries = 1\noutput_schema = { type = \"object\", required = [\"summary\"] }",
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "strict",
        json!({"append": "attempts", "daemon": 120, "daemon_pidfile": "strict.pid"}),
    );
    let run = server.wait_done("agents", "strict", &id, T);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["attempt"], 2, "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("output_schema") && error.contains("summary"),
        "{run}"
    );
    assert_eq!(sb.read("attempts"), "strict 1\nstrict 2\n");
    assert_all_gone(&pids(&sb, "strict.pid", 1));
}

/// The sweep after a failed step finds that step's processes alone: what an earlier, completed
/// step of the same workflow left running is that step's business, as after an agent run.
#[test]
fn a_failed_step_does_not_sweep_what_a_completed_step_left() {
    let toml = format!(
        "{}{}[workflows.two]\nsteps = [{{ agent = \"first\" }}, {{ agent = \"second\" }}]\n",
        agent("first", ""),
        agent("second", "")
    );
    let (sb, cfg) = sandbox(&toml);
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "workflows",
        "two",
        json!({
            "first": {"daemon": 120, "daemon_pidfile": "first.pid"},
            "second": {"daemon": 120, "daemon_pidfile": "second.pid", "exit": 3},
        }),
    );
    let run = server.wait_done("workflows", "two", &id, T);
    assert_eq!(run["status"], "failed", "{run}");
    let (first, second) = (pids(&sb, "first.pid", 1), pids(&sb, "second.pid", 1));
    assert_all_gone(&second);
    assert!(process_alive(first[0]), "the first step's daemon was swept");
    // SAFETY: kill(2) on the pid this test's agent started; no memory involved.
    unsafe { libc::kill(first[0], libc::SIGKILL) };
}

#[test]
fn a_failed_attempt_is_retried_and_the_retry_can_succeed() {
    let (sb, cfg) = sandbox(&agent("probe", "retries = 1"));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"append": "attempts", "fail_attempts": 1}),
    );
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["attempt"], 2);
    assert_eq!(run["output"]["env"]["RESTACK_ATTEMPT"], "2");
    assert_eq!(sb.read("attempts"), "probe 1\nprobe 2\n");
    let (_, logs) = server.get(&format!("/api/agents/probe/{id}/logs"));
    let text = logs.to_string();
    assert!(text.contains("attempt 1 fails on purpose"), "{logs}");
}

#[test]
fn retries_run_out_and_the_last_error_is_the_runs() {
    let (sb, cfg) = sandbox(&agent("probe", "retries = 1"));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"append": "attempts", "fail_attempts": 5}),
    );
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "exit status 3: attempt 2 fails on purpose");
    assert_eq!(sb.read("attempts"), "probe 1\nprobe 2\n");
}

#[test]
fn concurrency_one_runs_one_at_a_time() {
    let (sb, cfg) = sandbox(&agent("probe", "concurrency = 1"));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let ids: Vec<String> = (0..4)
        .map(|_| server.schedule("agents", "probe", json!({"active": "active", "hold": 0.3})))
        .collect();
    for id in &ids {
        let run = server.wait_done("agents", "probe", id, T);
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["output"]["others"], 0, "another run overlapped: {run}");
    }
}

#[test]
fn without_a_limit_runs_do_overlap() {
    // The counterpart of the test above: proves the probe can see an overlap at all.
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    // Each holds until it sees another (at most 20 s), so a slow start cannot hide an overlap.
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let input = json!({"active": "active", "hold": 20, "until_seen": true});
            server.schedule("agents", "probe", input)
        })
        .collect();
    let overlapped = ids.iter().any(|id| {
        let run = server.wait_done("agents", "probe", id, T);
        run["output"]["others"].as_u64().unwrap_or(0) > 0
    });
    assert!(overlapped, "three unlimited runs never overlapped");
}

/// An engine out of file descriptors (here: a low limit, and clients holding connections open)
/// cannot start an agent. That is the engine's shortage, not the agent's failure: the attempt
/// waits and starts again once descriptors are free, and the run, which has no retries, still
/// completes instead of failing for good.
#[test]
fn an_agent_the_engine_cannot_start_for_want_of_descriptors_waits_and_runs() {
    short_of_descriptors(None);
}

/// And an engine stopped while the agent waits, gracefully or by `kill -9`, leaves the attempt
/// unspent: the next engine runs it, where it would have failed the run as "interrupted by
/// engine restart".
#[test]
fn a_stop_while_an_agent_waits_for_descriptors_leaves_its_attempt_unspent() {
    short_of_descriptors(Some(true));
}

#[test]
fn a_crash_while_an_agent_waits_for_descriptors_leaves_its_attempt_unspent() {
    short_of_descriptors(Some(false));
}

/// `stop`: none, or a graceful one (`true`) or `kill -9` while the agent waits.
fn short_of_descriptors(stop: Option<bool>) {
    use std::os::unix::process::CommandExt;
    let (sb, cfg) = sandbox(&format!(
        "{}[workflows.later]\nsteps = [{{ sleep = \"2s\" }}, {{ agent = \"probe\" }}]\n",
        agent("probe", "")
    ));
    let mut cmd = sb.std_cmd();
    cmd.arg("-c").arg(&cfg);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sb.path("engine"));
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let server = Server::spawn(cmd, &sb.path("engine"));
    let id = server.schedule("workflows", "later", json!({"x": 1}));
    // Hold more connections than the engine has descriptors left, idle, while its sleep ends.
    let addr = server.url.trim_start_matches("http://").to_string();
    let held: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    crate::support::wait_until("the engine to be short of descriptors", T, || {
        server.logs().contains("trying again in").then_some(())
    });
    let mut server = server;
    if let Some(graceful) = stop {
        if graceful {
            assert!(server.terminate(T).is_some(), "the engine did not stop");
        } else {
            server.kill9();
        }
        drop(held);
        server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    } else {
        drop(held);
    }
    let run = server.wait_done("workflows", "later", &id, T);
    assert_eq!(run["status"], "completed", "{run}\n{}", server.logs());
    assert_eq!(run["output"]["x"], 1, "{run}");
}

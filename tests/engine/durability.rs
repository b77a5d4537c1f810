//! A 200 from a schedule call survives `kill -9`, and what was queued or running when the
//! engine died is picked up at the next start.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{agent, assert_all_gone, pids, sandbox};
use crate::support::{Sandbox, process_alive, wait_until};

const T: Duration = Duration::from_secs(60);

#[test]
fn every_acknowledged_run_survives_kill_9_under_load_and_runs_after_restart() {
    let sb = Sandbox::new();
    let data = sb.path("engine");
    let mut server = sb.serve(None, &data, &[]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (url, acked, stop) = (server.url.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Slow sleeps keep runs unfinished at the kill; echoes finish at once.
                    let (name, input) = if n.is_multiple_of(2) {
                        ("sleep", json!({"seconds": 0.3}))
                    } else {
                        ("echo", json!({"thread": t, "n": n}))
                    };
                    let resp = http
                        .post(format!("{url}/api/agents/{name}"))
                        .json(&json!({ "input": input }))
                        .timeout(Duration::from_secs(10))
                        .send();
                    let Ok(resp) = resp else { break };
                    if resp.status() != 200 {
                        break;
                    }
                    let Ok(body) = resp.json::<Value>() else {
                        break;
                    };
                    let id = body["runId"].as_str().expect("runId").to_string();
                    acked.lock().unwrap().push((name.to_string(), id));
                }
            })
        })
        .collect();
    wait_until("200 acknowledged schedules", T, || {
        (acked.lock().unwrap().len() >= 200).then_some(())
    });
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }

    let server = sb.serve(None, &data, &[]);
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    for (name, id) in &acked {
        let run = server.wait_done("agents", name, id, T);
        assert_eq!(
            run["status"], "completed",
            "acknowledged run lost or broken: {run}"
        );
    }
    assert!(
        server.logs().contains("recovered"),
        "the kill should have left unfinished runs to recover: {}",
        server.logs()
    );
}

#[test]
fn queued_runs_run_after_a_restart_and_an_interrupted_attempt_is_retried() {
    let (sb, cfg) = sandbox(&agent("gated", "concurrency = 1\nretries = 1"));
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let input = json!({"gate": "gate", "append": "marks"});
    let ids: Vec<String> = (0..3)
        .map(|_| server.schedule("agents", "gated", input.clone()))
        .collect();
    wait_until("the first run to start", T, || {
        (sb.read("marks") == "gated 1\n").then_some(())
    });
    for id in &ids[1..] {
        let (_, run) = server.get(&format!("/api/agents/gated/{id}"));
        assert_eq!(run["status"], "queued", "{run}");
    }
    server.kill9();

    sb.write("gate", "");
    let server = sb.serve(Some(&cfg), &data, &[]);
    let runs: Vec<Value> = ids
        .iter()
        .map(|id| server.wait_done("agents", "gated", id, T))
        .collect();
    for run in &runs {
        assert_eq!(run["status"], "completed", "{run}");
    }
    assert_eq!(runs[0]["attempt"], 2, "the interrupted attempt is retried");
    let logs = server.log_lines("agents", "gated", &ids[0]);
    assert!(
        logs.iter()
            .any(|l| l == "attempt 1 interrupted by engine restart; retrying"),
        "the cut attempt leaves a trace: {logs:?}"
    );
    assert_eq!(runs[1]["attempt"], 1);
    let mut marks: Vec<&str> = Vec::new();
    let text = sb.read("marks");
    marks.extend(text.lines());
    marks.sort();
    assert_eq!(marks, ["gated 1", "gated 1", "gated 1", "gated 2"]);
}

#[test]
fn a_running_agent_without_retries_left_fails_as_interrupted() {
    let (sb, cfg) = sandbox(&agent("fragile", ""));
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule(
        "agents",
        "fragile",
        json!({"gate": "gate", "append": "marks"}),
    );
    wait_until("the run to start", T, || {
        (!sb.read("marks").is_empty()).then_some(())
    });
    server.kill9();

    sb.write("gate", "");
    let server = sb.serve(Some(&cfg), &data, &[]);
    let run = server.wait_done("agents", "fragile", &id, T);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "interrupted by engine restart");
    assert_eq!(sb.read("marks"), "fragile 1\n", "it must not run again");
}

/// An agent dies with a killed engine instead of running on unseen; what it started in the
/// background does not, and the next engine stops it before retrying the run, so the work
/// does not happen twice at once.
#[test]
fn a_killed_engines_agent_dies_with_it_and_what_it_started_is_stopped_at_the_next_start() {
    let (sb, cfg) = sandbox(&agent("long", "retries = 1"));
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule(
        "agents",
        "long",
        json!({"pidfile": "pids", "child": true, "gate": "never"}),
    );
    let first = pids(&sb, "pids", 2);
    let (agent_pid, child) = (first[0], first[1]);
    server.kill9();
    // The agent would wait 30 s for its gate: well past this deadline.
    wait_until(
        "the agent to die with the engine",
        Duration::from_secs(10),
        || (!process_alive(agent_pid)).then_some(()),
    );
    assert!(process_alive(child), "the child outlives the engine");
    let server = sb.serve(Some(&cfg), &data, &[]);
    wait_until("the next engine to stop the left-over child", T, || {
        (!process_alive(child)).then_some(())
    });
    assert!(server.logs().contains("left running"), "{}", server.logs());
    // The retry starts the same work again: end it, so that nothing outlives the test.
    let retry = wait_until("the retry to start", T, || {
        let now = pids(&sb, "pids", 2);
        (now != first).then_some(now)
    });
    let (code, body) = server.post(&format!("/api/agents/long/{id}/cancel"), json!({}));
    assert_eq!(code, 200, "{body}");
    assert_all_gone(&retry);
}

/// Another program holding the database's write lock past the busy timeout fails a write; the
/// run's driver retries it instead of leaving the run `running` until a restart.
#[test]
fn a_write_that_fails_while_another_program_holds_the_database_is_retried() {
    let (sb, cfg) = sandbox("");
    let data = sb.path("engine");
    let server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule("agents", "sleep", serde_json::json!({"seconds": 6}));
    server.wait_status("agents", "sleep", &id, "running", T);
    // Holds the write lock past the run's end and the engine's 5 s busy timeout.
    let lock = WriteLock::hold(&sb, &data);
    let (_, run) = server.get(&format!("/api/agents/sleep/{id}"));
    assert_ne!(
        run["status"], "completed",
        "the lock came after the run's end: {run}"
    );
    // The run's end failed and is being retried; then the lock goes.
    wait_until("the end's write to fail", T, || {
        server.logs().contains("retrying in").then_some(())
    });
    lock.release();
    let run = server.wait_done("agents", "sleep", &id, Duration::from_secs(60));
    assert_eq!(run["status"], "completed", "{run}");
}

/// Another program holding the database's write lock (with `BEGIN IMMEDIATE`) until released:
/// the engine's writes then fail after its busy timeout, as on a full disk.
struct WriteLock<'a> {
    sb: &'a Sandbox,
    child: std::process::Child,
}

impl<'a> WriteLock<'a> {
    fn hold(sb: &'a Sandbox, data: &std::path::Path) -> WriteLock<'a> {
        let holder = "import os, sqlite3, sys, time\n\
            c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
            c.execute('BEGIN IMMEDIATE')\n\
            open(sys.argv[2], 'w').close()\n\
            deadline = time.time() + 60\n\
            while not os.path.exists(sys.argv[3]) and time.time() < deadline:\n    time.sleep(0.02)\n\
            c.execute('COMMIT')\n";
        let child = std::process::Command::new(crate::support::PY)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["-c", holder])
            .arg(data.join("restack.db"))
            .arg(sb.path("locked"))
            .arg(sb.path("release"))
            .spawn()
            .unwrap();
        wait_until("the lock to be held", Duration::from_secs(10), || {
            sb.path("locked").exists().then_some(())
        });
        WriteLock { sb, child }
    }

    /// Lets go now (dropping it does the same).
    fn release(self) {
        drop(self);
    }
}

/// Released however the test ends, so that a failed assertion does not leave the lock held.
impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        self.sb.write("release", "");
        let _ = self.child.wait();
    }
}

/// A retry's back-off is a durable timer: an engine killed during it waits out the rest at its
/// next start instead of retrying at once (a crash loop would spend every retry in seconds).
#[test]
fn a_retry_waits_out_its_back_off_across_a_restart() {
    let (sb, cfg) = sandbox(&agent("flaky", "retries = 4"));
    let data = sb.path("engine");
    let mut server = sb.serve(Some(&cfg), &data, &[]);
    let id = server.schedule(
        "agents",
        "flaky",
        json!({"fail_attempts": 3, "append": "marks"}),
    );
    let logs = |server: &crate::support::Server| {
        let (_, logs) = server.get(&format!("/api/agents/flaky/{id}/logs"));
        logs["lines"].as_array().cloned().unwrap_or_default()
    };
    // Attempt 3 fails, and its back-off is 2 s.
    let failed_at = wait_until("attempt 3 to fail", T, || {
        logs(&server)
            .iter()
            .find(|l| {
                l["line"].as_str().is_some_and(|t| {
                    t.starts_with("attempt 3 failed") && t.ends_with("retrying in 2s")
                })
            })
            .map(|l| l["at"].as_str().unwrap().to_string())
    });
    server.kill9();

    let server = sb.serve(Some(&cfg), &data, &[]);
    let run = server.wait_done("agents", "flaky", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["attempt"], 4, "{run}");
    assert_eq!(sb.read("marks"), "flaky 1\nflaky 2\nflaky 3\nflaky 4\n");
    let ms = |t: &str| {
        humantime::parse_rfc3339(t)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    let (failed, done) = (ms(&failed_at), ms(run["completedAt"].as_str().unwrap()));
    assert!(
        done >= failed + 2_000,
        "attempt 4 ended {} ms after attempt 3 failed, inside its 2 s back-off",
        done - failed
    );
    assert!(
        !logs(&server)
            .iter()
            .any(|l| l["line"].as_str().unwrap().contains("interrupted")),
        "no attempt was cut short: the engine died between attempts"
    );
}

/// While the engine cannot write (here another program holds the database past the busy
/// timeout; a full disk does the same), `/health` says so with a 503, as every schedule meets
/// one; once a write goes through again, it is "ok".
#[test]
fn health_is_503_while_writes_fail() {
    let (sb, cfg) = sandbox("");
    let data = sb.path("engine");
    let server = sb.serve(Some(&cfg), &data, &[]);
    let lock = WriteLock::hold(&sb, &data);
    let (code, body) = server.post("/api/agents/echo", json!({"input": {}}));
    assert_eq!(code, 503, "{body}");
    let (code, body) = server.get("/health");
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("cannot write"),
        "{body}"
    );
    let out = sb
        .cmd()
        .args(["--url", &server.url, "health"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");

    lock.release();
    let (code, body) = server.post("/api/agents/echo", json!({"input": {}}));
    assert_eq!(code, 200, "{body}");
    let (code, body) = server.get("/health");
    assert_eq!((code, &body["status"]), (200, &json!("ok")), "{body}");
}

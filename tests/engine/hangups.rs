//! A client that hangs up in the middle of a request: what it asked for still happens whole.
//! Hyper drops a handler whose client has gone, so the parts of a request that must go
//! together (store a run and start it; mark a run canceled and kill its agent) run on a task
//! of their own.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{agent, pids, sandbox};
use crate::support::{Server, process_alive, wait_until};

const T: Duration = Duration::from_secs(30);

/// Sends `method path` with a JSON body and closes the socket `after` the request is out,
/// without reading the answer. Spreading `after` over a few milliseconds lands some of the
/// hang-ups before the handler runs (nothing happens: fine) and some while it awaits the
/// store, the moment that used to split a request in two.
fn send_and_hang_up(server: &Server, method: &str, path: &str, body: &str, after: Duration) {
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    std::thread::sleep(after);
    drop(s);
}

fn spread(i: u64) -> Duration {
    Duration::from_micros(i * 100)
}

#[test]
fn a_run_stored_for_a_client_that_hung_up_still_runs() {
    let (sb, cfg) = sandbox("");
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    // `sleep` is not finished by its insert (unlike `echo`): something must start it.
    for i in 0..40 {
        let body = r#"{"input":{"seconds":0}}"#;
        send_and_hang_up(&server, "POST", "/api/agents/sleep", body, spread(i * 2));
    }
    // Every run that was stored ends, without a restart: all completed, and their count the
    // same for a second (a hung-up request may still be on its way in on a busy machine).
    let mut seen = (usize::MAX, std::time::Instant::now());
    let stored = wait_until("every stored run to end", T, || {
        let (_, body) = server.get("/api/runs?limit=100");
        let runs = body["runs"].as_array().cloned().unwrap_or_default();
        let done = runs.iter().all(|r| r["status"] == "completed");
        if seen.0 != runs.len() {
            seen = (runs.len(), std::time::Instant::now());
        }
        let steady = seen.1.elapsed() >= Duration::from_secs(1);
        (done && steady).then_some(runs.len())
    });
    assert!(
        stored > 0,
        "no request was stored at all: nothing was tested"
    );
}

#[test]
fn a_cancel_whose_client_hung_up_happens_whole_or_not_at_all() {
    let (sb, cfg) = sandbox(&agent("long", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let runs: Vec<(String, i32)> = (0..10)
        .map(|i| {
            let pidfile = format!("pids{i}");
            let id = server.schedule("agents", "long", json!({"pidfile": pidfile, "sleep": 60}));
            (id, pids(&sb, &pidfile, 1)[0])
        })
        .collect();
    for (i, (id, _)) in runs.iter().enumerate() {
        let path = format!("/api/agents/long/{id}/cancel");
        send_and_hang_up(&server, "POST", &path, "{}", spread(i as u64 * 3));
    }
    for (id, pid) in &runs {
        // A cancel that did not happen can be made now; one that happened is a 409, and
        // must have killed the agent by itself.
        let (code, body) = server.post(&format!("/api/agents/long/{id}/cancel"), json!({}));
        assert!(code == 200 || code == 409, "{code} {body}");
        let (_, run) = server.get(&format!("/api/agents/long/{id}"));
        assert_eq!(run["canceled"], Value::Bool(true), "{run}");
        wait_until(&format!("the agent of {id} to be gone"), T, || {
            (!process_alive(*pid)).then_some(())
        });
    }
}

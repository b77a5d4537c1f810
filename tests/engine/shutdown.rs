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

/// A client that never finishes sending its request does not hold the stop: open requests get
/// the grace period, then the engine goes on stopping.
#[test]
fn a_half_sent_request_does_not_hold_the_stop() {
    use std::io::Write;
    let (sb, cfg) = sandbox("[serve]\nshutdown_grace = \"1s\"\n");
    let mut server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut stuck = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stuck,
        "POST /api/agents/echo HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    // Connections are accepted in order: once a later one is answered, the stuck one is in.
    let (code, _) = server.get("/health");
    assert_eq!(code, 200);
    let exit = server.terminate(T);
    assert_eq!(exit, Some(0), "{}", server.logs());
    drop(stuck);
}

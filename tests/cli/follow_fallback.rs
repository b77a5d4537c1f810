//! `--follow` against a server that ignores `?wait=` and answers at once: the client notices
//! and polls with back-off until the run ends, and `--timeout` still holds.

use serde_json::json;

use super::fixtures::{assert_error, code, stdout_json};
use crate::support::Sandbox;
use crate::support::standin::{Reply, Standin};

/// Schedules anything; answers `running` at once to the first `running_for` looks, then
/// `completed`.
fn impatient_server(running_for: usize) -> Standin {
    Standin::one_run(move |n| {
        if n < running_for {
            Reply::json(200, json!({"runId": "r-1", "status": "running"}))
        } else {
            Reply::json(
                200,
                json!({"runId": "r-1", "status": "completed", "output": {"polled": n}}),
            )
        }
    })
}

#[test]
fn follow_falls_back_to_polling_when_wait_is_ignored() {
    let sb = Sandbox::new();
    let standin = impatient_server(5);
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "--follow"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"polled": 5}));
    let looks: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(looks.len(), 6, "{looks:?}");
    // The first look answers at once (to show the live status); every later one asked for the
    // long-poll, which the server just never honoured.
    assert_eq!(looks[0].path, "/api/agents/echo/r-1");
    assert!(
        looks[1..]
            .iter()
            .all(|r| r.path.starts_with("/api/agents/echo/r-1?wait="))
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run r-1: running"), "{err}");
    assert!(err.contains("run r-1: completed"), "{err}");
}

#[test]
fn timeout_holds_against_a_server_that_ignores_wait() {
    let sb = Sandbox::new();
    let standin = impatient_server(usize::MAX);
    let out = sb
        .cmd()
        .args(["--url", &standin.url, "agent", "run", "echo", "--follow"])
        .args(["--timeout", "500ms"])
        .output()
        .unwrap();
    let err = assert_error(&out, 6);
    assert!(err.contains("running"), "{err}");
}

/// A strict server refuses parameters it does not know (400 to `?wait=`): the follow drops the
/// long-poll and polls, rather than ending with a usage error.
#[test]
fn follow_polls_a_server_that_refuses_wait() {
    let sb = Sandbox::new();
    // Requests in order: the schedule, a plain first look (running), a long-poll (refused),
    // then plain looks (completed).
    let standin = Standin::start(|req, n| {
        if req.method == "POST" {
            Reply::json(200, json!({"runId": "r-1", "status": "queued"}))
        } else if req.path.contains('?') {
            Reply::json(400, json!({"error": "unknown query parameter `wait`"}))
        } else if n <= 1 {
            Reply::json(200, json!({"runId": "r-1", "status": "running"}))
        } else {
            Reply::json(
                200,
                json!({"runId": "r-1", "status": "completed", "output": {"ok": n}}),
            )
        }
    });
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "--follow"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"ok": 3}));
    let refused = standin
        .requests()
        .iter()
        .filter(|r| r.path.contains('?'))
        .count();
    assert_eq!(refused, 1, "the long-poll is asked for once, then dropped");
}

/// A server that ignores `?wait=` but tags every answer (a hash of a body with a clock in it,
/// as many frameworks send) is still polled with back-off: only a restack engine's tag means
/// its long-poll answers on changes, so another server's is not taken for news.
#[test]
fn another_servers_etag_is_not_taken_for_news() {
    let sb = Sandbox::new();
    let standin = Standin::one_run(|n| {
        Reply::json(
            200,
            json!({"runId": "r-1", "status": "running", "servedAt": n}),
        )
        .header("ETag", &format!("\"{n:x}-abc\""))
    });
    let out = sb
        .cmd()
        .args(["--url", &standin.url, "agent", "run", "echo", "--follow"])
        .args(["--timeout", "3s"])
        .output()
        .unwrap();
    assert_error(&out, 6);
    let looks: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    // Back-off from 50 ms doubling to 2 s: about seven looks in 3 s, not one every few ms.
    assert!(looks.len() <= 15, "{} looks: {looks:?}", looks.len());
    assert!(
        looks.iter().all(|r| !r.path.contains("sinceTag")),
        "{looks:?}"
    );
}

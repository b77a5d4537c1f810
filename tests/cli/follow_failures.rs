//! `--follow` against a server that fails for a while or stops answering: a watch can last
//! hours, so a transient failure (5xx, a dropped connection) is retried with back-off and said
//! on stderr, a lasting one ends it with the server's error, and `--timeout` bounds the wait
//! even when the server never answers.

use std::time::Duration;

use serde_json::json;

use super::fixtures::{assert_error, code, stderr, stdout_json};
use crate::support::Sandbox;
use crate::support::standin::{Reply, Standin};

/// Follows run `r-1` at `standin` with `--timeout`: first as the command that schedules it
/// (so its status is known from the schedule's answer), then as `status --follow`, which has
/// seen nothing of it. Returns the stderr of each, having checked its exit status.
fn follow_both_ways(standin: &Standin, timeout: &str, exits: (i32, i32)) -> (String, String) {
    let sb = Sandbox::new();
    let scheduled = sb.run_at(
        &standin.url,
        &["agent", "run", "echo", "--follow", "--timeout", timeout],
    );
    assert!(scheduled.stdout.is_empty());
    let looked_up = sb.run_at(
        &standin.url,
        &[
            "status",
            "r-1",
            "--agent",
            "echo",
            "--follow",
            "--timeout",
            timeout,
        ],
    );
    (
        assert_error(&scheduled, exits.0),
        assert_error(&looked_up, exits.1),
    )
}

/// Schedules anything; answers the first `failures` looks with a 503, then `completed`.
fn flaky_server(failures: usize) -> Standin {
    Standin::one_run(move |n| {
        if n < failures {
            Reply::raw(503, "text/plain", "upstream overloaded")
        } else {
            Reply::json(
                200,
                json!({"runId": "r-1", "status": "completed", "output": {"ok": true}}),
            )
        }
    })
}

#[test]
fn a_503_while_following_is_retried_and_said() {
    let sb = Sandbox::new();
    let standin = flaky_server(2);
    let out = sb.run_at(&standin.url, &["agent", "run", "echo", "--follow"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"ok": true}));
    let err = stderr(&out);
    let warnings: Vec<_> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings.iter().all(|w| w.contains("503")
            && w.contains("upstream overloaded")
            && w.contains("retrying")),
        "{err}"
    );
    // The schedule itself is never retried: one POST, however the looks went.
    let posts = standin
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);
}

/// The server fails until the deadline. A run this command scheduled is known to be queued:
/// that is exit 6, naming the failure. A run it only looks up (`status --follow`) was never
/// seen: the server's failure is the answer (exit 7).
#[test]
fn a_server_that_keeps_failing_ends_the_follow_at_its_timeout() {
    let (scheduled, looked_up) = follow_both_ways(&flaky_server(usize::MAX), "1500ms", (6, 7));
    assert!(scheduled.contains("still queued"), "{scheduled}");
    assert!(scheduled.contains("HTTP 503"), "{scheduled}");
    for err in [&scheduled, &looked_up] {
        assert!(err.contains("upstream overloaded"), "{err}");
    }
    assert!(looked_up.contains("--timeout reached"), "{looked_up}");
}

/// A server that reads each look and never answers it: the deadline holds either way. A run
/// this command scheduled is known to be queued (exit 6); of a run only looked up, nothing
/// says it is still queued or running, so that is a request that timed out (exit 3).
#[test]
fn timeout_holds_against_a_server_that_stops_answering() {
    let stuck = Standin::one_run(|_| {
        std::thread::sleep(Duration::from_secs(300));
        Reply::json(500, json!({}))
    });
    let (scheduled, looked_up) = follow_both_ways(&stuck, "1s", (6, 3));
    assert!(scheduled.contains("run r-1 is still queued"), "{scheduled}");
    assert!(scheduled.contains("the run goes on"), "{scheduled}");
    assert!(
        looked_up.contains("--timeout reached")
            && looked_up.contains("did not answer about run r-1"),
        "{looked_up}"
    );
}

/// A server that never answers the schedule itself: `--timeout` bounds that request too (not
/// the 30 s every request gets), as a request that timed out (exit 3), whose run may or may
/// not have been stored.
#[test]
fn timeout_bounds_a_schedule_the_server_never_answers() {
    let sb = Sandbox::new();
    let stuck = Standin::start(|_, _| {
        std::thread::sleep(Duration::from_secs(300));
        Reply::json(500, json!({}))
    });
    let started = std::time::Instant::now();
    let out = sb.run_at(
        &stuck.url,
        &["agent", "run", "echo", "--follow", "--timeout", "1s"],
    );
    let err = assert_error(&out, 3);
    assert!(err.contains("did not answer in time"), "{err}");
    assert!(
        err.contains("may have been scheduled all the same"),
        "a schedule that timed out must say the run may exist: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the schedule was not cut at --timeout (took {:?})",
        started.elapsed()
    );
}

/// A server that reads the schedule and hangs up without a word may have stored the run: the
/// CLI says so (a hasty retry would schedule it twice), and says nothing of the kind when the
/// connection was never made.
#[test]
fn a_schedule_whose_answer_is_lost_may_have_stored_the_run() {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // Read up to the end of the head, then hang up.
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
        }
    });
    let sb = Sandbox::new();
    let out = sb.run_at(&url, &["agent", "run", "echo", "--set", "x=1"]);
    let err = assert_error(&out, 3);
    assert!(
        err.contains("may have been scheduled all the same"),
        "{err}"
    );

    let out = sb.run_at(&super::fixtures::closed_url(), &["agent", "run", "echo"]);
    let err = assert_error(&out, 3);
    assert!(!err.contains("may have been scheduled"), "{err}");
}

/// Following a run never seen at a URL where nothing listens is most likely a wrong URL or no
/// server: exit 3 after a restart's worth of retries (seconds), not a minute of them, and not
/// at once either (the server may be restarting).
#[test]
fn following_a_run_where_nothing_listens_fails_within_seconds() {
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    let out = sb.run_at(
        &super::fixtures::closed_url(),
        &["status", "r-1", "--agent", "echo", "--follow"],
    );
    let err = assert_error(&out, 3);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(err.contains("warning:"), "it did not retry: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it retried for {:?}",
        started.elapsed()
    );
}

/// A server that fails with 503s and then goes away (a restart) still gets its restart's
/// worth of retries: the few seconds count from the first refused connection.
#[test]
fn a_server_that_fails_and_then_restarts_gets_its_retries() {
    let sb = Sandbox::new();
    let failing = Standin::start(|_, _| Reply::json(503, json!({"error": "busy"})));
    let url = failing.url.clone();
    let mut cli = sb
        .std_cmd()
        .args([
            "--url", &url, "status", "r-1", "--agent", "echo", "--follow",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_until(
        "two looks at the failing server",
        Duration::from_secs(30),
        || (failing.requests().len() >= 2).then_some(()),
    );
    drop(failing);
    crate::support::wait_until("the CLI to give up", Duration::from_secs(60), || {
        cli.try_wait().unwrap().map(|_| ())
    });
    let out = cli.wait_with_output().unwrap();
    let err = assert_error(&out, 3);
    let refused_retries = err
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("cannot reach"))
        .count();
    assert!(refused_retries >= 1, "no retry after the refusal: {err}");
}

#[test]
fn a_timeout_too_long_for_the_clock_means_no_timeout() {
    let sb = Sandbox::new();
    let standin = flaky_server(0);
    let out = sb.run_at(
        &standin.url,
        &[
            "agent",
            "run",
            "echo",
            "--follow",
            "--timeout",
            "500000000000y",
        ],
    );
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"ok": true}));
}

/// The run was seen running, then the server failed until the deadline: that is still "the
/// timeout was reached while the run was running" (exit 6), and the failure is said.
#[test]
fn a_timeout_while_retrying_a_seen_run_is_exit_6_and_says_the_failure() {
    let sb = Sandbox::new();
    let standin = Standin::one_run(|n| match n {
        0 => Reply::json(200, json!({"runId": "r-1", "status": "running"})),
        _ => Reply::raw(503, "text/plain", "upstream overloaded"),
    });
    let out = sb.run_at(
        &standin.url,
        &["agent", "run", "echo", "--follow", "--timeout", "1500ms"],
    );
    let err = assert_error(&out, 6);
    assert!(err.contains("still running"), "{err}");
    assert!(err.contains("upstream overloaded"), "{err}");
}

/// However short the timeout, the run is looked at once: an ended run is reported as such.
#[test]
fn a_zero_timeout_still_reports_an_ended_run() {
    let sb = Sandbox::new();
    let standin = flaky_server(0);
    let out = sb.run_at(
        &standin.url,
        &["agent", "run", "echo", "--follow", "--timeout", "0s"],
    );
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"ok": true}));
}

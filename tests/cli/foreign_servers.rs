//! Servers that speak the spec in ways our engine does not (a health word other than `ok`,
//! statuses beyond the spec's four, proxies that cut long-polls) or that break it (encoded or
//! ambiguous bodies, a token repeated back): what a user of Restack Cloud, or of a server
//! behind a proxy, sees.

use serde_json::json;

use super::fixtures::{assert_error, code, stdout, stdout_json};
use crate::support::Sandbox;
use crate::support::standin::{Reply, Standin};

/// The spec's 200 from `/health` means healthy; its `status` word is optional and `ok` is only
/// the spec's example.
#[test]
fn any_200_from_health_is_healthy() {
    for (body, word) in [
        (json!({"status": "healthy"}), "healthy"),
        (json!({"status": "UP"}), "UP"),
        (json!({"status": "warn"}), "warn"),
        (json!({}), "ok"),
    ] {
        let sb = Sandbox::new();
        let standin = Standin::start(move |_, _| Reply::json(200, body.clone()));
        let out = sb.run(&["--url", &standin.url, "health"]);
        assert_eq!(code(&out), 0, "{out:?}");
        assert!(stdout(&out).starts_with(&format!("{word}: ")), "{out:?}");
    }
}

/// ... unless its word says the opposite, or is no word at all.
#[test]
fn a_200_from_health_that_says_unwell_is_exit_7() {
    for body in [
        json!({"status": "degraded"}),
        json!({"status": "Out-Of-Service"}),
        json!({"status": "not ready"}),
        json!({"status": false}),
        json!({"status": {"state": "down"}}),
    ] {
        let sb = Sandbox::new();
        let standin = Standin::start(move |_, _| Reply::json(200, body.clone()));
        let out = sb.run(&["--url", &standin.url, "health"]);
        assert_error(&out, 7);
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}

/// A server that accepts connections and never answers: `health --timeout` bounds the wait,
/// and the hint does not send the user to the command that just failed.
#[test]
fn health_timeout_bounds_a_server_that_never_answers() {
    let sb = Sandbox::new();
    // The kernel completes the handshake; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let out = sb.run(&["--url", &url, "health", "--timeout", "1s"]);
    let err = assert_error(&out, 3);
    assert!(err.contains("did not answer in time"), "{err}");
    assert!(!err.contains("health` times it"), "{err}");
}

/// `canceled`, `timed_out`, `succeeded`: counted as the spec's status they mean, shown as the
/// server said them too, so a canceled run is not mistaken for one that failed.
#[test]
fn statuses_beyond_the_spec_show_as_the_server_said() {
    let sb = Sandbox::new();
    let standin = Standin::one_run(|_| {
        Reply::json(
            200,
            json!({"runId": "r-1", "agentName": "echo", "status": "canceled"}),
        )
    });
    let out = sb.run(&["--url", &standin.url, "status", "r-1", "--agent", "echo"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("failed (canceled)"), "{out:?}");

    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "-f"]);
    let err = assert_error(&out, 1);
    assert!(err.contains("run r-1 failed (canceled)"), "{err}");
}

/// A schedule answer with a status the client does not know says what the server said,
/// not `queued`.
#[test]
fn a_schedule_answer_is_shown_with_the_servers_word() {
    let sb = Sandbox::new();
    let standin =
        Standin::start(|_, _| Reply::json(200, json!({"runId": "r-1", "status": "paused"})));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("run r-1 (paused)"), "{out:?}");
    let standin = Standin::start(|_, _| Reply::json(200, json!({"runId": "r-2"})));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    assert!(stdout(&out).contains("run r-2\n"), "{out:?}");
}

/// A proxy that cuts every request held open (504 after a while) while plain looks get
/// through: the follow stops long-polling and polls, and sees the run end. (A long-poll that
/// fails at once, refused or rate-limited, is a server's trouble and does not count.)
#[test]
fn follow_polls_when_long_polls_keep_failing() {
    let sb = Sandbox::new();
    let looks = std::sync::atomic::AtomicUsize::new(0);
    let standin = Standin::start(move |req, _| {
        if req.method == "POST" {
            return Reply::json(200, json!({"runId": "r-1", "status": "queued"}));
        }
        if req.path.contains("wait=") {
            // The proxy holds the request a while, then gives up on it.
            std::thread::sleep(std::time::Duration::from_millis(1_200));
            return Reply::raw(
                504,
                "text/html",
                "<html><title>504 Gateway Timeout</title></html>",
            );
        }
        let n = looks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < 3 {
            Reply::json(200, json!({"runId": "r-1", "status": "running"}))
        } else {
            Reply::json(
                200,
                json!({"runId": "r-1", "status": "completed", "output": {"n": n}}),
            )
        }
    });
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "-f"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"n": 3}));
    let long_polls = standin
        .requests()
        .iter()
        .filter(|r| r.path.contains("wait="))
        .count();
    assert_eq!(long_polls, 2, "{:?}", standin.requests());
}

/// The client asks for no content coding; a body in one is named, not dumped as bytes.
#[test]
fn an_encoded_body_is_refused_by_name() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| {
        Reply::raw(200, "application/json", "\u{1f}\u{8b}\u{8}garbage")
            .header("Content-Encoding", "gzip")
    });
    let out = sb.run(&["--url", &standin.url, "health"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("`gzip` coding"), "{err}");
    // A failure in a coding is still the failure its status says.
    let refused = Standin::start(|_, _| {
        Reply::raw(401, "application/json", "\u{1f}\u{8b}\u{8}garbage")
            .header("Content-Encoding", "gzip")
    });
    let out = sb.run(&["--url", &refused.url, "agent", "run", "echo"]);
    let err = assert_error(&out, 5);
    assert!(!err.contains("garbage"), "{err}");
    let asked = &standin.requests()[0];
    assert!(
        asked
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("accept-encoding") && v == "identity"),
        "{asked:?}"
    );
}

/// JSON that names a key twice has no one meaning: `status` running or completed?
#[test]
fn an_answer_naming_a_key_twice_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::one_run(|_| {
        Reply::raw(
            200,
            "application/json",
            r#"{"runId":"r-1","status":"running","status":"completed","output":{}}"#,
        )
    });
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "-f"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("names a key twice"), "{err}");
}

/// An answer about another agent's run is not this run's.
#[test]
fn an_answer_about_another_agent_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::one_run(|_| {
        Reply::json(
            200,
            json!({"runId": "r-1", "agentName": "other", "status": "completed", "output": {}}),
        )
    });
    let out = sb.run(&["--url", &standin.url, "status", "r-1", "--agent", "echo"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("another agent"), "{err}");
}

/// A server that repeats the token back in its 401 does not get it printed.
#[test]
fn a_token_the_server_repeats_is_not_printed() {
    let sb = Sandbox::new();
    let standin = Standin::start(|req, _| {
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Reply::json(401, json!({"error": format!("token {auth} is not valid")}))
    });
    let out = sb
        .cmd()
        .env("RESTACK_API_BEARER_TOKEN", "s3cr3t-T0KEN")
        .args(["--url", &standin.url, "agent", "run", "echo"])
        .output()
        .unwrap();
    let err = assert_error(&out, 5);
    assert!(!err.contains("s3cr3t-T0KEN"), "{err}");
    assert!(err.contains("Bearer ***"), "{err}");
    // Nor in a 200 that is no JSON, nor in where a redirect points.
    for reply in [
        Reply::raw(200, "text/plain", "hello, your token is s3cr3t-T0KEN"),
        Reply::raw(302, "text/plain", "").header("Location", "https://elsewhere/?t=s3cr3t-T0KEN"),
    ] {
        let standin = Standin::start(move |_, _| reply.clone());
        let out = sb
            .cmd()
            .env("RESTACK_API_BEARER_TOKEN", "s3cr3t-T0KEN")
            .args(["--url", &standin.url, "agent", "run", "echo"])
            .output()
            .unwrap();
        let err = assert_error(&out, 7);
        assert!(!err.contains("s3cr3t-T0KEN"), "{err}");
    }
}

/// A 500 whose message is 100 kB is cut to something a person reads.
#[test]
fn a_huge_server_message_is_cut() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::json(500, json!({"error": "x".repeat(100_000)})));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    let err = assert_error(&out, 7);
    assert!(err.len() < 3_000, "{} bytes of stderr", err.len());
}

/// https:// to a server that speaks plain HTTP: the hint says so, instead of asking whether a
/// server runs there.
#[test]
fn https_to_a_plain_http_server_suggests_http() {
    let sb = Sandbox::new();
    let server = super::fixtures::engine(&sb);
    let url = server.url.replacen("http://", "https://", 1);
    let out = sb.run(&["--url", &url, "health", "--timeout", "5s"]);
    let err = assert_error(&out, 3);
    assert!(err.contains(&format!("use {}", server.url)), "{err}");
    assert!(!err.contains("is a server running there"), "{err}");
}

/// A server that is rate-limiting says when to come back; the follow waits that long rather
/// than its own first back-off of half a second.
#[test]
fn a_follow_waits_as_long_as_retry_after_asks() {
    let sb = Sandbox::new();
    let standin = Standin::one_run(|n| match n {
        0 => Reply::json(429, json!({"error": "slow down"})).header("Retry-After", "2"),
        _ => Reply::json(
            200,
            json!({"runId": "r-1", "status": "completed", "output": {"ok": true}}),
        ),
    });
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "-f"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slow down; retrying in 2.0s"), "{err}");
}

/// A server that takes the schedule and then never answers about the run: at `--timeout`, a
/// script following with `-o json` still gets the schedule's answer (the run as last seen).
#[test]
fn timeout_in_json_prints_the_schedule_when_nothing_else_was_seen() {
    let sb = Sandbox::new();
    let standin = Standin::start(|req, _| {
        if req.method == "POST" {
            return Reply::json(200, json!({"runId": "r-1", "status": "queued"}));
        }
        // A server slow to answer anything about the run.
        std::thread::sleep(std::time::Duration::from_secs(5));
        Reply::json(200, json!({"runId": "r-1", "status": "queued"}))
    });
    let out = sb.run(&[
        "--url",
        &standin.url,
        "-o",
        "json",
        "agent",
        "run",
        "echo",
        "-f",
        "--timeout",
        "1s",
    ]);
    assert_error(&out, 6);
    assert_eq!(
        stdout_json(&out),
        json!({"runId": "r-1", "status": "queued"})
    );
}

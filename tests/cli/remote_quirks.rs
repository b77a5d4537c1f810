//! Remote servers that are not our engine: extra fields, missing fields, HTML and empty error
//! bodies, 5xx, and a 200 that is not JSON. Each gets a clear `error:` and the right exit
//! status, never a panic.

use serde_json::json;

use super::fixtures::{assert_error, code, stdout, stdout_json};
use crate::support::Sandbox;
use crate::support::standin::{Reply, Standin};

const HTML_502: &str = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\
    <body><h1>Bad Gateway</h1><p>nginx</p></body></html>";

/// Restack Cloud's way: `agentId` and other fields we do not know, on both answers.
fn cloud_like(req: &crate::support::standin::Request, _: usize) -> Reply {
    if req.method == "POST" {
        Reply::json(
            200,
            json!({"runId": "run-42", "status": "queued", "agentId": "agt_7", "region": "eu"}),
        )
    } else {
        Reply::json(
            200,
            json!({
                "runId": "run-42", "agentId": "agt_7", "agentName": "echo", "status": "completed",
                "output": {"ok": true}, "createdAt": "2025-01-01T00:00:00Z",
                "billing": {"units": 3}, "attempt": 1
            }),
        )
    }
}

#[test]
fn extra_fields_are_welcome() {
    let sb = Sandbox::new();
    let standin = Standin::start(cloud_like);
    let out = sb.run(&["--url", &standin.url, "-q", "agent", "run", "echo"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out), "run-42\n");

    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo", "--follow"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"ok": true}));

    // `-o json` passes the server's body through, unknown fields included.
    let out = sb.run(&[
        "--url",
        &standin.url,
        "-o",
        "json",
        "status",
        "run-42",
        "--agent",
        "echo",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out)["billing"], json!({"units": 3}));
    // ... in the server's own order.
    let text = stdout(&out);
    let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap_or(usize::MAX);
    assert!(
        at("runId") < at("agentId")
            && at("agentId") < at("agentName")
            && at("output") < at("billing"),
        "{text}"
    );
}

#[test]
fn a_failed_run_with_an_error_object_is_still_a_failed_run() {
    let sb = Sandbox::new();
    let standin = Standin::start(|req, _| {
        if req.method == "POST" {
            return Reply::json(200, json!({"runId": "r", "status": "queued"}));
        }
        Reply::json(
            200,
            json!({"runId": "r", "status": "failed", "attempt": "two",
                   "error": {"code": 3, "message": "the model said no"}}),
        )
    });
    let out = sb.run_at(&standin.url, &["agent", "run", "echo", "--follow"]);
    let err = assert_error(&out, 1);
    assert!(err.contains("the model said no"), "{err}");
}

#[test]
fn the_request_is_what_the_spec_says() {
    let sb = Sandbox::new();
    let standin = Standin::start(cloud_like);
    let out = sb.run(&[
        "--url",
        &standin.url,
        "agent",
        "run",
        "my agent",
        "--set",
        "a=1",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let req = &standin.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/api/agents/my%20agent");
    let body: serde_json::Value = serde_json::from_str(&req.body).unwrap();
    assert_eq!(body, json!({"input": {"a": 1}}));
}

#[test]
fn a_schedule_answer_without_status_is_fine() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::json(200, json!({"runId": "run-7"})));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("run-7"), "{}", stdout(&out));
}

#[test]
fn a_schedule_answer_without_a_run_id_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::json(200, json!({"status": "queued"})));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("runId"), "{err}");
}

#[test]
fn an_html_error_page_is_exit_7_and_described_not_dumped() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::raw(502, "text/html", HTML_502));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("502"), "{err}");
    assert!(err.contains("HTML"), "{err}");
    assert!(!err.contains("<body>"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_html_page_with_a_4xx_status_keeps_that_status_meaning() {
    let sb = Sandbox::new();
    let page = |code| {
        move |_: &crate::support::standin::Request, _: usize| {
            Reply::raw(code, "text/html", "<html><body>nope</body></html>")
        }
    };
    for (status, exit) in [(404, 4), (401, 5)] {
        let standin = Standin::start(page(status));
        let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
        assert_error(&out, exit);
    }
}

#[test]
fn an_empty_502_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::raw(502, "text/plain", ""));
    for args in [vec!["health"], vec!["agent", "run", "echo"]] {
        let out = sb.run_at(&standin.url, &args);
        let err = assert_error(&out, 7);
        assert!(err.contains("502") && err.contains("empty"), "{err}");
    }
}

#[test]
fn a_200_that_is_not_json_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::raw(200, "text/plain", "hello, I am a web page"));
    for args in [
        vec!["health"],
        vec!["agent", "run", "echo"],
        vec!["status", "r", "--agent", "echo"],
    ] {
        let out = sb.run_at(&standin.url, &args);
        let err = assert_error(&out, 7);
        assert!(err.contains("hello, I am a web page"), "{args:?}: {err}");
    }
}

#[test]
fn a_status_object_the_api_does_not_promise_is_exit_7() {
    let sb = Sandbox::new();
    for body in [
        json!({"runId": "r", "status": "exploded"}),
        json!({"runId": "r"}),
        json!([{"runId": "r", "status": "completed"}]),
    ] {
        let standin = Standin::start(move |_, _| Reply::json(200, body.clone()));
        let out = sb.run(&["--url", &standin.url, "status", "r", "--agent", "echo"]);
        assert_error(&out, 7);
    }
}

#[test]
fn an_unhealthy_answer_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::json(200, json!({"status": "degraded"})));
    let out = sb.run(&["--url", &standin.url, "health"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("degraded"), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}

/// A redirect is not followed: a POST would come back as a GET (and read as an unknown agent),
/// and a move to https would drop the token. The user hears where the server points.
#[test]
fn a_redirect_is_reported_with_where_it_points() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| {
        Reply::raw(301, "text/html", "moved").header("Location", "https://api.example/")
    });
    for args in [vec!["agent", "run", "echo"], vec!["health"]] {
        let out = sb.run_at(&standin.url, &args);
        let err = assert_error(&out, 7);
        assert!(
            err.contains("redirected") && err.contains("https://api.example/"),
            "{err}"
        );
    }
    assert!(
        standin
            .requests()
            .iter()
            .all(|r| r.method == "POST" || r.path == "/health"),
        "nothing was followed: {:?}",
        standin.requests()
    );
}

/// An answer larger than any the API sends is refused before it is read into memory.
#[test]
fn an_answer_too_large_for_the_api_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| {
        Reply::raw(200, "application/json", "{}").header("Content-Length", "1073741824")
    });
    let out = sb.run_at(&standin.url, &["health"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("more than 64 MiB"), "{err}");
}

/// What a server says reaches the terminal as text: its control characters are written out,
/// so it cannot retitle or clear the terminal or fake a line; a run ID holding them is none.
#[test]
fn server_text_cannot_write_to_the_terminal() {
    let sb = Sandbox::new();
    let evil = "bad\u{1b}]0;pwned\u{7}\u{1b}[31m\nerror: fake line";
    let standin = Standin::start(move |req, _| {
        if req.method == "POST" {
            Reply::json(200, json!({"runId": "r\u{1b}[2J", "status": "queued"}))
        } else if req.path.contains("/r-1") {
            Reply::json(
                200,
                json!({"runId": "r-1", "status": "failed", "error": evil}),
            )
        } else {
            Reply::json(500, json!({"error": evil}))
        }
    });
    for (args, exit) in [
        (vec!["status", "r-1", "--agent", "echo"], 0),
        (vec!["status", "r-1", "--agent", "echo", "-f"], 1),
        (vec!["status", "r-2", "--agent", "echo"], 7),
        // Retried while following: the warnings carry the server's words too.
        (
            vec!["status", "r-2", "--agent", "echo", "-f", "--timeout", "1s"],
            7,
        ),
        (vec!["agent", "run", "echo", "-q"], 7),
    ] {
        let out = sb.run_at(&standin.url, &args);
        assert_eq!(code(&out), exit, "{args:?}: {out:?}");
        let all = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(
            !all.contains('\u{1b}') && !all.contains('\u{7}'),
            "{args:?}: {all:?}"
        );
        assert!(!all.contains("\nerror: fake"), "{args:?}: {all:?}");
    }
}

/// The answer to a look at a run must be that run: another run's status is not shown as its.
#[test]
fn an_answer_about_another_run_is_exit_7() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| {
        Reply::json(
            200,
            json!({"runId": "r-9", "status": "completed", "output": {}}),
        )
    });
    let out = sb.run_at(&standin.url, &["status", "r-1", "--agent", "echo"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("another run") && err.contains("r-9"), "{err}");
}

//! DESIGN.md's exit-status table, one test per code, so a script can rely on each of them.
//! (Other modules show more ways to reach the same codes.)

use serde_json::json;

use super::fixtures::{assert_error, closed_url, code, engine, engine_with_env, runs};
use crate::support::Sandbox;
use crate::support::standin::{Reply, Standin};

#[test]
fn exit_0_scheduled_completed_healthy() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    for args in [
        vec!["agent", "run", "echo"],
        vec!["agent", "run", "echo", "--follow"],
        vec!["workflow", "run", "pair", "--follow"],
        vec!["health"],
    ] {
        let out = sb.run_at(&server.url, &args);
        assert_eq!(code(&out), 0, "{args:?}: {out:?}");
    }
}

#[test]
fn exit_1_the_followed_run_failed() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&["--url", &server.url, "agent", "run", "fail", "-f"]);
    assert_error(&out, 1);
}

#[test]
fn exit_2_usage_errors() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let bad_toml = sb.write("bad.toml", "[profiles\n");
    let too_deep = format!("a={}{}", "[".repeat(130), "]".repeat(130));
    for args in [
        vec!["agent", "run", "echo", "--no-such-flag"],
        vec!["agent", "run"],
        vec!["frobnicate"],
        vec!["-o", "yaml", "health"],
        vec!["agent", "run", "echo", "--follow", "--timeout", "soon"],
        vec!["agent", "run", "echo", "--input", "[1]"],
        vec!["-p", "no-such-profile", "health"],
        vec!["-c", bad_toml.to_str().unwrap(), "health"],
        vec!["--url", "not a url", "health"],
        vec!["--url", "http://127.0.0.1:9?x=1", "health"],
        vec!["agent", "run", ""],
        vec!["status", "", "--agent", "echo"],
        vec!["agent", "run", "echo", "--set", "a=1", "--set", "a=2"],
        // Past what a parser reads (128 levels): not taken for a string.
        vec!["agent", "run", "echo", "--set", &too_deep],
    ] {
        // Each fails before any request, so no --url is needed.
        let out = sb.cmd().args(&args).output().unwrap();
        assert_eq!(code(&out), 2, "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error"),
            "{args:?}"
        );
    }
    // The engine's own 400 (input failing a schema) is a usage error too.
    let out = sb.run(&[
        "--url",
        &server.url,
        "agent",
        "run",
        "sleep",
        "--set",
        "seconds=-1",
    ]);
    let err = assert_error(&out, 2);
    assert!(err.contains("seconds"), "names the field: {err}");
    // So is an input over the engine's max_body_bytes (1 MiB by default), however far over:
    // the engine reads what the client is already sending, so that its 413 is heard.
    for mib in [2, 8] {
        let big = json!({"text": "x".repeat(mib << 20)}).to_string();
        let file = sb.write("big.json", &big);
        let out = sb.run_at(
            &server.url,
            &["agent", "run", "echo", "--input", file.to_str().unwrap()],
        );
        let err = assert_error(&out, 2);
        assert!(
            err.contains("413") && err.contains("max_body_bytes"),
            "{mib} MiB: {err}"
        );
    }
    assert_eq!(runs(&server), Vec::<serde_json::Value>::new());
}

/// A lookup given no time to answer would fail every time and blame the server ("slow or
/// stuck"); with --follow, zero still means "look once".
#[test]
fn exit_2_a_zero_timeout_for_a_lookup() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run_at(&server.url, &["agent", "run", "echo", "-q"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    for args in [
        vec!["health", "--timeout", "0s"],
        vec!["status", "--timeout", "0ms"],
        vec!["status", &id, "--timeout", "0s"],
    ] {
        let out = sb.run_at(&server.url, &args);
        let err = assert_error(&out, 2);
        assert!(err.contains("zero timeout"), "{args:?}: {err}");
        assert!(!err.contains("slow"), "{args:?}: {err}");
    }
    let out = sb.run_at(&server.url, &["status", &id, "--follow", "--timeout", "0s"]);
    assert_eq!(code(&out), 0, "{out:?}");
}

#[test]
fn exit_3_cannot_reach_the_server() {
    let sb = Sandbox::new();
    let url = closed_url();
    let out = sb.cmd().args(["--url", &url, "health"]).output().unwrap();
    assert_error(&out, 3);
    // DNS: a name that cannot resolve (`.invalid` is reserved to never exist).
    let out = sb.run(&["--url", "http://restack.invalid", "health"]);
    let err = assert_error(&out, 3);
    assert!(err.contains("restack.invalid"), "{err}");
}

#[test]
fn exit_4_unknown_agent_workflow_or_run() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    for (args, says) in [
        (vec!["agent", "run", "no-such-agent"], "no-such-agent"),
        (vec!["agent", "run", "nope", "--follow"], "nope"),
        (vec!["workflow", "run", "no-such-flow"], "no-such-flow"),
        // `echo` is an agent, not a workflow.
        (vec!["workflow", "run", "echo"], "echo"),
        (
            vec![
                "status",
                "0190a1b2-0000-7000-8000-000000000000",
                "--agent",
                "echo",
            ],
            "0190a1b2-0000-7000-8000-000000000000",
        ),
    ] {
        let out = sb.run_at(&server.url, &args);
        let err = assert_error(&out, 4);
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.matches("not found").count(), 1, "said once: {err}");
        // An unknown agent or workflow comes with where to see what the engine has.
        if args[0] != "status" {
            let plural = format!("{}s", args[0]);
            assert!(
                err.contains(&format!("GET {}/api/{plural}", server.url)),
                "{args:?}: {err}"
            );
        }
    }
    assert_eq!(runs(&server), Vec::<serde_json::Value>::new());
}

#[test]
fn exit_5_unauthorized() {
    let sb = Sandbox::new();
    let server = engine_with_env(&sb, &[("RESTACK_API_BEARER_TOKEN", "right")]);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "agent", "run", "echo"])
        .env("RESTACK_API_BEARER_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_error(&out, 5);
    // However large the input: the engine reads what the client is sending before it refuses.
    let big = sb.write(
        "big.json",
        &json!({"text": "x".repeat(8 << 20)}).to_string(),
    );
    let out = sb
        .cmd()
        .args(["--url", &server.url, "agent", "run", "echo", "--input"])
        .arg(&big)
        .env("RESTACK_API_BEARER_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_error(&out, 5);
    // A 403 from a remote server is the same to a script.
    let standin = Standin::start(|_, _| Reply::json(403, json!({"error": "forbidden"})));
    let out = sb.run(&["--url", &standin.url, "agent", "run", "echo"]);
    let err = assert_error(&out, 5);
    assert!(err.contains("forbidden"), "{err}");
}

#[test]
fn exit_6_timeout_while_queued_or_running() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb
        .cmd()
        .args(["--url", &server.url, "agent", "run", "sleep"])
        .args(["--set", "seconds=60", "-f", "--timeout", "200ms"])
        .output()
        .unwrap();
    assert_error(&out, 6);
}

#[test]
fn exit_7_server_error() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::json(500, json!({"error": "database is on fire"})));
    for args in [
        vec!["health"],
        vec!["agent", "run", "echo"],
        vec!["status", "r1", "--agent", "echo"],
    ] {
        let out = sb.run_at(&standin.url, &args);
        let err = assert_error(&out, 7);
        assert!(err.contains("500"), "{args:?}: {err}");
        assert!(err.contains("database is on fire"), "{args:?}: {err}");
    }
}

/// A server with no `/health` (a web server at the wrong URL) does not speak the API: exit 7,
/// not the exit 4 of an unknown run, which a script would read as "no such run".
#[test]
fn exit_7_a_health_check_the_server_does_not_know() {
    let sb = Sandbox::new();
    let standin = Standin::start(|_, _| Reply::raw(404, "text/html", "<h1>Not Found</h1>"));
    let out = sb.run_at(&standin.url, &["health"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("/health"), "{err}");
}

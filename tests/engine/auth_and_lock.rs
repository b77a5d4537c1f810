//! Who may use an engine: a bearer token when one is set, loopback only when none is, and
//! one engine per data directory.

use reqwest::Method;
use serde_json::json;

use crate::support::Sandbox;

const TOKEN: &str = "s3cret-token";

#[test]
fn with_a_token_set_every_route_but_health_needs_it() {
    let sb = Sandbox::new();
    let server = sb.serve(
        None,
        &sb.path("engine"),
        &[("RESTACK_API_BEARER_TOKEN", TOKEN)],
    );
    let good = format!("Bearer {TOKEN}");
    let paths = [
        (Method::GET, "/api/agents"),
        (Method::GET, "/api/workflows"),
        (Method::GET, "/api/runs"),
        (Method::GET, "/openapi.json"),
        (Method::POST, "/api/agents/echo"),
        (
            Method::GET,
            "/api/agents/echo/0190aaaa-0000-7000-8000-000000000000",
        ),
        // Unknown routes and methods too: without the token, nothing says what is served.
        (Method::GET, "/no/such/route"),
        (Method::PUT, "/api/agents/echo"),
        (Method::DELETE, "/api/runs"),
    ];
    for (method, path) in &paths {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer wrong-token")],
            vec![("Authorization", TOKEN)], // no "Bearer " scheme
            vec![("Authorization", "Bearer s3cret-token-longer")],
            // Two headers, whichever comes first: which one counts is not left to chance.
            vec![("Authorization", &good), ("Authorization", "Bearer wrong")],
            vec![("Authorization", "Bearer wrong"), ("Authorization", &good)],
        ] {
            let (code, body) = server.request(method.clone(), path, &headers);
            assert_eq!(code, 401, "{method} {path} {headers:?}: {body}");
            assert!(body["error"].is_string(), "401 must be JSON: {body}");
        }
    }
    let (code, body) = server.request(Method::GET, "/health", &[]);
    assert_eq!((code, body), (200, json!({"status": "ok"})));

    let (code, _) = server.request(Method::GET, "/api/agents", &[("Authorization", &good)]);
    assert_eq!(code, 200);
    let (code, _) = server.request(Method::GET, "/no/such/route", &[("Authorization", &good)]);
    assert_eq!(code, 404);
    let (code, _) = server.request(Method::PUT, "/api/agents/echo", &[("Authorization", &good)]);
    assert_eq!(code, 405);
    // The unauthorized schedules above stored nothing.
    let (code, body) = server.request(Method::GET, "/api/runs", &[("Authorization", &good)]);
    assert_eq!(code, 200);
    assert_eq!(body["runs"], json!([]));
    let (code, body) = server.request(
        Method::POST,
        "/api/agents/echo",
        &[("Authorization", &good)],
    );
    assert_eq!(code, 200, "{body}");
    // The token is what keeps web pages out here; a page's Origin does not matter.
    let (code, body) = server.request(
        Method::GET,
        "/api/runs",
        &[("Authorization", &good), ("Origin", "https://app.example")],
    );
    assert_eq!(code, 200, "{body}");
}

/// Without a token, anything on this machine may call the engine, and a web page open in the
/// browser is on this machine too: what pages send is refused (a cross-origin `Origin`, or a
/// `Host` rebound to loopback), and every other client is served as before.
#[test]
fn without_a_token_web_pages_are_refused() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let id = server.schedule("agents", "echo", json!({"mine": true}));
    let rebound = format!("rebound.example:{}", server.url.rsplit(':').next().unwrap());
    for (method, path, headers) in [
        // A form or a text/plain fetch: no preflight, so only the Origin tells.
        (
            Method::POST,
            "/api/agents/echo".to_string(),
            vec![
                ("Origin", "https://evil.example"),
                ("Content-Type", "text/plain"),
            ],
        ),
        (
            Method::POST,
            format!("/api/agents/echo/{id}/cancel"),
            vec![("Origin", "null")],
        ),
        // DNS rebinding: the page's own name, now pointing here, is the Host.
        (
            Method::GET,
            "/api/runs".to_string(),
            vec![("Host", rebound.as_str())],
        ),
        (
            Method::GET,
            format!("/api/agents/echo/{id}"),
            vec![("Host", rebound.as_str())],
        ),
    ] {
        let (code, body) = server.request(method.clone(), &path, &headers);
        assert_eq!(code, 403, "{method} {path} {headers:?}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("RESTACK_API_BEARER_TOKEN"), "{error}");
    }
    // Nothing the pages sent took effect, and clients that are not pages are served.
    let (code, body) = server.get("/api/runs");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["runs"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["runs"][0]["runId"], id.as_str());
    for host in ["localhost", "127.0.0.1"] {
        let (code, _) = server.request(Method::GET, "/api/runs", &[("Host", host)]);
        assert_eq!(code, 200, "{host}");
    }
    let (code, _) = server.request(
        Method::GET,
        "/health",
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(code, 200, "health stays open");
}

#[test]
fn without_a_token_it_refuses_a_non_loopback_address() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(sb.path("engine"))
        .assert()
        .failure()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0")
            && stderr.contains("RESTACK_API_BEARER_TOKEN"),
        "{stderr}"
    );
}

/// A token no client could send (outside printable ASCII) would turn auth on and lock every
/// client out: the engine refuses it at start.
#[test]
fn a_token_no_header_can_carry_is_refused_at_start() {
    let sb = Sandbox::new();
    let out = sb
        .cmd()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sb.path("engine"))
        .env("RESTACK_API_BEARER_TOKEN", "t\u{f6}k\u{e9}n")
        .assert()
        .failure()
        .code(2);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        stderr.contains("error: ") && stderr.contains("RESTACK_API_BEARER_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("t\u{f6}k\u{e9}n"), "{stderr}");
    // Bytes that are not UTF-8 at all: refused too, not taken for no token (auth off).
    use std::os::unix::ffi::OsStrExt;
    sb.cmd()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(sb.path("engine"))
        .env(
            "RESTACK_API_BEARER_TOKEN",
            std::ffi::OsStr::from_bytes(b"t\xf6k"),
        )
        .assert()
        .failure()
        .code(2);
}

/// `[serve] token_env` names another variable for the token; with it unset, a token in
/// `RESTACK_API_BEARER_TOKEN` still turns auth on, as DESIGN.md says either does.
#[test]
fn either_token_variable_turns_auth_on() {
    let sb = Sandbox::new();
    let cfg = sb.write("restack.toml", "[serve]\ntoken_env = \"MY_ENGINE_TOKEN\"\n");
    for (var, other) in [
        ("RESTACK_API_BEARER_TOKEN", "MY_ENGINE_TOKEN"),
        ("MY_ENGINE_TOKEN", "RESTACK_API_BEARER_TOKEN"),
    ] {
        let mut c = sb.std_cmd();
        c.args(["-c"])
            .arg(&cfg)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(sb.path(var))
            .env(var, TOKEN)
            .env_remove(other);
        let server = crate::support::Server::spawn(c, &sb.path(var));
        let (code, _) = server.request(Method::GET, "/api/runs", &[]);
        assert_eq!(code, 401, "token in {var}");
        let good = format!("Bearer {TOKEN}");
        let (code, _) = server.request(Method::GET, "/api/runs", &[("Authorization", &good)]);
        assert_eq!(code, 200, "token in {var}");
    }
}

#[test]
fn with_a_token_it_may_listen_on_every_address() {
    let sb = Sandbox::new();
    let mut c = sb.std_cmd();
    c.args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(sb.path("engine"))
        .env("RESTACK_API_BEARER_TOKEN", TOKEN);
    let server = crate::support::Server::spawn(c, &sb.path("engine"));
    let url = server.url.replace("0.0.0.0", "127.0.0.1");
    let (code, _) =
        crate::support::send(reqwest::blocking::Client::new().get(format!("{url}/health")));
    assert_eq!(code, 200);
}

#[test]
fn a_second_engine_on_the_same_data_directory_fails_clearly() {
    let sb = Sandbox::new();
    let data = sb.path("engine");
    let mut first = sb.serve(None, &data, &[]);
    let second_fails = |dir: &std::path::Path| {
        let out = sb
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(
            stderr.contains("in use by another restack engine"),
            "{stderr}"
        );
        stderr
    };
    let stderr = second_fails(&data);
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "{stderr}"
    );
    // Deleting the lock file (a "stale" one, the user thinks) does not let a second one in:
    // the lock is on the directory.
    std::fs::remove_file(data.join("engine.lock")).unwrap();
    second_fails(&data);
    // An engine of an earlier build locks `engine.lock` alone: that keeps this one out too.
    let older = sb.path("older");
    std::fs::create_dir_all(&older).unwrap();
    let held = std::fs::File::create(older.join("engine.lock")).unwrap();
    held.try_lock().unwrap();
    second_fails(&older);
    drop(held);
    // The first engine is unharmed, and once it is gone the directory is free again.
    let id = first.schedule("agents", "echo", json!({}));
    first.kill9();
    let second = sb.serve(None, &data, &[]);
    let run = second.wait_done("agents", "echo", &id, std::time::Duration::from_secs(20));
    assert_eq!(run["status"], "completed");
}

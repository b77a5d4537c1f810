//! Errors are JSON with the status codes DESIGN.md lists, and bad input is never a 500.

use reqwest::Method;
use serde_json::json;

use crate::support::{Sandbox, Server};

const UNKNOWN_RUN: &str = "0190aaaa-0000-7000-8000-000000000000";

fn assert_error(code: u16, expected: u16, body: &serde_json::Value, what: &str) {
    assert_eq!(code, expected, "{what}: {body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        !msg.is_empty(),
        "{what}: the error must be JSON {{\"error\": ...}}: {body}"
    );
}

fn engine(sb: &Sandbox) -> Server {
    let cfg = sb.write(
        "restack.toml",
        "[serve]\nmax_body_bytes = 2048\n\n[workflows.w]\nsteps = [{ agent = \"echo\" }]\n",
    );
    sb.serve(Some(&cfg), &sb.path("engine"), &[])
}

#[test]
fn unknown_agents_workflows_and_runs_are_404() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let echo_run = server.schedule("agents", "echo", json!({}));
    let wf_run = server.schedule("workflows", "w", json!({}));
    let cases = [
        (Method::POST, "/api/agents/nope".to_string()),
        (Method::POST, "/api/workflows/nope".to_string()),
        (Method::GET, format!("/api/agents/echo/{UNKNOWN_RUN}")),
        (Method::GET, format!("/api/workflows/w/{UNKNOWN_RUN}")),
        (Method::GET, "/api/agents/echo/not-a-run-id".to_string()),
        // A real run, asked for under another agent's name or the wrong kind.
        (Method::GET, format!("/api/agents/sleep/{echo_run}")),
        (Method::GET, format!("/api/workflows/w/{echo_run}")),
        (Method::GET, format!("/api/agents/echo/{wf_run}")),
        (Method::POST, format!("/api/agents/sleep/{echo_run}/cancel")),
        (Method::GET, format!("/api/agents/sleep/{echo_run}/logs")),
        (Method::GET, format!("/api/gadgets/echo/{echo_run}")),
        // A typo in the area is a 404 whatever the method, not a 405 for the method.
        (Method::GET, "/api/agent/echo".to_string()),
        (Method::DELETE, format!("/api/workflow/w/{wf_run}")),
        (Method::GET, "/no/such/route".to_string()),
    ];
    for (method, path) in cases {
        let (code, body) = server.request(method.clone(), &path, &[]);
        assert_error(code, 404, &body, &format!("{method} {path}"));
    }
    // A client's value comes back clipped, not as long as it was sent.
    let long = "x".repeat(20_000);
    for (method, path) in [
        (Method::GET, format!("/api/agents/echo/{long}")),
        (Method::POST, format!("/api/agents/{long}")),
    ] {
        let (code, body) = server.request(method, &path, &[]);
        assert_error(code, 404, &body, "a long path");
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.len() < 300 && msg.contains("xxx…"), "{msg}");
    }
    // The 404s changed nothing: the run is still there under its own name.
    let (code, _) = server.get(&format!("/api/agents/echo/{echo_run}"));
    assert_eq!(code, 200);
}

#[test]
fn wrong_methods_are_405_as_json() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    for (method, path) in [
        (Method::DELETE, "/api/agents/echo"),
        (Method::GET, "/api/agents/echo"),
        (Method::POST, "/health"),
        (Method::PUT, "/api/runs"),
        (
            Method::GET,
            &format!("/api/agents/echo/{UNKNOWN_RUN}/cancel") as &str,
        ),
    ] {
        let (code, body) = server.request(method.clone(), path, &[]);
        assert_error(code, 405, &body, &format!("{method} {path}"));
    }
}

#[test]
fn a_body_over_max_body_bytes_is_413_as_json() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let big = json!({"input": {"text": "x".repeat(4096)}});
    let (code, body) = server.post("/api/agents/echo", big);
    assert_error(code, 413, &body, "big body");
    let (code, _) = server.post("/api/agents/echo", json!({"input": {"text": "small"}}));
    assert_eq!(code, 200);
}

/// A body declared too large is refused: a client waiting for `100 Continue` hears 413 before
/// it sends a byte, and one that declared more than it sends is not waited for past seconds.
#[test]
fn a_declared_length_over_max_body_bytes_is_413_before_the_body() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let server = engine(&sb);
    let addr = server.url.trim_start_matches("http://");
    for expect in ["Expect: 100-continue\r\n", ""] {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(
            conn,
            "POST /api/agents/echo HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 99999999\r\n{expect}\r\n{{}}"
        )
        .unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("max_body_bytes") {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
        let text = String::from_utf8_lossy(&seen);
        assert!(
            text.starts_with("HTTP/1.1 413") && text.contains("max_body_bytes"),
            "{expect:?}: {text}"
        );
    }
    let (_, body) = server.get("/api/runs");
    assert_eq!(body["runs"], json!([]), "nothing was stored");
}

/// What hyper refuses before any route runs (a request it cannot parse, a URL or headers too
/// large) is JSON like every other refusal, and the engine goes on serving.
#[test]
fn requests_hyper_cannot_parse_are_refused_as_json() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let server = engine(&sb);
    let addr = server.url.trim_start_matches("http://");
    let cases = [
        ("GARBAGE\r\n\r\n".to_string(), "400", "malformed"),
        (
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nBad Header\r\n\r\n"),
            "400",
            "malformed",
        ),
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
                "a".repeat(70_000)
            ),
            "414",
            "URL is too long",
        ),
        (
            format!(
                "GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
                "a".repeat(500_000)
            ),
            "431",
            "headers are too large",
        ),
    ];
    for (request, status, words) in cases {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        // The engine may answer and close before it has read all of a large request.
        let _ = conn.write_all(request.as_bytes());
        let mut seen = Vec::new();
        let _ = conn.read_to_end(&mut seen);
        let text = String::from_utf8_lossy(&seen);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {text}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{status}: {head}"
        );
        let body: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {body:?}"));
        assert_error(
            status.parse().unwrap(),
            status.parse().unwrap(),
            &body,
            status,
        );
        assert!(body["error"].as_str().unwrap().contains(words), "{body}");
    }
    let (code, body) = server.get("/health");
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")));
}

/// A schedule of an agent that does not exist (or under an area that does not) is refused
/// before its body: a client waiting for `100 Continue` hears the 404 without sending it.
#[test]
fn an_unknown_agent_is_404_before_the_body_is_asked_for() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let server = engine(&sb);
    let addr = server.url.trim_start_matches("http://");
    for (path, status) in [("/api/agents/nope", 404), ("/api/gadgets/echo", 404)] {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(
            conn,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 10\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut seen = Vec::new();
        let _ = conn.read_to_end(&mut seen);
        let text = String::from_utf8_lossy(&seen);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")) && text.contains("\"error\""),
            "{path}: {text}"
        );
    }
}

#[test]
fn malformed_bodies_and_inputs_are_400() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cases: [(&str, &[u8]); 12] = [
        ("truncated JSON", b"{\"input\": {"),
        ("not JSON", b"input=1"),
        ("invalid UTF-8", b"{\"input\": {\"a\": \"\xff\xfe\"}}"),
        ("array body", b"[1, 2]"),
        ("string body", b"\"hello\""),
        ("array input", b"{\"input\": [1]}"),
        ("string input", b"{\"input\": \"text\"}"),
        ("number input", b"{\"input\": 3}"),
        ("misplaced input", b"{\"text\": \"hello\"}"),
        ("a number no f64 holds", b"{\"input\": {\"n\": [-1e400]}}"),
        // A parser keeps one of the two and drops the other without a word.
        (
            "a key twice",
            b"{\"input\": {\"a\": 1}, \"input\": {\"b\": 2}}",
        ),
        (
            "a key twice inside",
            b"{\"input\": {\"x\": [{\"a\": 1, \"a\": 2}]}}",
        ),
    ];
    for (what, body) in cases {
        for path in ["/api/agents/echo", "/api/workflows/w"] {
            let (code, resp) = server.post_raw(path, "application/json", body.to_vec());
            assert_error(code, 400, &resp, &format!("{what} to {path}"));
            if what.starts_with("a key twice") {
                let msg = resp["error"].as_str().unwrap_or_default();
                assert!(msg.contains("twice in one object"), "{msg}");
            }
            if what.starts_with("a number") {
                let msg = resp["error"].as_str().unwrap_or_default();
                assert!(msg.contains("out of range at `input.n.0`"), "{msg}");
            }
        }
    }
    let (_, body) = server.get("/api/runs");
    assert_eq!(body["runs"], json!([]), "nothing bad was stored");
}

#[test]
fn bad_query_parameters_are_400() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = server.schedule("agents", "echo", json!({}));
    for path in [
        format!("/api/agents/echo/{id}?wait=soon"),
        format!("/api/agents/echo/{id}?wait=-1"),
        format!("/api/agents/echo/{id}?wait=NaN"),
        "/api/runs?limit=0".to_string(),
        "/api/runs?limit=many".to_string(),
        "/api/runs?kind=gadget".to_string(),
        "/api/runs?status=sleeping".to_string(),
    ] {
        let (code, body) = server.get(&path);
        assert_error(code, 400, &body, &path);
    }
    // A path that is not UTF-8 once decoded: the message speaks of the path, not of a
    // parameter inside the engine.
    for path in [
        "/api/agents/echo/%FF",
        "/api/agents/%FF/x",
        "/api/agents/%FF",
    ] {
        let (code, body) = server.get(path);
        assert_error(code, 400, &body, path);
        let msg = body["error"].as_str().unwrap_or_default();
        assert!(msg.contains("path") && !msg.contains('`'), "{path}: {msg}");
    }
    // An empty parameter is no filter, for `limit` as for the others.
    for path in [
        "/api/runs?limit=",
        "/api/runs?limit=&kind=&status=&name=&before=",
    ] {
        let (code, body) = server.get(path);
        assert_eq!(code, 200, "{path}: {body}");
        assert_eq!(
            body["runs"].as_array().map(Vec::len),
            Some(1),
            "{path}: {body}"
        );
    }
}

#[test]
fn no_bad_request_is_ever_a_500() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let long = "a".repeat(5000);
    let odd_paths = [
        "/api/agents/%00".to_string(),
        "/api/agents/%FF%FE".to_string(),
        format!("/api/agents/{long}"),
        format!("/api/agents/echo/{long}"),
        "/api/agents/echo/%2e%2e%2f%2e%2e".to_string(),
        "/api/agents/echo/x'%20OR%201=1--".to_string(),
        "/api/runs?before=%00&name=%FF".to_string(),
        "/api/runs?limit=99999999999999999999".to_string(),
        format!("/api/runs?before={long}"),
    ];
    for path in &odd_paths {
        for method in [Method::GET, Method::POST, Method::PATCH] {
            let (code, body) = server.request(method.clone(), path, &[]);
            assert!(code < 500, "{method} {path}: {code} {body}");
            if code >= 400 {
                assert!(body["error"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    let bodies: [&[u8]; 5] = [
        b"{\"input\": {\"seconds\": 1e999}}",
        b"{\"input\": {\"seconds\": -5}}",
        b"{\"input\": {\"seconds\": 999999999}}",
        b"{\"input\": null, \"input\": {}}",
        b"{\"input\": {\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
    ];
    for body in bodies {
        for ctype in ["application/json", "text/plain"] {
            let (code, resp) = server.post_raw("/api/agents/sleep", ctype, body.to_vec());
            assert!(
                code < 500,
                "{}: {code} {resp}",
                String::from_utf8_lossy(body)
            );
        }
    }
    assert!(
        server.logs().matches("internal error").count() == 0,
        "{}",
        server.logs()
    );
}

/// Every refusal reads what the client is sending before it answers: a client still uploading
/// a large body hears the 404 or 405, not a broken pipe (which a CLI can only call "cannot
/// reach").
#[test]
fn every_refusal_is_heard_by_a_client_still_sending_a_body() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let big = vec![b'x'; 8 << 20];
    for (method, path, expected) in [
        (Method::POST, "/nope".to_string(), 404),
        (Method::POST, "/api/agents".to_string(), 405),
        (Method::POST, "/health".to_string(), 405),
        (Method::PUT, "/api/agents/echo".to_string(), 405),
        (
            Method::POST,
            format!("/api/agents/echo/{UNKNOWN_RUN}/cancel"),
            404,
        ),
        (Method::POST, "/api/agents/nope".to_string(), 404),
    ] {
        let (code, body) = crate::support::send(
            reqwest::blocking::Client::new()
                .request(method.clone(), format!("{}{path}", server.url))
                .body(big.clone()),
        );
        assert_error(code, expected, &body, &format!("{method} {path}"));
    }
}

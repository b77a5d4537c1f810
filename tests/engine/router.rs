//! The router itself, driven in-process through `tower::ServiceExt::oneshot` (no socket), and
//! checked against the OpenAPI document it serves.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use restack::config::EngineSettings;
use restack::engine::Engine;

use crate::support::Sandbox;

fn settings(sb: &Sandbox) -> EngineSettings {
    EngineSettings {
        listen: "127.0.0.1:0".into(),
        data_dir: sb.path("engine"),
        max_concurrency: 4,
        workflows_in_memory: restack::engine::WORKFLOWS_IN_MEMORY,
        max_body_bytes: 1024,
        token: None,
        token_vars: Vec::new(),
        shutdown_grace: Duration::from_secs(1),
        sync_full: true,
        config_dir: sb.root.path().to_path_buf(),
        agents: BTreeMap::new(),
        workflows: BTreeMap::new(),
    }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_then_long_poll_through_the_router() {
    let sb = Sandbox::new();
    let engine = Engine::open(settings(&sb), true).unwrap();
    let app = engine.router();

    let req = Request::post("/api/agents/sleep")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"input": {"seconds": 0.2}}"#))
        .unwrap();
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "queued");
    let id = body["runId"].as_str().unwrap().to_string();

    let mut run = Value::Null;
    for _ in 0..20 {
        let req = Request::get(format!("/api/agents/sleep/{id}?wait=5"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        run = body;
        if run["status"] == "completed" {
            break;
        }
    }
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], json!({"sleptSeconds": 0.2}));
    engine.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn framework_rejections_are_json_too() {
    let sb = Sandbox::new();
    let engine = Engine::open(settings(&sb), true).unwrap();
    let app = engine.router();

    let req = Request::delete("/api/agents/echo")
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string(), "{body}");

    let big = format!("{{\"input\": {{\"t\": \"{}\"}}}}", "x".repeat(2048));
    let req = Request::post("/api/agents/echo")
        .header("content-type", "application/json")
        .body(Body::from(big))
        .unwrap();
    let (status, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].is_string(), "{body}");
    engine.close(Duration::from_secs(1)).await;
}

#[test]
fn a_second_engine_in_the_same_process_cannot_open_a_held_directory() {
    let sb = Sandbox::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let first = Engine::open(settings(&sb), false).unwrap();
    let err = Engine::open(settings(&sb), false).err().expect("must fail");
    assert!(
        format!("{err:#}").contains("in use by another restack engine"),
        "{err:#}"
    );
    rt.block_on(first.close(Duration::from_secs(1)));
    let again = Engine::open(settings(&sb), false).expect("the lock is released on close");
    rt.block_on(again.close(Duration::from_secs(1)));
}

/// `(METHOD, path)` for every `.route(...)` of the router's source, with `{area}` expanded to
/// both areas and parameters renamed as the document names them.
fn router_routes() -> Vec<(String, String)> {
    let src = include_str!("../../src/engine/http/mod.rs");
    let mut routes = vec![("get".to_string(), "/health".to_string())];
    // rustfmt may break a `.route(` call over lines: read from each `.route(` on.
    for call in src.split(".route(").skip(1) {
        let Some(rest) = call.trim_start().strip_prefix('"') else {
            continue;
        };
        let (path, rest) = rest.split_once('"').unwrap();
        let method = rest
            .trim_start_matches(',')
            .trim_start()
            .split('(')
            .next()
            .unwrap();
        if path == "/health" {
            continue;
        }
        if path.contains("{area}") {
            for (area, name) in [("agents", "{agentName}"), ("workflows", "{workflowName}")] {
                let p = path
                    .replace("{area}", area)
                    .replace("{name}", name)
                    .replace("{run_id}", "{runId}");
                routes.push((method.to_string(), p));
            }
        } else {
            routes.push((method.to_string(), path.to_string()));
        }
    }
    routes
}

#[test]
fn openapi_json_describes_every_route_and_only_real_ones() {
    let sb = Sandbox::new();
    let server = sb.serve(None, &sb.path("engine"), &[]);
    let (code, doc) = server.get("/openapi.json");
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");

    let routes = router_routes();
    assert!(routes.len() >= 13, "parsed too few routes: {routes:?}");
    for (method, path) in &routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is served but not in /openapi.json"
        );
    }

    // And every documented operation answers on the live engine (not the fallback 404).
    let id = server.schedule("agents", "echo", json!({}));
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            assert!(
                routes.contains(&(method.clone(), path.clone())),
                "{method} {path} is documented but not routed"
            );
            let url = path
                .replace("{agentName}", "echo")
                .replace("{workflowName}", "nope")
                .replace("{runId}", &id);
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (code, body) = server.request(m, &url, &[]);
            let fallback = body["error"]
                .as_str()
                .is_some_and(|e| e.contains("no such route"));
            assert!(code != 405 && !fallback, "{method} {url}: {code} {body}");
        }
    }
}

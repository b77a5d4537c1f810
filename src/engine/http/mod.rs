//! The engine's HTTP face: `router(state)` builds every route, apart from serving, so tests can
//! drive it with `tower::ServiceExt::oneshot`. One module per URL area.

mod auth;
mod body;
mod browsers;
mod catalog;
mod hyper_errors;
pub mod listen;
mod openapi;
mod runs;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::AppState;
use super::error::EngineError;
use crate::api::ErrorBody;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/api/agents", get(catalog::agents))
        .route("/api/workflows", get(catalog::workflows))
        .route("/api/runs", get(runs::list))
        .route("/api/{area}/{name}", post(runs::schedule))
        .route("/api/{area}/{name}/{run_id}", get(runs::get))
        .route("/api/{area}/{name}/{run_id}/cancel", post(runs::cancel))
        .route("/api/{area}/{name}/{run_id}/logs", get(runs::logs));
    // Without a token, what web pages send is refused instead.
    let api = match state.token {
        Some(_) => api,
        None => api.route_layer(browsers::RefusePages),
    };
    // No body limit layer: the one handler that reads a body applies `max_body_bytes` itself.
    // Every refusal reads what the client may be sending first (`body::drain`), so that it is
    // heard rather than cut off with a broken pipe.
    let all = Router::new()
        .route("/health", get(health))
        .merge(api)
        .method_not_allowed_fallback(runs::other_method)
        .fallback(not_found);
    // The token guards everything but `/health`, unknown routes and methods included: without
    // it, a client learns nothing of what the engine serves.
    let all = match state.token {
        Some(_) => all.layer(from_fn_with_state(state.clone(), auth::require_token)),
        None => all,
    };
    all.layer(map_response(json_errors)).with_state(state)
}

/// "ok", unless the engine cannot write (a full disk): then a 503, so that a probe sees what
/// every schedule meets, rather than an engine that only answers.
async fn health(State(state): State<AppState>) -> Response {
    if state.store.writes_failing() {
        let body = json!({
            "status": "unavailable",
            "error": "the engine cannot write to its database (a full disk?); its log says why",
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(json!({"status": "ok"})).into_response()
}

async fn not_found(req: axum::extract::Request) -> EngineError {
    body::drain(req).await;
    EngineError::NotFound("no such route; GET /openapi.json lists them".into())
}

/// Axum's own rejections (405, a bad path) answer in plain text; every error this engine
/// sends is JSON, so rewrite those here and keep their status and headers.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this route".to_string(),
        // axum's words name the handler's parameter (`run_id`), which means nothing to a client.
        // Every path parameter is a `String`, so the only such rejection is bad UTF-8.
        StatusCode::BAD_REQUEST
            if text.starts_with("Invalid URL") || text.starts_with("Invalid UTF-8") =>
        {
            "invalid URL path: once percent-decoded, it must be UTF-8".to_string()
        }
        _ if !text.is_empty() => text,
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    let body = serde_json::to_vec(&ErrorBody { error: message }).unwrap_or_default();
    (parts, Body::from(body)).into_response()
}

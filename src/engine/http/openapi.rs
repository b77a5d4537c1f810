//! `GET /openapi.json`: the spec's operations plus this engine's extensions, kept beside the
//! router (a test checks that every route is described).

use axum::http::header;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

//! `GET /api/agents` and `GET /api/workflows`: what this engine can run, with schemas.

use axum::Json;
use axum::extract::State;

use crate::api::Catalog;
use crate::engine::AppState;

pub async fn agents(State(state): State<AppState>) -> Json<Catalog> {
    Json(Catalog {
        agents: Some(state.catalog.agent_entries()),
        workflows: None,
    })
}

pub async fn workflows(State(state): State<AppState>) -> Json<Catalog> {
    Json(Catalog {
        agents: None,
        workflows: Some(state.catalog.workflow_entries()),
    })
}

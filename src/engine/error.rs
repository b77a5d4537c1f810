//! The engine's error type. Handlers return it; it becomes `{"error": "..."}` with the right
//! status. Internal errors are logged in full and answered with a bland message, so no path or
//! SQL ever reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("request body is larger than max_body_bytes ({0} bytes)")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TimedOut(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl EngineError {
    /// A write that failed (disk full, I/O error): a 503, as it may pass, with `what` did not
    /// happen; the store's own words go to the log, not to the client.
    pub fn unavailable(what: &str, e: anyhow::Error) -> EngineError {
        tracing::error!("{what}: {e:#}");
        EngineError::Unavailable(format!(
            "{what}: the engine cannot write to its database right now; its log says why"
        ))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            EngineError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EngineError::NotFound(_) => StatusCode::NOT_FOUND,
            EngineError::Conflict(_) => StatusCode::CONFLICT,
            EngineError::Unauthorized => StatusCode::UNAUTHORIZED,
            EngineError::Forbidden(_) => StatusCode::FORBIDDEN,
            EngineError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            EngineError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for EngineError {
    fn into_response(self) -> Response {
        let message = match &self {
            EngineError::Internal(e) => {
                tracing::error!("internal error: {e:#}");
                "internal error; the engine's log has the details".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = (self.status(), Json(ErrorBody { error: message })).into_response();
        if matches!(self, EngineError::Unauthorized) {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if matches!(self, EngineError::TimedOut(_)) {
            // The body was not read to its end, so the connection cannot carry another
            // request; saying so lets the client stop sending instead of finding out.
            resp.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_answers_503_without_the_stores_words() {
        let e = EngineError::unavailable(
            "cannot store the run",
            anyhow::anyhow!("commit failed: database or disk is full"),
        );
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        let message = e.to_string();
        assert!(message.starts_with("cannot store the run: "), "{message}");
        assert!(!message.contains("disk is full"), "{message}");
    }
}

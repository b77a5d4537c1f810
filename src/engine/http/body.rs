//! A request body within `max_body_bytes`, and the 413 for one over it, said so that the client
//! hears it. A server that answers before the body has arrived and closes the connection
//! leaves a client still sending it with a broken pipe and no answer (the CLI's "cannot
//! reach"); so what a client is already sending is read and dropped, within bounds, before the
//! answer. A client that waits for `100 Continue` has sent nothing yet and hears 413 at once.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header;
use http_body_util::BodyExt;

use crate::engine::error::EngineError;

/// The most of a refused body read (and dropped) so that its 413 is heard, and for how long;
/// past either the connection is closed on the client.
const DRAIN_BYTES: usize = 64 << 20;
const DRAIN_FOR: Duration = Duration::from_secs(5);
/// How long a body may go without a byte arriving, and how long it may take in all (32 MiB,
/// the most `max_body_bytes` allows, in two minutes is a link of about 2.2 Mbit/s).
const BODY_STALL: Duration = crate::engine::http::listen::HEAD_TIMEOUT;
const BODY_AT_MOST: Duration = Duration::from_secs(120);

pub async fn read(req: Request, max: usize) -> Result<Bytes, EngineError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        drain(req).await;
        return Err(EngineError::TooLarge(max));
    }
    let mut body = req.into_body();
    // One chunk (the usual case) is the body itself: no copy, and no list of chunks.
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    let mut len = 0;
    // A client that stops sending part-way would hold the request (and its connection) for
    // good: a body must keep arriving.
    let stalled = || {
        EngineError::TimedOut(format!(
            "the request body stopped arriving (nothing for {} s), or took over {} s",
            BODY_STALL.as_secs(),
            BODY_AT_MOST.as_secs()
        ))
    };
    // Nor trickle it in a byte at a time: the whole body has a deadline too.
    let deadline = tokio::time::Instant::now() + BODY_AT_MOST;
    while let Some(frame) = tokio::time::timeout_at(
        deadline.min(tokio::time::Instant::now() + BODY_STALL),
        body.frame(),
    )
    .await
    .map_err(|_| stalled())?
    {
        let frame = frame
            .map_err(|e| EngineError::BadRequest(format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len();
        if len > max {
            drop_rest(body, len).await;
            return Err(EngineError::TooLarge(max));
        }
        match &first {
            None => first = Some(data),
            Some(head) => {
                if more.is_empty() {
                    more.extend_from_slice(head);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(if more.is_empty() {
        first.unwrap_or_default()
    } else {
        more.into()
    })
}

/// Reads a request's body and drops it, for an answer that does not need it (a 401, a 403, a
/// 404, a 405): unless the client waits for `100 Continue`, and so has sent nothing yet.
pub async fn drain(req: Request) {
    let waits = req
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits {
        drop_rest(req.into_body(), 0).await;
    }
}

/// Reads what is left of `body` and drops it, `seen` bytes of it already read.
async fn drop_rest(mut body: Body, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while seen <= DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
                _ => return,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;
    use futures_util::stream::{self, StreamExt};

    /// A client that sends part of a body and then nothing hears 408 once the stall limit
    /// has passed, and is told the connection closes (its unread body cannot be skipped).
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_is_408_and_closes() {
        let part = stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"{\"in")) })
            .chain(stream::pending());
        let req = Request::new(Body::from_stream(part));
        let started = tokio::time::Instant::now();
        let err = read(req, 1 << 20).await.unwrap_err();
        assert!(matches!(err, EngineError::TimedOut(_)), "{err}");
        assert_eq!(started.elapsed(), BODY_STALL);
        let resp = err.into_response();
        assert_eq!(resp.status(), axum::http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(resp.headers()[header::CONNECTION], "close");
    }
}

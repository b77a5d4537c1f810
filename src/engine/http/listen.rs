//! Serving the router on accepted connections: what `axum::serve` does, plus the limit it does
//! not set. A connection that never finishes a request head (a client that stalls, or a
//! keep-alive connection left idle) is closed after [`HEAD_TIMEOUT`], so stalled sockets cannot
//! pile up until the engine runs out of descriptors, which its agents need too.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hyper_errors::JsonHeads;

/// How long a connection may take to send a request head, or sit idle between requests.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until `stop` resolves, then lets every open connection finish the request it is on.
pub async fn serve(listener: TcpListener, router: Router, stop: impl Future<Output = ()>) {
    serve_with(listener, router, HEAD_TIMEOUT, stop).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    head_timeout: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    let mut stop = pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    if accept_failed(&e) {
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = &mut stop => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let connection = http.serve_connection(
            JsonHeads::new(TokioIo::new(stream)),
            TowerToHyperService::new(router.clone()),
        );
        let closing = closing.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            tokio::select! {
                // A connection that ends in an error (a client gone, a malformed request that
                // hyper answered itself) is the client's business.
                _ = connection.as_mut() => return,
                () = closing.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    // New clients are refused from now on, not left waiting in the backlog for the drain.
    drop(listener);
    closing.cancel();
    connections.close();
    connections.wait().await;
}

/// Whether to pause before accepting again. A client that gave up before its connection was
/// accepted costs nothing; anything else (out of descriptors, say) would fail again at once,
/// so it is said and the loop pauses a second.
fn accept_failed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return false;
    }
    tracing::warn!("cannot accept a connection: {e}");
    true
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A client that stops half-way through a request head, and one that leaves its keep-alive
    /// connection idle, are both closed once the head timeout passes; a request in between is
    /// answered as usual.
    #[tokio::test]
    async fn stalled_and_idle_connections_are_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/health", get(|| async { "ok" }));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let server = tokio::spawn(serve_with(
            listener,
            router,
            Duration::from_millis(300),
            async move { stopped.cancelled().await },
        ));

        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 512];
        let n = idle.read(&mut answer).await.unwrap();
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            &answer[..n]
        );

        for (what, conn) in [("stalled", &mut stalled), ("idle", &mut idle)] {
            let started = Instant::now();
            let read = tokio::time::timeout(Duration::from_secs(20), async {
                let mut rest = Vec::new();
                conn.read_to_end(&mut rest).await.map(|_| rest)
            })
            .await;
            assert!(
                read.is_ok(),
                "the {what} connection was still open after {:?}",
                started.elapsed()
            );
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops")
            .unwrap();
    }
}

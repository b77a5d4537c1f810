//! hyper answers a request it cannot parse (a broken request line or header: 400; a URL too
//! long: 414; headers too large: 431) by itself, before any of our code runs, and with an empty
//! body. Every other refusal of the engine carries `{"error": "..."}`, which is what clients
//! print. So the connection's writes pass through [`JsonHeads`], which recognises those heads
//! and gives them that body.
//!
//! The match is exact: hyper writes them as `connection: close` then `content-length: 0`, a
//! pair no response of the router has (its errors all have bodies).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use hyper::rt::{Read, ReadBufCursor, Write};

/// A connection's I/O, with hyper's own error heads given a JSON body.
pub struct JsonHeads<T> {
    inner: T,
    /// A rewritten error answer not yet all written, and how much of it is.
    pending: Vec<u8>,
    sent: usize,
}

impl<T> JsonHeads<T> {
    pub fn new(inner: T) -> Self {
        JsonHeads {
            inner,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

/// What hyper's answer is about, in the words a client will print.
fn message(status: &[u8]) -> Option<&'static str> {
    Some(match status {
        b"400" => "malformed HTTP request: its request line or a header could not be parsed",
        b"414" => "the request's URL is too long",
        b"431" => "the request's headers are too large",
        _ => return None,
    })
}

/// The same answer with a JSON body, when `head` is one of hyper's error heads, whole.
fn with_body(head: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &[u8] = b"\r\nconnection: close\r\ncontent-length: 0\r\n";
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let message = message(status)?;
    if !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let at = head.windows(EMPTY.len()).position(|w| w == EMPTY)?;
    let body = serde_json::to_vec(&crate::api::ErrorBody {
        error: message.to_string(),
    })
    .ok()?;
    let mut out = Vec::with_capacity(head.len() + body.len() + 64);
    out.extend_from_slice(&head[..at]);
    out.extend_from_slice(b"\r\nconnection: close\r\ncontent-type: application/json");
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(&head[at + EMPTY.len()..]);
    out.extend_from_slice(&body);
    Some(out)
}

impl<T: Write + Unpin> JsonHeads<T> {
    /// Writes what is left of a rewritten answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` whole when it is an error head to rewrite; its length, then.
    fn poll_rewrite(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        let rewritten = with_body(buf)?;
        self.pending = rewritten;
        self.sent = 0;
        // What the socket does not take now is written before anything else (flush, shutdown).
        Some(match self.poll_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(buf.len())),
        })
    }
}

impl<T: Read + Unpin> Read for JsonHeads<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for JsonHeads<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(done) = self.poll_rewrite(cx, buf) {
            return done;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(done) = self.poll_rewrite(cx, first)
        {
            return done;
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_error_heads_get_a_json_body_and_nothing_else_changes() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\ndate: Tue, 08 Dec 2026 02:50:58 GMT\r\n\r\n";
        let out = String::from_utf8(with_body(head).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(error["error"], "the request's headers are too large");
        assert!(
            head.contains("\r\ncontent-type: application/json\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{head}"
        );
        assert!(head.contains("\r\ndate: "), "{head}");
        for other in [
            // The router's own answers: with a body, or without `connection: close`.
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            // A head split across writes is left alone rather than half rewritten.
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n",
        ] {
            assert_eq!(with_body(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}

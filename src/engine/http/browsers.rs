//! Without a token, web pages are refused. Such an engine listens on loopback only, so that
//! only this machine can call it; but a page open in the user's browser runs on this machine
//! too. A form or `fetch` posting `text/plain` needs no CORS preflight, so any page could start
//! agents with inputs of its choosing, and a page that rebinds its own DNS name to 127.0.0.1
//! could read every run. Browsers mark both: a cross-origin request carries `Origin`, and a
//! rebound one carries the page's name as `Host`. curl, the CLI and SDKs send no `Origin` and
//! address loopback by a loopback name, so they pass untouched. With a token the guard is not
//! needed (a page cannot send the token without a preflight this engine never answers) and not
//! installed.

use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service};

use crate::engine::error::EngineError;

/// A layer rather than `middleware::from_fn`: it adds no allocation to a request it lets pass.
#[derive(Clone, Copy)]
pub struct RefusePages;

impl<S> Layer<S> for RefusePages {
    type Service = Guarded<S>;
    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded(inner)
    }
}

#[derive(Clone)]
pub struct Guarded<S>(S);

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<BoxFuture<'static, Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match refusal(req.headers()) {
            // Boxed on this path only; the body a page may be sending is read first, so that
            // the 403 is heard.
            Some(e) => Either::Left(Box::pin(async move {
                super::body::drain(req).await;
                Ok(e.into_response())
            })),
            None => Either::Right(self.0.call(req)),
        }
    }
}

const WHY: &str = "this engine has no token, so it answers only clients on this machine that \
                   are not web pages; to serve this one, start it with RESTACK_API_BEARER_TOKEN set";

fn refusal(headers: &HeaderMap) -> Option<EngineError> {
    // Only the first would be checked, and RFC 9112 has a server refuse a second anyway.
    if headers.get_all(header::HOST).iter().nth(1).is_some() {
        return Some(EngineError::BadRequest(
            "refused: the request has more than one Host header".into(),
        ));
    }
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or(""));
    if let Some(host) = host.filter(|h| !is_loopback_host(h)) {
        return Some(EngineError::Forbidden(format!(
            "refused: Host `{}` is not a loopback name; {WHY}",
            crate::api::clip(host)
        )));
    }
    let origin = headers.get(header::ORIGIN)?;
    // A page this engine served itself would be same-origin; it serves none, but that one
    // would be harmless.
    let same = host.is_some_and(|h| {
        origin
            .to_str()
            .is_ok_and(|o| o.strip_prefix("http://") == Some(h))
    });
    (!same).then(|| {
        EngineError::Forbidden(format!(
            "refused: the request comes from a web page (Origin `{}`); {WHY}",
            crate::api::clip(&String::from_utf8_lossy(origin.as_bytes()))
        ))
    })
}

/// The names the stock `/etc/hosts` of common distributions give loopback, besides
/// `localhost` and its subdomains (RFC 6761).
const LOOPBACK_NAMES: &[&str] = &[
    "localhost.localdomain",
    "localhost4",
    "localhost4.localdomain4",
    "localhost6",
    "localhost6.localdomain6",
    "ip6-localhost",
    "ip6-loopback",
];

/// A loopback name or address, with or without a port: `localhost` and the names above, this
/// machine's own host name (which a page cannot rebind), or a loopback IP.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || is_port(port.strip_prefix(':')) => v6,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if is_port(Some(port)) => name,
            _ => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    // An address first: what clients of this engine send, checked without an allocation.
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip.to_canonical().is_loopback();
    }
    let is = |other: &str| name.eq_ignore_ascii_case(other);
    let sub = name.len() > ".localhost".len()
        && name.as_bytes()[name.len() - ".localhost".len()..].eq_ignore_ascii_case(b".localhost");
    is("localhost")
        || sub
        || LOOPBACK_NAMES.iter().any(|n| is(n))
        || own_host_name().is_some_and(is)
}

fn is_port(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// This machine's host name, lower-cased, read once.
fn own_host_name() -> Option<&'static str> {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname(2) writes at most `buf.len()` bytes into a buffer we own.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        let name = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
        (rc == 0 && !name.is_empty()).then_some(name)
    })
    .as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_loopback_names() {
        for host in [
            "localhost",
            "localhost:6233",
            "LOCALHOST.:6233",
            "app.localhost:1",
            "127.0.0.1:6233",
            "127.1.2.3",
            "[::1]:6233",
            "[::ffff:127.0.0.1]:80",
            "[::1]",
            "ip6-localhost:6233",
            "localhost.localdomain",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        if let Some(own) = own_host_name() {
            assert!(is_loopback_host(&format!("{own}:6233")), "{own}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:6233",
            "localhost.evil.example",
            "10.0.0.1:6233",
            "[::2]:6233",
            "127.0.0.1.nip.io:6233",
            "[::1]evil.example",
            "[::1]:",
            "localhost:",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn refuses_what_pages_send_and_nothing_else() {
        assert!(refusal(&headers(&[])).is_none());
        assert!(refusal(&headers(&[("host", "127.0.0.1:6233")])).is_none());
        assert!(
            refusal(&headers(&[
                ("host", "127.0.0.1:6233"),
                ("origin", "http://127.0.0.1:6233")
            ]))
            .is_none()
        );
        for h in [
            headers(&[("host", "rebound.example:6233")]),
            headers(&[
                ("host", "127.0.0.1:6233"),
                ("origin", "https://evil.example"),
            ]),
            headers(&[("host", "127.0.0.1:6233"), ("origin", "null")]),
            headers(&[("origin", "http://127.0.0.1:6233")]),
        ] {
            let e = refusal(&h).expect("refused");
            assert!(e.to_string().contains("RESTACK_API_BEARER_TOKEN"), "{e}");
        }
        // A loopback Host first does not let a rebound one through behind it.
        let mut two = headers(&[("host", "127.0.0.1:6233")]);
        two.append(header::HOST, "rebound.example:6233".parse().unwrap());
        let e = refusal(&two).expect("refused");
        assert!(matches!(e, EngineError::BadRequest(_)), "{e}");
        assert!(e.to_string().contains("more than one Host"), "{e}");
    }
}

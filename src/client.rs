//! The typed HTTP client. Every response is checked against what the API promises and turned
//! into a [`Failure`] with the right exit status when it is not; `follow` watches a run with the
//! engine's long-poll and degrades to polling with back-off on servers that ignore it.

use std::time::{Duration, Instant};

use anyhow::Result;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::api::{Kind, Logs, RunInfo, RunRequest, RunStatus, ScheduleResponse};
use crate::error::{Exit, Failure};
use crate::output;

/// How long one ordinary request may take before it counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The long-poll asked of the server per request while following.
const LONG_POLL: Duration = Duration::from_secs(25);

/// How long `--follow` keeps retrying a server that fails transiently (5xx, a lost connection)
/// before it gives up; a follow can last hours, and one blip should not end it.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// How long a run never seen is watched for at a server that refuses connections: about an
/// engine's restart.
const RETRY_UNSEEN_FOR: Duration = Duration::from_secs(5);
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(8);
/// The longest `Retry-After` a follow honours; a server asking for more is asked again then.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(30);
/// Long-polls that may be cut in a row (held at least [`LONG_POLL_HELD`], then failed) before
/// a follow polls without them instead.
const LONG_POLLS_FAILED_MAX: u32 = 2;
const LONG_POLL_HELD: Duration = Duration::from_secs(1);
/// The least time the first look at a run gets, whatever `--timeout` says.
const FIRST_LOOK: Duration = Duration::from_secs(2);
/// The most a server's answer may hold. A run's output is the largest thing the API sends
/// (the engine caps a command agent's at 8 MiB); past this a broken or hostile server would
/// only fill memory.
const MAX_ANSWER_BYTES: usize = 64 << 20;

pub struct Client {
    http: reqwest::Client,
    base: String,
    /// Where requests go: `base`, less any credentials in it when a token is sent (the URL's
    /// become a Basic `Authorization`, and a second such header is refused).
    target: String,
    token: Option<String>,
    verbose: bool,
    pub origin: Origin,
}

/// How messages name the server, and the way back to it in hints.
#[derive(Clone)]
pub struct Origin {
    /// The server as the user knows it: its URL, or the embedded engine and its data directory.
    pub label: String,
    /// The profile whose server this is; `None` when the URL came from elsewhere (`--url`,
    /// `RESTACK_URL`, the history), where switching profiles is not the way to another server.
    pub profile: Option<String>,
    /// The command line that reaches the same server again (`restack -p cloud`).
    pub again: String,
    /// What to say when this server refuses us, when the usual hint (about the token that was
    /// sent) would mislead: a server that is not the profile's gets only the exported token.
    pub refused_hint: Option<String>,
    /// The server is this command's embedded engine, which stops when the command ends: a run
    /// left unfinished waits for the next engine to open its data directory.
    pub embedded: bool,
}

impl Origin {
    /// The command that shows run `id` again (`follow`: and watches it). It names the agent or
    /// workflow, so it works wherever it is pasted, whether or not this machine's history holds
    /// the run.
    pub fn status_command(&self, kind: Kind, name: &str, id: &str, follow: bool) -> String {
        let named = output::flag_word(&format!("--{kind}"), &format!("--{kind}"), name);
        let follow = if follow { " --follow" } else { "" };
        let word = output::shell_word(id);
        // An ID that starts with `-` (another server's) can only come after `--`.
        let (first, last) = match id.starts_with('-') {
            true => (String::new(), format!(" -- {word}")),
            false => (format!(" {word}"), String::new()),
        };
        format!("{} status{first}{named}{follow}{last}", self.again)
    }
}

/// A long-poll: how long the server may hold it, the status last seen, and the last answer's
/// tag, when the server sent one.
#[derive(Debug, Clone, Copy)]
pub struct Wait<'a> {
    pub wait: Duration,
    pub since: RunStatus,
    pub tag: Option<&'a str>,
}

/// What [`Client::send`] got back.
struct Reply {
    status: StatusCode,
    retry_after: Option<Duration>,
    tag: Option<String>,
    bytes: Vec<u8>,
}

/// What bounds a follow: `--timeout`, counted from `started`, the command's start (so a
/// schedule before the follow counts too).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub started: Instant,
    pub timeout: Option<Duration>,
}

/// What a follow reports while it watches.
pub enum Watch<'a> {
    /// A new status.
    Status(RunStatus),
    /// An answer about a run not yet ended that differs from the one before, from a server
    /// that tags its answers (then it answers on every change: a new attempt, a retry's pause,
    /// a step). After the `Status` it brings, if any.
    Changed(&'a RunInfo),
    /// Every answer about a run not yet ended, as the server sent it.
    Seen(&'a Value),
    /// A transient failure, and how long until the next try.
    Retrying(String, Duration),
}

/// A response body, parsed, with the raw value kept for `-o json`.
pub struct Answer<T> {
    pub typed: T,
    pub raw: Value,
    /// The answer's `ETag`, when the server sends one: a restack engine's long-poll, given it
    /// back as `sinceTag`, answers on any change of the run, not only of its status.
    pub tag: Option<String>,
}

impl<T> Answer<T> {
    fn untagged(typed: T, raw: Value) -> Answer<T> {
        Answer {
            typed,
            raw,
            tag: None,
        }
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>, origin: Origin, verbose: bool) -> Result<Client> {
        // No redirects: followed, a POST comes back as a GET (an unknown agent, exit 4), and a
        // move to https drops the token (exit 5); a redirect is reported with where it points.
        // No `Accept-Encoding` would allow any coding (RFC 9110); nothing here decodes one.
        let mut identity = reqwest::header::HeaderMap::new();
        identity.insert(
            reqwest::header::ACCEPT_ENCODING,
            reqwest::header::HeaderValue::from_static("identity"),
        );
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("restack/", env!("CARGO_PKG_VERSION")))
            .default_headers(identity)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5));
        if is_loopback(base) {
            builder = builder.no_proxy();
        }
        if let Some(t) = &token {
            crate::output::keep_secret(t);
        }
        let base = base.trim_end_matches('/').to_string();
        let target = match reqwest::Url::parse(&base) {
            Ok(mut u)
                if token.is_some() && (!u.username().is_empty() || u.password().is_some()) =>
            {
                let _ = (u.set_username(""), u.set_password(None));
                u.as_str().trim_end_matches('/').to_string()
            }
            _ => base.clone(),
        };
        Ok(Client {
            http: builder.build()?,
            base,
            target,
            token,
            verbose,
            origin,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and returns status and body; transport failures become exit 3.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Reply> {
        let url = format!("{}{path}", self.target);
        let mut req = self.http.request(method.clone(), &url).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let started = Instant::now();
        if self.verbose {
            eprintln!("> {method} {}", crate::output::redact_url(&url));
            if self.token.is_some() {
                eprintln!("> authorization: Bearer ***");
            }
        }
        // Only a schedule changes anything on the server, so only a POST that was lost on the
        // way back may have done its work.
        let posted = (method == Method::POST).then_some(path);
        let health = path == "/health";
        let mut resp = req
            .send()
            .await
            .map_err(|e| self.unreachable(&e, posted, health))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(self.redirected(status, resp.headers()).into());
        }
        let coded = resp
            .headers()
            .get(reqwest::header::CONTENT_ENCODING)
            .map(|c| {
                String::from_utf8_lossy(c.as_bytes())
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|c| !c.is_empty() && c != "identity");
        // A failure's status says enough (a 503 is still retried, a 401 still exit 5); only
        // an answer that must be read is refused for a coding restack cannot read.
        if let Some(coding) = coded.as_ref().filter(|_| status.is_success()) {
            return Err(Failure::new(
                Exit::Server,
                format!(
                    "{} answered (HTTP {}) with a body in the `{}` coding, though restack asked for none (Accept-Encoding: identity)",
                    self.origin.label,
                    status.as_u16(),
                    crate::output::printable(&crate::api::clip(coding))
                ),
            )
            .into());
        }
        // Only the delay-seconds form: an HTTP date would need this machine's clock to agree.
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Only a restack engine's tag: it honours `sinceTag`. Another server's `ETag` (a hash
        // of a body with a clock in it, say) would make every answer look like news, and a
        // server that ignores `wait` would then be polled without a pause.
        let tag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(crate::api::bare_tag)
            .filter(|t| t.starts_with(crate::api::TAG_PREFIX) && t.len() <= 128)
            .map(str::to_string);
        let too_big = || {
            Failure::new(
                Exit::Server,
                format!(
                    "{} answered with more than {} MiB; no answer of the API is that large",
                    self.origin.label,
                    MAX_ANSWER_BYTES >> 20
                ),
            )
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_big().into());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| self.unreachable(&e, posted, health))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_big().into());
            }
            bytes.extend_from_slice(&chunk);
        }
        if coded.is_some() {
            // Bytes in a coding are no message to show.
            bytes.clear();
        }
        if self.verbose {
            eprintln!(
                "< {} ({} bytes, {:.1} ms)",
                status,
                bytes.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        Ok(Reply {
            status,
            retry_after,
            tag,
            bytes,
        })
    }

    fn redirected(&self, status: StatusCode, headers: &reqwest::header::HeaderMap) -> Failure {
        let to = headers
            .get(reqwest::header::LOCATION)
            .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
        let failure = Failure::new(
            Exit::Server,
            format!(
                "{} redirected the request (HTTP {}) to {}",
                self.origin.label,
                status.as_u16(),
                to.as_deref().unwrap_or("nowhere (no Location)")
            ),
        );
        match to {
            Some(_) => failure.with_hint(
                "the server has moved: point --url (or the profile's url) at where it now is",
            ),
            None => failure,
        }
    }

    /// `posted`: the path of a schedule, which the server may have stored before the answer
    /// was lost, unless the connection was never made. `health`: the request was the health
    /// check, so the hints do not send the user to it.
    fn unreachable(&self, e: &reqwest::Error, posted: Option<&str>, health: bool) -> Failure {
        let label = &self.origin.label;
        // Where to look: a restack engine lists the newest runs by name (the name is the
        // path's last segment, already encoded).
        let maybe_stored = posted.map(|path| {
            let name = path.rsplit('/').next().unwrap_or_default();
            // An embedded engine's port closes with the command: the next engine on the data
            // directory is where the run would be.
            let at = if self.origin.embedded {
                format!(
                    "`{} serve` lists the newest at GET /api/runs?name={name}",
                    self.origin.again
                )
            } else {
                format!(
                    "a restack engine lists the newest: GET {}/api/runs?name={name}",
                    crate::output::redact_url(&self.target)
                )
            };
            format!(
                "the run may have been scheduled all the same: look for it before scheduling it again ({at})"
            )
        });
        // A connect timeout is a timeout too, but nothing accepted the connection.
        if e.is_timeout() && !e.is_connect() {
            let failure = Failure::new(
                Exit::Unreachable,
                format!("{label} did not answer in time: the request timed out"),
            )
            .transient();
            return failure.with_hint(match maybe_stored {
                Some(maybe_stored) => format!(
                    "the server accepted the connection but is slow or stuck (`{} health` times it)\n{maybe_stored}",
                    self.origin.again
                ),
                None if health => {
                    "the server accepted the connection but is slow or stuck, or is not an HTTP server"
                        .to_string()
                }
                None => format!(
                    "the server accepted the connection but is slow or stuck; `{} health` times it",
                    self.origin.again
                ),
            });
        }
        if !e.is_connect() {
            // The connection was made and then lost, or what came back was not HTTP.
            let failure = Failure::new(
                Exit::Unreachable,
                format!("no usable answer from {label}: {}", root_cause(e)),
            )
            .transient();
            return match maybe_stored {
                Some(hint) => failure.with_hint(hint),
                None => failure,
            };
        }
        let cause = root_cause(e);
        // rustls reads a plain-HTTP answer to its hello as a record of an unknown type; a
        // plain server may also just hang up on it.
        let https = self.target.get(..8).and_then(|p| {
            p.eq_ignore_ascii_case("https://")
                .then_some(&self.target[8..])
        });
        let plain_http = https
            .filter(|_| cause.contains("InvalidContentType") || cause.contains("handshake eof"));
        let failure = Failure::new(Exit::Unreachable, format!("cannot reach {label}: {cause}"))
            .transient()
            .unconnected();
        if let Some(rest) = plain_http {
            return failure.with_hint(format!(
                "the server did not answer in TLS: if it serves plain HTTP (as `restack serve` does), use {}",
                crate::output::redact_url(&format!("http://{rest}"))
            ));
        }
        if https.is_some() && cause.contains("certificate") {
            return failure.with_hint(
                "a server is there, but its TLS certificate is not one restack trusts: it trusts the public web's certificate authorities (not the system's store), so a self-signed or private-CA certificate is refused",
            );
        }
        failure.with_hint(match &self.origin.profile {
            Some(p) => format!(
                "is a server running there? Start one with `restack serve`, or pick another profile with --profile (this is `{p}`; `-p embedded` runs the engine in-process)"
            ),
            None => "is a server running there? Start one with `restack serve`, or check the URL".to_string(),
        })
    }

    /// A JSON object from a 2xx answer, or the failure that the status calls for.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        what: &str,
    ) -> Result<Value> {
        Ok(self.call_tagged(method, path, body, timeout, what).await?.0)
    }

    /// [`Self::call`], with the answer's tag.
    async fn call_tagged(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
        what: &str,
    ) -> Result<(Value, Option<String>)> {
        let Reply {
            status,
            retry_after,
            tag,
            bytes,
        } = self.send(method, path, body, timeout).await?;
        if !status.is_success() {
            let mut failure = http_failure(status, &bytes, what, &self.origin.label);
            if failure.transient {
                failure.retry_after = retry_after;
            }
            if failure.exit == Exit::Unauthorized {
                if let Some(hint) = &self.origin.refused_hint {
                    failure = failure.with_hint(hint.clone());
                } else if self.token.is_some() {
                    failure = failure.with_hint(
                        "a token was sent and refused: check RESTACK_API_BEARER_TOKEN, or the profile's token_env / token",
                    );
                }
            }
            return Err(failure.into());
        }
        let not_an_object = || {
            Failure::new(
                Exit::Server,
                format!(
                    "{} answered {what} with {}, not the JSON object the API promises",
                    self.origin.label,
                    describe_body(&bytes)
                ),
            )
            .into()
        };
        let value: Result<Value> = match crate::api::parse_json(&bytes) {
            Ok(v @ Value::Object(_)) => Ok(v),
            // Which of the two values counts is up to each parser: neither is the answer.
            Err(crate::api::JsonError::Duplicate(e)) => Err(Failure::new(
                Exit::Server,
                format!(
                    "{} answered {what} with JSON that names a key twice: {}",
                    self.origin.label,
                    crate::output::printable(&crate::api::clip(&e))
                ),
            )
            .into()),
            // A number past f64 is kept with every digit, as an input's is.
            Err(crate::api::JsonError::Range(_)) => match serde_json::from_slice(&bytes) {
                Ok(v @ Value::Object(_)) => Ok(v),
                _ => Err(not_an_object()),
            },
            _ => Err(not_an_object()),
        };
        Ok((value?, tag))
    }

    /// A server without `/health` is not one that speaks the API: exit 7, not the 404's exit 4,
    /// which means an unknown agent, workflow or run.
    /// `timeout`: `health --timeout`, else the usual bound on a request.
    pub async fn health(&self, timeout: Option<Duration>) -> Result<Value> {
        self.call(
            Method::GET,
            "/health",
            None,
            timeout.unwrap_or(REQUEST_TIMEOUT),
            "the health check",
        )
        .await
        .map_err(|e| match e.downcast::<Failure>() {
            Ok(f) if f.exit == Exit::NotFound => Failure::new(
                Exit::Server,
                format!(
                    "{} has no /health (HTTP 404): it does not answer as the Restack API does",
                    self.origin.label
                ),
            )
            .with_hint("check the URL: it names the server itself, with no path")
            .into(),
            Ok(f) => f.into(),
            Err(e) => e,
        })
    }

    /// Schedules a run. `within` (the command's `--timeout`) bounds the request too, so that a
    /// stuck server cannot hold the command for the whole [`REQUEST_TIMEOUT`]; never below
    /// [`FIRST_LOOK`], so that a healthy server always has the time to answer (a schedule cut
    /// short may still have stored the run).
    pub async fn schedule(
        &self,
        kind: Kind,
        name: &str,
        input: Map<String, Value>,
        within: Option<Duration>,
    ) -> Result<Answer<ScheduleResponse>> {
        let body = serde_json::to_vec(&RunRequest { input: Some(input) })?;
        let path = format!("/api/{}/{}", kind.plural(), encode(name));
        let timeout = within.map_or(REQUEST_TIMEOUT, |t| t.clamp(FIRST_LOOK, REQUEST_TIMEOUT));
        let raw = self
            .call(
                Method::POST,
                &path,
                Some(body),
                timeout,
                &format!("{kind} `{name}`"),
            )
            .await
            .map_err(|e| self.not_offered(e, kind))?;
        let typed = parse_schedule(&raw).ok_or_else(|| {
            Failure::new(
                Exit::Server,
                format!(
                    "{} answered the schedule call without a usable runId: {raw}",
                    self.origin.label
                ),
            )
        })?;
        Ok(Answer::untagged(typed, raw))
    }

    /// A 404 for a schedule, with where to see what the server does offer. Only for a server
    /// that named the agent or workflow as unknown: a route it lacks (a URL with a path) is
    /// another mistake.
    fn not_offered(&self, e: anyhow::Error, kind: Kind) -> anyhow::Error {
        match e.downcast::<Failure>() {
            Ok(f) if f.exit == Exit::NotFound && !f.message.contains("no such route") => {
                let built_in = match kind {
                    Kind::Agent => "the built-in agents (echo, sleep) and ",
                    Kind::Workflow => "",
                };
                let hint = if self.origin.embedded {
                    format!(
                        "the embedded engine has {built_in}the {kind}s its config defines ([{kind}s.NAME]); -c names the config"
                    )
                } else {
                    format!(
                        "a restack engine lists its {kind}s at GET {}/api/{}, those of the config it was started with (`restack -c CONFIG serve`)",
                        crate::output::redact_url(&self.target),
                        kind.plural()
                    )
                };
                f.and_hint(hint).into()
            }
            Ok(f) => f.into(),
            Err(e) => e,
        }
    }

    /// One look at a run; with `wait`, a long-poll that answers once the status is no longer
    /// `since` (the engine's extension; other servers answer at once).
    pub async fn run(
        &self,
        kind: Kind,
        name: &str,
        id: &str,
        wait: Option<Wait<'_>>,
    ) -> Result<Answer<RunInfo>> {
        self.run_within(kind, name, id, wait, REQUEST_TIMEOUT).await
    }

    /// A run's log lines (an extension of restack's engine: another server may answer 404).
    pub async fn logs(&self, kind: Kind, name: &str, id: &str) -> Result<Answer<Logs>> {
        let path = run_path(kind, name, id) + "/logs";
        let what = format!("the logs of {kind} run `{id}` of `{name}`");
        let raw = self
            .call(Method::GET, &path, None, REQUEST_TIMEOUT, &what)
            .await
            .map_err(|e| self.extension_missing(e, "logs are"))?;
        let typed = serde_json::from_value(raw.clone()).map_err(|e| {
            Failure::new(
                Exit::Server,
                format!(
                    "{} answered with logs the engine's API does not describe: {e}",
                    self.origin.label
                ),
            )
        })?;
        Ok(Answer::untagged(typed, raw))
    }

    /// A 404 from a route of restack's own (`…/logs`, `…/cancel`): a restack engine's names the
    /// run it does not know; another server's may only lack the route, which the hint says.
    fn extension_missing(&self, e: anyhow::Error, what_is: &str) -> anyhow::Error {
        let route_missing = e.chain().count() == 1
            && !self.origin.embedded
            && e.downcast_ref::<Failure>().is_some_and(|f| {
                f.exit == Exit::NotFound
                    && !f
                        .server_said
                        .as_deref()
                        .is_some_and(|s| s.contains("run `"))
            });
        match e.downcast::<Failure>() {
            Ok(f) if route_missing => f
                .and_hint(format!(
                    "{what_is} an extension of restack's engine: a server with only the spec's operations has none"
                ))
                .into(),
            Ok(f) => f.into(),
            Err(e) => e,
        }
    }

    /// Cancels a run; the run as it ended. A run that had already ended is exit 1 (a 409).
    pub async fn cancel(&self, kind: Kind, name: &str, id: &str) -> Result<Answer<RunInfo>> {
        let path = run_path(kind, name, id) + "/cancel";
        let what = format!("{kind} run `{id}` of `{name}`");
        let raw = match self
            .call(Method::POST, &path, None, REQUEST_TIMEOUT, &what)
            .await
        {
            // A 409: the run's end came first. Not the server's failure, nor the run's.
            Err(e) => match e.downcast::<Failure>() {
                Ok(Failure {
                    http_status: Some(409),
                    server_said,
                    ..
                }) => {
                    let said = server_said.unwrap_or_else(|| format!("run {id} has already ended"));
                    return Err(
                        Failure::new(Exit::RunFailed, format!("cannot cancel: {said}"))
                            .with_hint(format!(
                                "`{}` shows how it ended",
                                self.origin.status_command(kind, name, id, false)
                            ))
                            .into(),
                    );
                }
                Ok(f) => return Err(self.extension_missing(f.into(), "cancel is")),
                Err(e) => return Err(e),
            },
            Ok(raw) => raw,
        };
        let typed = parse_run(&raw, kind, name, id).map_err(|e| {
            Failure::new(
                Exit::Server,
                format!(
                    "{} answered the cancel with a run-status object the API does not promise: {e}",
                    self.origin.label
                ),
            )
        })?;
        Ok(Answer::untagged(typed, raw))
    }

    /// [`Self::run`], the request bounded by `timeout` (beyond any long-poll's wait).
    pub async fn run_within(
        &self,
        kind: Kind,
        name: &str,
        id: &str,
        wait: Option<Wait<'_>>,
        timeout: Duration,
    ) -> Result<Answer<RunInfo>> {
        let mut path = run_path(kind, name, id);
        let timeout = match wait {
            Some(Wait { wait, since, tag }) => {
                path.push_str(&format!("?wait={}&since={since}", wait.as_secs_f64()));
                if let Some(tag) = tag {
                    path.push_str(&format!("&sinceTag={}", encode(tag)));
                }
                wait + timeout
            }
            None => timeout,
        };
        let what = format!("{kind} run `{id}` of `{name}`");
        let (raw, tag) = self
            .call_tagged(Method::GET, &path, None, timeout, &what)
            .await?;
        let typed = parse_run(&raw, kind, name, id).map_err(|e| {
            Failure::new(
                Exit::Server,
                format!(
                    "{} answered with a run-status object the API does not promise: {e}",
                    self.origin.label
                ),
            )
        })?;
        Ok(Answer { typed, raw, tag })
    }

    /// Watches a run until it ends or `timeout` passes. `known` is the status the schedule
    /// answered when this command scheduled the run. `watch` sees every status, the first one
    /// included, and every retry.
    ///
    /// The deadline bounds each request too, so a stuck server cannot hold the command past it;
    /// only the first look at the run gets at least [`FIRST_LOOK`], so that `--timeout 0s`
    /// still reports it. Transient failures (5xx, a lost connection) are retried with back-off
    /// until the deadline, or without one for up to [`RETRY_FOR`]. A server that refuses the
    /// long-poll's parameters (400) is polled without them. At the deadline a run known to be
    /// queued or running is exit 6, with the server's failure named if it is failing; a run
    /// never seen ends with the server's own error, or as a request that timed out (exit 3)
    /// when the server never answered (see `timed_out`).
    pub async fn follow(
        &self,
        kind: Kind,
        name: &str,
        id: &str,
        bound: Bound,
        known: Option<RunStatus>,
        mut watch: impl FnMut(Watch),
    ) -> Result<Answer<RunInfo>> {
        let Bound { started, timeout } = bound;
        // A timeout too large for the clock is no timeout.
        let deadline = timeout.and_then(|t| started.checked_add(t));
        let first_deadline = deadline.map(|d| d.max(Instant::now() + FIRST_LOOK));
        let mut backoff = Duration::from_millis(50);
        let mut long_poll = true;
        // Long-polls that failed in a row: a proxy that cuts requests held open (a 504, a
        // reset) fails every one of them while plain looks would get through.
        let mut long_polls_failed = 0;
        let mut last: Option<RunStatus> = None;
        // The last answer's tag, for a server that sends one (then every change answers).
        let mut last_tag: Option<String> = None;
        // While the server fails: since when, the next pause, and the latest failure.
        let mut failing: Option<(Instant, Duration, anyhow::Error)> = None;
        // Since when a run never seen has met only refused connections.
        let mut refused_since: Option<Instant> = None;
        let within_deadline = |pause: Duration| {
            deadline.map_or(pause, |d| {
                pause.min(d.saturating_duration_since(Instant::now()))
            })
        };
        let give_up = |seen, failing: Option<(Instant, Duration, anyhow::Error)>| {
            self.timed_out(kind, name, id, started, seen, failing.map(|(_, _, e)| e))
        };
        loop {
            let seen = last.or(known);
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            let looked = last.is_some() || failing.is_some();
            if out_of_time && looked {
                return Err(give_up(seen, failing));
            }
            let until = if looked { deadline } else { first_deadline };
            let remaining = until.map(|d| d.saturating_duration_since(Instant::now()));
            // The first look answers at once, so the live status shows from the start; then
            // each request long-polls until the status changes.
            let wait = match (last, remaining) {
                (None, _) => None,
                _ if !long_poll => None,
                (Some(since), r) => Some(Wait {
                    wait: r.map_or(LONG_POLL, |r| r.min(LONG_POLL)),
                    since,
                    tag: last_tag.as_deref(),
                }),
            };
            let asked = Instant::now();
            let look = self.run(kind, name, id, wait);
            let result = match remaining {
                Some(r) => match tokio::time::timeout(r, look).await {
                    Ok(result) => result,
                    Err(_) => {
                        return Err(give_up(seen, failing));
                    }
                },
                None => look.await,
            };
            let answer = match result {
                Ok(answer) => answer,
                Err(e) if Failure::is_transient(&e) => {
                    // A server that says when to come back (a 429 or 503 with Retry-After)
                    // is not asked sooner, within reason.
                    let asked_for = e
                        .downcast_ref::<Failure>()
                        .and_then(|f| f.retry_after)
                        .map(|d| d.min(RETRY_AFTER_MAX));
                    // Counted only for a request that was held and then cut: not a server that
                    // is down (refused), or asks for a pause (Retry-After), or fails at once.
                    let held_and_cut = wait.is_some()
                        && asked.elapsed() >= LONG_POLL_HELD
                        && asked_for.is_none()
                        && !e.downcast_ref::<Failure>().is_some_and(|f| f.unconnected);
                    if held_and_cut {
                        long_polls_failed += 1;
                        if long_polls_failed >= LONG_POLLS_FAILED_MAX {
                            long_poll = false;
                        }
                    }
                    let (since, pause) = failing
                        .as_ref()
                        .map_or((asked, RETRY_FIRST), |(s, p, _)| (*s, *p));
                    // A run never seen, at a server nothing answers for: most likely a wrong
                    // URL or no server at all, so only a restart's worth of retries, whatever
                    // the deadline; the error then says what `status` without --follow says.
                    // Counted from the first refusal in a row, so that a server failing
                    // with 5xx and then restarting gets its restart's worth too.
                    let nobody_there = seen.is_none()
                        && e.downcast_ref::<Failure>().is_some_and(|f| f.unconnected);
                    refused_since = match refused_since {
                        _ if !nobody_there => None,
                        Some(t) => Some(t),
                        None => Some(asked),
                    };
                    let unseen_left =
                        refused_since.map(|t| RETRY_UNSEEN_FOR.saturating_sub(t.elapsed()));
                    if unseen_left == Some(Duration::ZERO) {
                        return Err(e);
                    }
                    // Past the deadline, the top of the loop says how the wait ended.
                    let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                    if !out_of_time {
                        if deadline.is_none() && since.elapsed() >= RETRY_FOR {
                            let gave_up = format!(
                                "gave up watching run {id} after {} of failures",
                                fmt_secs(since.elapsed())
                            );
                            let again = format!(
                                "the run may go on; once the server answers, `{}` watches it again",
                                self.origin.status_command(kind, name, id, true)
                            );
                            return Err(match e.downcast::<Failure>() {
                                Ok(f) => anyhow::Error::new(f.and_hint(again)).context(gave_up),
                                Err(e) => e.context(gave_up),
                            });
                        }
                        let pause = asked_for.map_or(pause, |a| pause.max(a));
                        let pause = within_deadline(unseen_left.map_or(pause, |l| pause.min(l)));
                        watch(Watch::Retrying(format!("{e:#}"), pause));
                        tokio::time::sleep(pause).await;
                    }
                    failing = Some((since, (pause * 2).min(RETRY_MAX), e));
                    continue;
                }
                Err(e)
                    if wait.is_some()
                        && e.downcast_ref::<Failure>()
                            .is_some_and(|f| f.exit == Exit::Usage) =>
                {
                    long_poll = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            failing = None;
            if wait.is_some() {
                long_polls_failed = 0;
            }
            let status = answer.typed.status;
            if last != Some(status) {
                watch(Watch::Status(status));
            }
            if status.is_terminal() {
                return Ok(answer);
            }
            watch(Watch::Seen(&answer.raw));
            // A server that ignores `wait` answers at once with nothing new: poll it gently.
            let news = answer.tag.is_some() && answer.tag != last_tag;
            if news {
                watch(Watch::Changed(&answer.typed));
            }
            let ignored_wait =
                last == Some(status) && !news && wait.is_some_and(|w| asked.elapsed() < w.wait / 2);
            last_tag = answer.tag;
            if ignored_wait || !long_poll {
                tokio::time::sleep(within_deadline(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            } else {
                backoff = Duration::from_millis(50);
            }
            last = Some(status);
        }
    }

    /// How a follow ends at its deadline. A run seen queued or running is exit 6 (naming the
    /// server's failure if it is failing): it goes on. A run never seen ends with the server's
    /// own error, or, when the server never answered at all, as a request that timed out (exit
    /// 3): nothing says the run is still queued or running.
    fn timed_out(
        &self,
        kind: Kind,
        name: &str,
        id: &str,
        started: Instant,
        seen: Option<RunStatus>,
        failing: Option<anyhow::Error>,
    ) -> anyhow::Error {
        let after = fmt_secs(started.elapsed());
        let Some(status) = seen else {
            return match failing {
                Some(e) => e.context(format!("--timeout reached after {after} while retrying")),
                None => Failure::new(
                    Exit::Unreachable,
                    format!(
                        "--timeout reached after {after}: {} did not answer about run {id}",
                        self.origin.label
                    ),
                )
                .into(),
            };
        };
        let mut state = format!("run {id} is still {status}");
        if let Some(f) = failing {
            state.push_str(&format!(" (the server is failing: {f:#})"));
        }
        Failure::new(
            Exit::Timeout,
            format!("--timeout reached after {after}: {state}"),
        )
        .with_hint(if self.origin.embedded {
            format!(
                "the embedded engine stops with this command: the run resumes the next time an engine opens its data directory; `{}` does, and watches it",
                self.origin.status_command(kind, name, id, true)
            )
        } else {
            format!(
                "the run goes on; `{}` watches it again",
                self.origin.status_command(kind, name, id, true)
            )
        })
        .into()
    }
}

/// Other servers differ: the status may be missing (we then say queued) or spelled otherwise.
fn parse_schedule(raw: &Value) -> Option<ScheduleResponse> {
    let run_id = raw
        .get("runId")
        .or_else(|| raw.get("id"))?
        .as_str()?
        .to_string();
    // It goes into scripts (`-q`), URLs and the history: one that could not be typed is none.
    // `.` and `..` cannot be a path segment: URLs drop them (`%2E` too), so no look at the
    // run could name it.
    if run_id.is_empty() || run_id == "." || run_id == ".." || run_id.chars().any(char::is_control)
    {
        return None;
    }
    let status = raw
        .get("status")
        .and_then(Value::as_str)
        .and_then(RunStatus::parse);
    Some(ScheduleResponse { run_id, status })
}

fn parse_run(raw: &Value, kind: Kind, name: &str, id: &str) -> Result<RunInfo, String> {
    let status_text = raw
        .get("status")
        .and_then(Value::as_str)
        .ok_or("it has no `status`")?;
    let status =
        RunStatus::parse(status_text).ok_or_else(|| format!("unknown status {status_text:?}"))?;
    let mut normalized = raw.clone();
    normalized["status"] = Value::String(status.as_str().into());
    if normalized.get("runId").is_none() {
        normalized["runId"] = Value::String(id.into());
    }
    if normalized.get(kind.name_field()).is_none() {
        normalized[kind.name_field()] = Value::String(name.into());
    }
    for key in ["runId", kind.name_field()] {
        if !normalized[key].is_string() {
            return Err(format!("its `{key}` is not a string"));
        }
    }
    if normalized["runId"] != id {
        return Err(format!("it is another run, `{}`", normalized["runId"]));
    }
    if normalized[kind.name_field()] != name {
        return Err(format!(
            "it is a run of another {kind}, {}",
            normalized[kind.name_field()]
        ));
    }
    lenient_extras(&mut normalized);
    // The output is kept as it came (a non-object one from a lax server too), not taken
    // through serde's typed path: that hands a number to the field as an f64 whenever the f64
    // prints back the same, then re-prints it its own way (0.000001 came back as 1e-6).
    let output = normalized.as_object_mut().and_then(|o| o.remove("output"));
    defang(&mut normalized);
    let mut info: RunInfo = serde_json::from_value(normalized).map_err(|e| e.to_string())?;
    info.output = output.filter(|o| !o.is_null());
    if !status_text.eq_ignore_ascii_case(status.as_str()) {
        info.said = Some(crate::output::printable(status_text).into_owned());
    }
    Ok(info)
}

/// Every string of a run but its output (shown as JSON, which escapes them) made printable:
/// the text views show these as they are.
fn defang(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(p) = crate::output::printable(s) {
                *s = p;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(defang),
        Value::Object(fields) => fields
            .iter_mut()
            .filter(|(k, _)| k.as_str() != "output")
            .for_each(|(_, v)| defang(v)),
        _ => {}
    }
}

/// What the spec promises (`runId`, the name, `status`) must be right; the rest only informs,
/// so an `error` that is not a string is shown as its message or its JSON, and an extension
/// field of an unexpected type is left out of the typed view (`-o json` still shows it).
fn lenient_extras(run: &mut Value) {
    let Some(fields) = run.as_object_mut() else {
        return;
    };
    match fields.get("error") {
        None | Some(Value::String(_)) | Some(Value::Null) => {}
        Some(other) => {
            let text = other
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| other.to_string());
            fields.insert("error".into(), Value::String(text));
        }
    }
    fn fits<T: serde::de::DeserializeOwned>(v: &Value) -> bool {
        v.is_null() || T::deserialize(v).is_ok()
    }
    fields.retain(|key, v| match key.as_str() {
        "createdAt" | "startedAt" | "completedAt" => fits::<String>(v),
        "attempt" => fits::<u32>(v),
        "canceled" => fits::<bool>(v),
        "steps" => fits::<Vec<crate::api::StepInfo>>(v),
        _ => true,
    });
}

/// The failure for a non-2xx answer, with the server's own message when it sent one.
pub fn http_failure(status: StatusCode, body: &[u8], what: &str, base: &str) -> Failure {
    let mut failure = http_failure_of(status, body, what, base);
    failure.http_status = Some(status.as_u16());
    failure.server_said = server_message(body);
    failure
}

fn http_failure_of(status: StatusCode, body: &[u8], what: &str, base: &str) -> Failure {
    let detail = server_message(body);
    let with = |m: &str| match &detail {
        Some(d) => format!("{m}: {d}"),
        None => m.to_string(),
    };
    match status.as_u16() {
        // A 403 that says why needs no guess: the token may be fine (a permission, or our
        // engine refusing what looks like a web page).
        403 if detail.is_some() => Failure::new(
            Exit::Unauthorized,
            with(&format!("{base} refused the request (HTTP 403)")),
        ),
        401 | 403 => Failure::new(
            Exit::Unauthorized,
            with(&format!(
                "{base} refused the request (HTTP {})",
                status.as_u16()
            )),
        )
        .with_hint("set RESTACK_API_BEARER_TOKEN, or the profile's token_env, to a valid token"),
        // Our engine's message says the same as ours; another server's may add something.
        404 => {
            let m = format!("{what} not found at {base}");
            match &detail {
                Some(d) if !d.contains("not found") => {
                    Failure::new(Exit::NotFound, format!("{m}: {d}"))
                }
                _ => Failure::new(Exit::NotFound, m),
            }
        }
        400 | 413 | 422 => Failure::new(
            Exit::Usage,
            with(&format!(
                "{base} rejected the request (HTTP {})",
                status.as_u16()
            )),
        ),
        s if s >= 500 => Failure::new(
            Exit::Server,
            format!(
                "server error from {base} (HTTP {s}): {}",
                detail.unwrap_or_else(|| describe_body(body))
            ),
        )
        .transient(),
        429 => Failure::new(
            Exit::Server,
            with(&format!("{base} is rate-limiting (HTTP 429)")),
        )
        .transient(),
        s => Failure::new(
            Exit::Server,
            with(&format!("unexpected answer from {base} (HTTP {s})")),
        ),
    }
}

/// `{"error": ...}` or `{"message": ...}`, when the body is JSON of that shape.
fn server_message(body: &[u8]) -> Option<String> {
    /// Room for any message a person reads; a 100 kB one is not read, only scrolled past.
    const KEEP: usize = 1000;
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = ["error", "message", "detail"]
        .iter()
        .find_map(|k| match v.get(k) {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(o)) => o.get("message").and_then(Value::as_str),
            _ => None,
        })?;
    // A token repeated back is hidden before the cut, which could leave a part of it.
    let message = crate::output::unsecret(message);
    Some(match message.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_string(),
    })
}

/// A short, printable account of a body that is not what we hoped for.
fn describe_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    // A token repeated back is hidden before the cut, which could leave a part of it.
    let text = crate::output::unsecret(&text);
    let t = text.trim();
    if t.is_empty() {
        return "an empty body".into();
    }
    let lower = t.to_ascii_lowercase();
    if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        let title = lower
            .find("<title>")
            .and_then(|s| t[s + 7..].split("</title>").next())
            .map(|s| format!(" ({})", s.trim()))
            .unwrap_or_default();
        return format!("an HTML page{title}");
    }
    let mut short: String = t.chars().take(200).collect();
    if t.chars().count() > 200 {
        short.push('…');
    }
    format!("{short:?}")
}

fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(s) = source.source() {
        source = s;
    }
    let text = source.to_string();
    if text.is_empty() { e.to_string() } else { text }
}

fn is_loopback(base: &str) -> bool {
    reqwest::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]")
}

/// `/api/{agents|workflows}/{name}/{runId}`, each segment encoded.
fn run_path(kind: Kind, name: &str, id: &str) -> String {
    format!("/api/{}/{}/{}", kind.plural(), encode(name), encode(id))
}

/// Path segments come from users; keep them one segment each.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command a hint gives reads back as the same words in a shell and in clap.
    #[test]
    fn status_commands_quote_and_keep_odd_words_as_values() {
        let origin = Origin {
            label: String::new(),
            profile: None,
            again: "restack --url http://h:1".into(),
            refused_hint: None,
            embedded: false,
        };
        for (kind, name, id, follow, line) in [
            (
                Kind::Agent,
                "echo",
                "r1",
                true,
                "status r1 --agent echo --follow",
            ),
            (
                Kind::Workflow,
                "-dash",
                "r1",
                false,
                "status r1 --workflow=-dash",
            ),
            (Kind::Agent, "-a b", "r1", false, "status r1 --agent='-a b'"),
            (
                Kind::Agent,
                "a b",
                "r'1",
                false,
                r"status 'r'\''1' --agent 'a b'",
            ),
            (
                Kind::Agent,
                "echo",
                "-x",
                true,
                "status --agent echo --follow -- -x",
            ),
        ] {
            assert_eq!(
                origin.status_command(kind, name, id, follow),
                format!("restack --url http://h:1 {line}")
            );
        }
    }

    #[test]
    fn a_403_that_says_why_gets_no_token_hint() {
        let said = http_failure(
            StatusCode::FORBIDDEN,
            br#"{"error": "refused: a web page"}"#,
            "x",
            "b",
        );
        assert_eq!(said.exit, Exit::Unauthorized);
        assert!(
            said.hint.is_none() && said.message.contains("a web page"),
            "{said:?}"
        );
        let bare = http_failure(StatusCode::FORBIDDEN, b"", "x", "b");
        assert!(
            bare.hint
                .is_some_and(|h| h.contains("RESTACK_API_BEARER_TOKEN"))
        );
    }

    #[test]
    fn describes_odd_bodies() {
        assert_eq!(describe_body(b""), "an empty body");
        assert_eq!(
            describe_body(b"<html><title>Bad Gateway</title></html>"),
            "an HTML page (Bad Gateway)"
        );
        assert_eq!(
            server_message(br#"{"error":"nope"}"#).as_deref(),
            Some("nope")
        );
    }

    #[test]
    fn schedule_answer_without_status_is_fine() {
        let r = parse_schedule(&serde_json::json!({"runId": "x", "agentId": "a"})).unwrap();
        assert_eq!(r.run_id, "x");
        assert!(r.status.is_none());
        assert!(parse_schedule(&serde_json::json!({"status": "queued"})).is_none());
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}

//! Runs: schedule, fetch (with the `?wait=` long-poll), list, cancel, logs.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::api::{
    Kind, LogLine, Logs, RunInfo, RunList, RunStatus, ScheduleResponse, StepInfo, TAG_PREFIX,
    bare_tag, check_nesting, clip, json_type, now_ms, parse_json, rfc3339_ms,
};
use crate::engine::AppState;
use crate::engine::error::EngineError;
use crate::engine::executor::ActiveRun;
use crate::engine::process::LOG_LINES_PER_ATTEMPT;
use crate::engine::store::{NewRun, Op, RunFilter, RunRow};

/// The longest a `?wait=` long-poll holds a request.
pub const MAX_WAIT_SECONDS: f64 = 60.0;

/// Runs `work` to its end on a task of its own and answers what it returned. Hyper drops a
/// handler whose client hangs up, mid-await; work whose steps must all happen (store a run and
/// start it; write a cancel and kill the agent) goes through here so it cannot be cut in two.
async fn whole<T: Send + 'static>(
    work: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::spawn(work)
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the request's task failed: {e}")))
}

fn area(segment: &str) -> Result<Kind, EngineError> {
    match segment {
        "agents" => Ok(Kind::Agent),
        "workflows" => Ok(Kind::Workflow),
        _ => Err(EngineError::NotFound(format!(
            "no such route: /api/{}/…; runs live under /api/agents and /api/workflows",
            clip(segment)
        ))),
    }
}

/// A method an API route does not take: a 405 (axum adds `Allow`). On a run route with a typo
/// in the area (`GET /api/agent/…`), the 404 that says where runs live, as with the right
/// method.
pub async fn other_method(params: RawPathParams, req: Request) -> Response {
    super::body::drain(req).await;
    match params
        .iter()
        .find(|(k, _)| *k == "area")
        .map(|(_, v)| area(v))
    {
        Some(Err(e)) => e.into_response(),
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

pub async fn schedule(
    State(state): State<AppState>,
    Path((area_seg, name)): Path<(String, String)>,
    req: Request,
) -> Result<Json<ScheduleResponse>, EngineError> {
    // What needs no body is refused before it is read, so a client waiting for `100 Continue`
    // is not asked for it; one already sending it has it read and dropped (`body::drain`), so
    // that it hears the refusal.
    let kind = area(&area_seg).and_then(|kind| match state.catalog.exists(kind, &name) {
        true => Ok(kind),
        false => Err(EngineError::NotFound(format!(
            "{kind} `{}` not found",
            clip(&name)
        ))),
    });
    let kind = match kind {
        Ok(kind) => kind,
        Err(e) => {
            super::body::drain(req).await;
            return Err(e);
        }
    };
    let body = super::body::read(req, state.max_body_bytes).await?;
    let input = parse_request(&body)?;
    state
        .catalog
        .check_input(kind, &name, &input)
        .map_err(EngineError::BadRequest)?;
    // Even an engine that executes nothing (the embedded one of a command without --follow)
    // stores an echo completed: it has no effects, and its output is its input.
    let done = state.catalog.echoes_at_schedule(kind, &name, &input);
    let status = if done {
        RunStatus::Completed
    } else {
        RunStatus::Queued
    };
    let input_text = input.to_string();
    let run = NewRun {
        kind,
        name: name.clone(),
        output: done.then(|| input_text.clone()),
        input: input_text,
        created_at: now_ms(),
    };
    // Answer only after the commit: a 200 means the run is on disk. A run that still has work
    // to do is stored and started as a `whole`, or a hang-up could leave it queued until a
    // restart.
    let stored = if done {
        state.store.insert(run).await
    } else {
        let st = state.clone();
        whole(async move {
            let id = st.store.insert(run).await?;
            st.executor.dispatch(ActiveRun {
                id: id.clone(),
                kind,
                name,
                input,
                status,
                attempt: 0,
                wake_at: None,
                recovered: false,
            });
            Ok(id)
        })
        .await
    };
    let id = stored.map_err(|e| EngineError::unavailable("cannot store the run", e))?;
    Ok(Json(ScheduleResponse {
        run_id: id,
        status: Some(status),
    }))
}

/// The body is optional; when present it is `{"input": {...}}` and nothing else, so that a
/// misplaced input (`{"text": "..."}`) is an error rather than silently dropped.
fn parse_request(body: &[u8]) -> Result<Value, EngineError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let value =
        parse_json(body).map_err(|e| EngineError::BadRequest(format!("request body {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(EngineError::BadRequest(format!(
            "request body must be a JSON object like {{\"input\": {{...}}}}, not {}",
            json_type(&value)
        )));
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "input") {
        return Err(EngineError::BadRequest(format!(
            "unknown field `{}` in the request body; put the run's input under \"input\"",
            clip(k)
        )));
    }
    match obj.remove("input") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(Value::Object(input)) => {
            check_nesting(&input).map_err(|e| EngineError::BadRequest(format!("`input` {e}")))?;
            Ok(Value::Object(input))
        }
        Some(other) => Err(EngineError::BadRequest(format!(
            "`input` must be a JSON object, not {}",
            json_type(&other)
        ))),
    }
}

/// A run, but only under the kind and name it was scheduled with.
fn load(state: &AppState, kind: Kind, name: &str, id: &str) -> Result<RunRow, EngineError> {
    match state.store.get_run(id)? {
        Some(row) if row.kind == kind && row.name == name => Ok(row),
        _ => Err(EngineError::NotFound(format!(
            "{kind} run `{}` of `{}` not found",
            clip(id),
            clip(name)
        ))),
    }
}

pub async fn get(
    State(state): State<AppState>,
    Path((area_seg, name, id)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, EngineError> {
    let kind = area(&area_seg)?;
    let wait = match query.get("wait") {
        None => 0.0,
        Some(w) => match w.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.0 => s.min(MAX_WAIT_SECONDS),
            _ => {
                return Err(EngineError::BadRequest(format!(
                    "wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}, not {:?}",
                    clip(w)
                )));
            }
        },
    };
    // `since`: the status the caller last saw. Without it, the status at request time; with
    // it, a change that happened between the caller's two requests is not slept through.
    let since = query.get("since").map(|s| parse_status(s)).transpose()?;
    // `sinceTag`: the `ETag` of the answer the caller last saw. With it, any change answers (a
    // retry, a step), not only one of the status: what a watcher shows as it happens.
    let since_tag = query.get("sinceTag").map(|t| bare_tag(t).to_string());
    // Subscribe before the first read, so that a change between the two is not missed and one
    // read is enough before sleeping. A poll that answers at once pays the notifier's lock
    // twice instead of a second read; the subscription removes itself on every way out.
    let mut subscription = (wait > 0.0).then(|| state.notifier.subscribe(&id));
    let mut row = load(&state, kind, &name, &id)?;
    let initial = since.unwrap_or(row.status);
    // Rendered only to compare tags; without a tag, the row's status says enough until the
    // answer (a workflow's steps are a read of their own).
    let mut seen = since_tag
        .as_ref()
        .map(|_| Rendered::new(&state, row.clone()))
        .transpose()?;
    let unchanged = |row: &RunRow, seen: &Option<Rendered>| {
        !row.status.is_terminal()
            && match (&since_tag, seen) {
                (Some(tag), Some(r)) => *tag == r.tag,
                _ => row.status == initial,
            }
    };
    if let Some(sub) = subscription.as_mut()
        && unchanged(&row, &seen)
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
        loop {
            // Woken by a change, it waits on while nothing the caller watches has changed; at
            // the deadline or a stop, it answers the run as it is.
            let changed = tokio::select! {
                _ = sub.changed() => true,
                _ = tokio::time::sleep_until(deadline) => false,
                _ = state.stopping.cancelled() => false,
            };
            row = load(&state, kind, &name, &id)?;
            if seen.is_some() {
                seen = Some(Rendered::new(&state, row.clone())?);
            }
            if !changed || !unchanged(&row, &seen) {
                break;
            }
        }
    }
    let seen = match seen {
        Some(seen) => seen,
        None => Rendered::new(&state, row)?,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, format!("\"{}\"", seen.tag)),
        ],
        seen.body,
    )
        .into_response())
}

/// A run's status object as sent, and its tag: a hash of those bytes, so two answers with the
/// same tag say the same.
struct Rendered {
    body: Vec<u8>,
    tag: String,
}

impl Rendered {
    fn new(state: &AppState, row: RunRow) -> Result<Rendered, EngineError> {
        use std::hash::{Hash, Hasher};
        let Json(info) = render(state, row)?;
        let body = serde_json::to_vec(&info).map_err(|e| EngineError::Internal(e.into()))?;
        // SipHash with fixed keys: the same body has the same tag in every engine of a build.
        // The prefix says a restack engine tagged it, which honours `sinceTag`.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        Ok(Rendered {
            body,
            tag: format!("{TAG_PREFIX}{:016x}", h.finish()),
        })
    }
}

/// The status object, with the steps when it is a workflow run.
fn render(state: &AppState, row: RunRow) -> Result<Json<RunInfo>, EngineError> {
    let steps = match row.kind {
        Kind::Workflow => Some(step_infos(state, &row)?),
        Kind::Agent => None,
    };
    Ok(Json(run_info(state, row, steps)))
}

/// The status object of a stored run. While a run goes on, its `error` column holds its last
/// failed attempt's error, shown as `lastError` (`error` is the run's failure, once it has
/// failed); a command agent's wake-up time is the end of its pause before the next attempt
/// (`retryAt`). A workflow shows its current step's.
fn run_info(state: &AppState, row: RunRow, steps: Option<Vec<StepInfo>>) -> RunInfo {
    let command = row.kind == Kind::Agent && state.catalog.is_command_agent(&row.name);
    let (error, mut last_error, retry_at) =
        between_attempts(command, row.status, row.error, row.wake_at);
    let mut retry_at = retry_at.map(rfc3339_ms);
    if let Some(s) = steps
        .iter()
        .flatten()
        .find(|s| s.status == RunStatus::Running)
    {
        last_error = s.last_error.clone();
        retry_at = s.retry_at.clone();
    }
    let (agent_name, workflow_name) = match row.kind {
        Kind::Agent => (Some(row.name), None),
        Kind::Workflow => (None, Some(row.name)),
    };
    RunInfo {
        run_id: row.id,
        agent_name,
        workflow_name,
        status: row.status,
        output: row
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok()),
        error,
        created_at: Some(rfc3339_ms(row.created_at)),
        started_at: row.started_at.map(rfc3339_ms),
        completed_at: row.completed_at.map(rfc3339_ms),
        attempt: (row.attempt > 0).then_some(row.attempt),
        canceled: row.canceled.then_some(true),
        last_error,
        retry_at,
        steps,
        said: None,
    }
}

/// A run's or a step's stored error and wake-up time, as the API shows them: while it goes
/// on, the error is its last failed attempt's (`lastError`, `error` being the failure of the
/// whole), and a command agent's wake-up time is the end of the pause before its next attempt
/// (`retryAt`). `(error, lastError, retryAt)`.
fn between_attempts(
    command: bool,
    status: RunStatus,
    error: Option<String>,
    wake_at: Option<i64>,
) -> (Option<String>, Option<String>, Option<i64>) {
    match status.is_terminal() {
        true => (error, None, None),
        false => (None, error, wake_at.filter(|_| command)),
    }
}

/// Every step of the workflow's definition, with what is stored for it so far. A step that
/// ran is named as it ran, even if the config has changed since; a completed run shows the
/// steps it ran, all of them stored, and none added to the config since.
fn step_infos(state: &AppState, row: &RunRow) -> Result<Vec<StepInfo>, EngineError> {
    let stored = state.store.steps(&row.id)?;
    let defs: Vec<String> = match state.catalog.workflows.get(&row.name) {
        Some(w) if row.status != RunStatus::Completed => {
            w.steps.iter().map(|s| s.describe()).collect()
        }
        _ => Vec::new(),
    };
    let count = defs.len().max(stored.last().map_or(0, |s| s.idx + 1));
    Ok((0..count)
        .map(|index| {
            let s = stored.iter().find(|s| s.idx == index);
            let step = s
                .and_then(|s| s.step.clone())
                .or_else(|| defs.get(index).cloned())
                .unwrap_or_else(|| format!("step {}", index + 1));
            let mut info = StepInfo {
                index,
                step,
                status: s.map(|s| s.status).unwrap_or(RunStatus::Queued),
                started_at: s.and_then(|s| s.started_at).map(rfc3339_ms),
                completed_at: s.and_then(|s| s.completed_at).map(rfc3339_ms),
                wake_at: None,
                attempt: s.map(|s| s.attempt).filter(|a| *a > 0),
                error: s.and_then(|s| s.error.clone()),
                last_error: None,
                retry_at: None,
            };
            // A run that ended while this step was under way (or cut short by a stop, and
            // queued again): the step did not finish either, and will not.
            let begun = s.is_some_and(|s| s.started_at.is_some());
            if row.status.is_terminal()
                && (info.status == RunStatus::Running || info.status == RunStatus::Queued && begun)
            {
                info.status = RunStatus::Failed;
                // Not its last attempt's error, which a step under way keeps (`lastError`).
                info.error = Some("the run ended during this step".into());
                // It ended when the run did.
                if info.completed_at.is_none() {
                    info.completed_at = row.completed_at.map(rfc3339_ms);
                }
            }
            // A wake-up time is news only while the step sleeps; a command agent's is the end
            // of the pause before its next attempt, no sleep of the workflow's.
            let command = info
                .step
                .strip_prefix("agent ")
                .is_some_and(|name| state.catalog.is_command_agent(name));
            let wake_at = s.and_then(|s| s.wake_at);
            let retry;
            (info.error, info.last_error, retry) =
                between_attempts(command, info.status, info.error.take(), wake_at);
            info.retry_at = retry.map(rfc3339_ms);
            if info.status != RunStatus::Failed && !command {
                info.wake_at = wake_at.map(rfc3339_ms);
            }
            info
        })
        .collect())
}

pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<RunList>, EngineError> {
    let mut filter = RunFilter {
        limit: 50,
        ..Default::default()
    };
    if let Some(k) = query.get("kind").filter(|v| !v.is_empty()) {
        filter.kind = Some(Kind::parse(k).ok_or_else(|| bad("kind (agent or workflow)", k))?);
    }
    if let Some(n) = query.get("name").filter(|v| !v.is_empty()) {
        filter.name = Some(n.clone());
    }
    if let Some(s) = query.get("status").filter(|v| !v.is_empty()) {
        filter.status = Some(parse_status(s)?);
    }
    if let Some(l) = query.get("limit").filter(|v| !v.is_empty()) {
        filter.limit = l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| bad("limit (1 to 1000)", l))?;
    }
    if let Some(b) = query.get("before").filter(|v| !v.is_empty()) {
        filter.before = Some(
            state
                .store
                .cursor(b)?
                .ok_or_else(|| bad("before (a run ID, as in a page's `next`)", b))?,
        );
    }
    let rows = state.store.list_runs(&filter)?;
    let next = (rows.len() == filter.limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(RunList {
        runs: rows
            .into_iter()
            .map(|r| run_info(&state, r, None))
            .collect(),
        next,
    }))
}

fn bad(what: &str, value: &str) -> EngineError {
    EngineError::BadRequest(format!("invalid {what} {:?}", clip(value)))
}

fn parse_status(s: &str) -> Result<RunStatus, EngineError> {
    serde_json::from_value::<RunStatus>(Value::String(s.to_string()))
        .map_err(|_| bad("status (queued, running, completed or failed)", s))
}

pub async fn cancel(
    State(state): State<AppState>,
    Path((area_seg, name, id)): Path<(String, String, String)>,
    req: Request,
) -> Result<Json<RunInfo>, EngineError> {
    // A cancel takes no body; one sent anyway is read, so that the answer is heard.
    super::body::drain(req).await;
    let kind = area(&area_seg)?;
    let row = load(&state, kind, &name, &id)?;
    if row.status.is_terminal() {
        let ended = match row.canceled {
            true => "been canceled".to_string(),
            false => row.status.to_string(),
        };
        return Err(EngineError::Conflict(format!(
            "run `{id}` has already {ended}"
        )));
    }
    // The end is written and the agent killed as a `whole`, or a hang-up could leave a run
    // marked canceled whose agent goes on.
    let st = state.clone();
    let (run_id, run_name) = (id.clone(), name.clone());
    let applied = whole(async move {
        let applied = st
            .store
            .write(Op::Finish {
                id: run_id.clone(),
                status: RunStatus::Failed,
                output: None,
                error: Some("canceled".into()),
                at: now_ms(),
                canceled: true,
                steps: Vec::new(),
            })
            .await?;
        if applied {
            st.executor.cancel(kind, &run_name, &run_id);
        }
        Ok(applied)
    })
    .await
    .map_err(|e| EngineError::unavailable("cannot cancel the run", e))?;
    if !applied {
        return Err(EngineError::Conflict(format!(
            "run `{id}` ended before it could be canceled"
        )));
    }
    render(&state, load(&state, kind, &name, &id)?)
}

/// The most line text one logs answer holds: a run may store 80 MiB of lines per attempt
/// (10 101 lines of up to 8 KiB), and an answer is built whole in memory.
const LOG_ANSWER_BYTES: usize = 1 << 20;

pub async fn logs(
    State(state): State<AppState>,
    Path((area_seg, name, id)): Path<(String, String, String)>,
) -> Result<Json<Logs>, EngineError> {
    let kind = area(&area_seg)?;
    let row = load(&state, kind, &name, &id)?;
    let (stored, omitted) = state
        .store
        .logs(&id, LOG_LINES_PER_ATTEMPT, LOG_ANSWER_BYTES)?;
    // Steps' events from the time of the first line kept, when earlier ones were left out.
    let since = match omitted {
        0 => i64::MIN,
        _ => stored.first().map_or(i64::MIN, |l| l.at),
    };
    let mut lines: Vec<(i64, LogLine)> = stored
        .into_iter()
        .map(|l| {
            (
                l.at,
                LogLine {
                    at: rfc3339_ms(l.at),
                    step: l.step,
                    attempt: l.attempt,
                    line: l.line,
                },
            )
        })
        .collect();
    if kind == Kind::Workflow {
        let stored = state.store.steps(&id)?;
        for s in step_infos(&state, &row)? {
            let Some(st) = stored.iter().find(|x| x.idx == s.index) else {
                continue;
            };
            let event = |at: i64, attempt: Option<u32>, line: String| {
                (
                    at,
                    LogLine {
                        at: rfc3339_ms(at),
                        step: Some(s.index),
                        attempt,
                        line,
                    },
                )
            };
            // The step's start is its first attempt's; its end, its last attempt's.
            if let Some(at) = st.started_at {
                let mut line = format!("step {} ({}) started", s.index + 1, s.step);
                if let Some(w) = &s.wake_at {
                    line.push_str(&format!("; wakes at {w}"));
                }
                if at >= since {
                    lines.push(event(at, s.attempt.map(|a| a.min(1)), line));
                }
            }
            if let Some(at) = st.completed_at.filter(|at| *at >= since) {
                let line = match &s.error {
                    Some(e) => format!("step {} ({}) failed: {e}", s.index + 1, s.step),
                    None => format!("step {} ({}) {}", s.index + 1, s.step, s.status),
                };
                lines.push(event(at, s.attempt, line));
            }
        }
        lines.sort_by_key(|(at, _)| *at);
    }
    Ok(Json(Logs {
        lines: lines.into_iter().map(|(_, l)| l).collect(),
        omitted: (omitted > 0).then_some(omitted),
    }))
}

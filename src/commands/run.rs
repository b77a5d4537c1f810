//! `restack agent run` and `restack workflow run`: build the input, schedule, record it in the
//! history, and with `--follow` watch the run to its end.

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value};

use super::Session;
use crate::api::{
    JsonError, Kind, RunInfo, RunStatus, check_nesting, now_ms, parse_json, rfc3339_ms,
};
use crate::cli::{GlobalArgs, parse_duration};
use crate::client::{Answer, Bound, Client, Watch, fmt_secs};
use crate::error::{Exit, Failure};
use crate::{history, output};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent or workflow to run
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub name: String,
    /// Input: a JSON file, `-` for stdin, or inline JSON starting with `{`
    #[arg(short, long, value_name = "PATH|-|JSON")]
    pub input: Option<String>,
    /// Set a top-level input key, over `--input`'s (the value is parsed as JSON when it
    /// parses, else a string; each key once)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Watch the run until it ends; print its output; the exit status reflects the run
    #[arg(short, long)]
    pub follow: bool,
    /// With --follow: stop waiting after this long (exit 6; the run goes on)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "follow")]
    pub timeout: Option<Duration>,
}

impl RunArgs {
    pub async fn run(self, kind: Kind, g: &GlobalArgs) -> Result<Exit> {
        // Everything about the input is checked before anything is sent.
        let input = build_input(self.input.as_deref(), &self.set)?;
        // `--timeout` counts from here: a wait for the embedded engine is part of the command.
        let started = Instant::now();
        let session = g.connect_within(self.follow, self.timeout).await?;
        let result = session
            .interruptible(self.schedule(kind, input, g, &session, started))
            .await;
        session.finish(result).await
    }

    async fn schedule(
        &self,
        kind: Kind,
        input: Map<String, Value>,
        g: &GlobalArgs,
        s: &Session,
        started: Instant,
    ) -> Result<Exit> {
        // What is left of --timeout bounds the schedule request.
        let within = self.timeout.map(|t| t.saturating_sub(started.elapsed()));
        let answer = s.client.schedule(kind, &self.name, input, within).await?;
        let id = answer.typed.run_id.clone();
        history::record(&history::Entry {
            profile: s.profile.name.clone(),
            kind,
            name: self.name.clone(),
            run_id: id.clone(),
            url: s.recorded_at(),
            time: rfc3339_ms(now_ms()),
        });
        if !self.follow {
            if g.json() {
                output::json(&answer.raw);
            } else if g.quiet {
                output::out(&id);
            } else {
                let status = answer.typed.status.unwrap_or(RunStatus::Queued);
                // The status as the server said it; none when it said none.
                let said = match answer.raw.get("status").and_then(Value::as_str) {
                    Some(word) if answer.typed.status.is_some_and(|s| s.as_str() == word) => {
                        format!(" ({word})")
                    }
                    Some(word) if !word.trim().is_empty() => {
                        format!(" ({})", output::printable(&crate::api::clip(word)))
                    }
                    _ => String::new(),
                };
                output::out(&format!("Scheduled {kind} {} run {id}{said}", self.name));
                output::out(&format!(
                    "Follow it: {}",
                    s.client.origin.status_command(kind, &self.name, &id, true)
                ));
                if s.embedded.is_some() && !status.is_terminal() {
                    eprintln!(
                        "note: the embedded engine stops with this command; the run starts the next time an engine opens {} (`restack serve`, or a command with --follow)",
                        s.embedded
                            .as_ref()
                            .map(|e| e.data_dir.display().to_string())
                            .unwrap_or_default()
                    );
                }
            }
            return Ok(Exit::Ok);
        }
        // The schedule's answer is the first thing known of the run (at least, queued).
        let known = answer.typed.status.unwrap_or(RunStatus::Queued);
        // `--timeout` bounds the command from its start, the schedule included.
        let bound = Bound {
            started,
            timeout: self.timeout,
        };
        let scheduled = (known, &answer.raw);
        follow(&s.client, kind, &self.name, &id, bound, Some(scheduled), g).await
    }
}

/// Watches a run to its end and reports it: the output object (or, with `-o json`, the whole
/// status object) on stdout; exit 1 when it failed. The elapsed time shown counts from the
/// command's start, as the timeout does. `scheduled`: the schedule's answer, when this command
/// scheduled the run (its status, and the body as the server sent it).
pub async fn follow(
    client: &Client,
    kind: Kind,
    name: &str,
    id: &str,
    bound: Bound,
    scheduled: Option<(RunStatus, &Value)>,
    g: &GlobalArgs,
) -> Result<Exit> {
    let mut progress = Progress::new(g, id);
    // For `-o json` at a --timeout: the run as last seen (at least, as scheduled), so a script
    // still gets its object.
    let mut last_seen: Option<Value> = scheduled.filter(|_| g.json()).map(|(_, raw)| raw.clone());
    let known = scheduled.map(|(status, _)| status);
    let result = client
        .follow(kind, name, id, bound, known, |event| match event {
            Watch::Status(status) => progress.update(status, bound.started.elapsed()),
            Watch::Seen(raw) if g.json() => last_seen = Some(raw.clone()),
            Watch::Seen(_) => {}
            Watch::Retrying(why, pause) => progress.retrying(&why, pause),
            Watch::Changed(info) => progress.changed(info, bound.started.elapsed()),
        })
        .await;
    progress.done();
    let timed_out = |e: &anyhow::Error| {
        e.downcast_ref::<Failure>()
            .is_some_and(|f| f.exit == Exit::Timeout)
    };
    let Answer {
        typed: info, raw, ..
    } = match result {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(raw) = last_seen.filter(|_| timed_out(&e)) {
                output::json(&raw);
            }
            return Err(e);
        }
    };
    report_end(
        &info,
        &raw,
        g,
        &client.origin.status_command(kind, name, id, false),
    )
}

/// `show` is the command that shows the run again, for the hint when it failed.
fn report_end(info: &RunInfo, raw: &Value, g: &GlobalArgs, show: &str) -> Result<Exit> {
    if g.json() {
        output::json(raw);
    }
    match info.status {
        RunStatus::Completed => {
            if !g.json() {
                output::json(info.output.as_ref().unwrap_or(&Value::Object(Map::new())));
            }
            Ok(Exit::Ok)
        }
        _ => {
            let why = info.error.as_deref().unwrap_or("no error message");
            let said = info
                .said
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            Err(Failure::new(
                Exit::RunFailed,
                format!("{} run {} failed{said}: {why}", info.kind(), info.run_id),
            )
            .with_hint(format!("`{show}` shows the run"))
            .into())
        }
    }
}

/// Live status on stderr: a spinner on a terminal, plain lines otherwise, nothing with -q.
/// `said`: what the last [`Progress::changed`] showed, so each change is said once.
enum Progress {
    Spinner(indicatif::ProgressBar, String, String),
    Lines(String, String),
    Silent,
}

/// What a run still going on is doing beyond its status, when its server says (a restack
/// engine does): the step a workflow is on, the attempt after the first, and a pause before
/// the next attempt with why the last failed. A key that changes with it, and its words.
fn doing(info: &RunInfo) -> Option<(String, String)> {
    let (step, attempt, last_error, retry_at) = match &info.steps {
        Some(steps) => {
            let s = steps.iter().find(|s| s.status == RunStatus::Running)?;
            let at = format!("step {} of {} ({})", s.index + 1, steps.len(), s.step);
            (Some(at), s.attempt, &s.last_error, &s.retry_at)
        }
        None => (None, info.attempt, &info.last_error, &info.retry_at),
    };
    // The failure was said as the pause began: a retry's line need not repeat it.
    let tried =
        crate::output::attempts_words(attempt, last_error.as_deref(), retry_at.as_deref(), false);
    let key = format!("{step:?} {attempt:?} {retry_at:?}");
    let words = match (step, tried) {
        (Some(step), Some(tried)) => format!("{step}, {tried}"),
        (Some(step), None) => step,
        (None, Some(tried)) => tried,
        (None, None) => return None,
    };
    Some((key, words))
}

impl Progress {
    fn new(g: &GlobalArgs, id: &str) -> Progress {
        if g.quiet {
            return Progress::Silent;
        }
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(format!("run {id}: scheduled"));
            bar.enable_steady_tick(Duration::from_millis(100));
            Progress::Spinner(bar, id.to_string(), String::new())
        } else {
            Progress::Lines(id.to_string(), String::new())
        }
    }

    /// A new status; what the run does next is said again after it.
    fn update(&mut self, status: RunStatus, elapsed: Duration) {
        match self {
            Progress::Spinner(bar, id, said) => {
                bar.set_message(format!("run {id}: {status}"));
                said.clear();
            }
            Progress::Lines(id, said) => {
                eprintln!("run {id}: {status} ({})", fmt_secs(elapsed));
                said.clear();
            }
            Progress::Silent => {}
        }
    }

    fn changed(&mut self, info: &RunInfo, elapsed: Duration) {
        let Some((key, words)) = doing(info) else {
            return;
        };
        match self {
            Progress::Spinner(bar, id, said) if *said != key => {
                bar.set_message(format!("run {id}: {} · {words}", info.status));
                *said = key;
            }
            Progress::Lines(id, said) if *said != key => {
                eprintln!("run {id}: {words} ({})", fmt_secs(elapsed));
                *said = key;
            }
            _ => {}
        }
    }

    /// A transient failure shows even with -q: the command is slower than it should be, and
    /// says why.
    fn retrying(&mut self, why: &str, pause: Duration) {
        // `why` carries the server's words: printable, as every error's are.
        let line = format!(
            "warning: {}; retrying in {}",
            crate::output::printable(why),
            fmt_secs(pause)
        );
        match self {
            Progress::Spinner(bar, ..) => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn done(&mut self) {
        if let Progress::Spinner(bar, ..) = self {
            bar.finish_and_clear();
        }
    }
}

/// The input object from `--input` and `--set`; every mistake here is exit 2.
pub fn build_input(input: Option<&str>, set: &[String]) -> Result<Map<String, Value>> {
    let mut obj = match input {
        None => Map::new(),
        Some(src) => {
            let (text, from) = if src == "-" {
                let mut t = String::new();
                std::io::stdin().read_to_string(&mut t).map_err(|e| {
                    Failure::usage(format!("cannot read the input from stdin: {e}"))
                })?;
                (t, "stdin".to_string())
            } else if src.trim_start().starts_with('{') {
                (src.to_string(), "--input".to_string())
            } else {
                match std::fs::read_to_string(src) {
                    Ok(t) => (t, src.to_string()),
                    // Not a file, but JSON (`[1,2]`, `42`): say what is wrong with it as input.
                    Err(e)
                        if e.kind() == std::io::ErrorKind::NotFound
                            && parse_json(src.as_bytes()).is_ok() =>
                    {
                        (src.to_string(), "--input".to_string())
                    }
                    Err(e) => {
                        return Err(Failure::usage(format!("cannot read input file {src}: {e}"))
                            .with_hint("--input takes a JSON file, `-` for stdin, or inline JSON starting with `{`")
                            .into());
                    }
                }
            };
            // Editors on Windows start a UTF-8 file with a byte-order mark; JSON has none.
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            match parse_json(text.as_bytes()) {
                Ok(Value::Object(o)) => o,
                Ok(other) => {
                    return Err(Failure::usage(format!(
                        "the input ({from}) must be a JSON object, not {}",
                        crate::api::json_type(&other)
                    ))
                    .into());
                }
                Err(e) => {
                    return Err(Failure::usage(format!("the input ({from}) {e}")).into());
                }
            }
        }
    };
    let mut keys_set = std::collections::HashSet::new();
    for kv in set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(Failure::usage(format!("--set takes KEY=VALUE, not {kv:?}")).into());
        };
        if k.is_empty() {
            return Err(Failure::usage(format!("--set {kv:?}: the key is empty")).into());
        }
        // One value would be dropped silently, as with a key named twice in JSON. (A `--set`
        // over a key of `--input` is what it is for.)
        if !keys_set.insert(k) {
            return Err(Failure::usage(format!("--set {k} is given twice")).into());
        }
        let value = match parse_json(v.as_bytes()) {
            Ok(value) => value,
            Err(JsonError::Syntax(_)) => Value::String(v.to_string()),
            Err(e) => return Err(Failure::usage(format!("--set {k}: the value {e}")).into()),
        };
        obj.insert(k.to_string(), value);
    }
    check_nesting(&obj).map_err(|e| Failure::usage(format!("the input {e}")))?;
    Ok(obj)
}

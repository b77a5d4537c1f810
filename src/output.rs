//! Rendering: JSON for scripts, text for people, a table for lists. Stdout carries results only;
//! progress and errors go to stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use comfy_table::{Table, presets};
use serde_json::Value;

use crate::api::{RunInfo, RunStatus};

/// Whether the user lets us colour at all: no `--no-color`, no `NO_COLOR`.
fn color_allowed(no_color_flag: bool) -> bool {
    // no-color.org: only a NO_COLOR that is set and not empty turns colour off.
    !no_color_flag && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether to colour stdout: allowed, and a terminal.
pub fn color_enabled(no_color_flag: bool) -> bool {
    color_allowed(no_color_flag) && std::io::stdout().is_terminal()
}

/// Sends the engine's logs to stderr, coloured only on a terminal and when colour is wanted:
/// a log redirected to a file must not fill with escape codes.
pub fn log_to_stderr(no_color_flag: bool, filter: &str) {
    let ansi = color_allowed(no_color_flag) && std::io::stderr().is_terminal();
    // A log line that cannot be written (a full disk, a closed pipe) is lost, not reported:
    // the report would go to the same stderr, and its failure would abort the engine.
    let _ = tracing_subscriber::fmt()
        .log_internal_errors(false)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .try_init();
}

/// Tokens this process sends. A server's words (an error, a redirect's target) may repeat one
/// back; nothing this process writes to stderr shows it.
static SECRETS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Keeps `token` out of stderr from now on. Shorter than four characters it would hide
/// ordinary words instead, and is left.
pub fn keep_secret(token: &str) {
    if token.len() >= 4 {
        let mut secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
        if !secrets.iter().any(|s| s == token) {
            secrets.push(token.to_string());
        }
    }
}

/// `text` with every kept token as `***`.
pub fn unsecret(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), "***"));
        }
    }
    out
}

/// `text` with its control characters written out (`\u{1b}`, `\n`): what a server says reaches
/// the terminal as text, never as escape sequences that retitle it, clear it or fake a line.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.into()
}

/// `url` fit to print: credentials in it (`https://user:secret@host`) show as `***`, as a token
/// does. Everything else is left as given. Everything before the last `@` ahead of a query
/// goes, not only a well-formed authority: URL parsers skip extra slashes (`http:///u:p@h`),
/// and a password may hold a raw `/`.
pub fn redact_url(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let before_query = rest.split(['?', '#']).next().unwrap_or(rest);
    match before_query.rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]).into(),
        None => url.into(),
    }
}

/// Why stdout refused a result, when it did for another reason than a closed pipe.
static LOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Writes to stdout. A closed pipe (`| head`) means the reader has what it wanted; any other
/// failure (a full disk under `> id.txt`) is remembered, and [`lost_output`] makes the command
/// fail rather than exit 0 with its result missing.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let mut written = stdout.write_all(text.as_bytes());
    if written.is_ok() && !text.ends_with('\n') {
        written = stdout.write_all(b"\n");
    }
    if let Err(e) = written.and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        let _ = LOST.set(e.to_string());
    }
}

/// The error that kept a result off stdout, if one did.
pub fn lost_output() -> Option<&'static str> {
    LOST.get().map(String::as_str)
}

pub fn json(value: &Value) {
    out(&serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
}

/// A run's status as the detail and the table show it: a canceled run is `failed` in the API
/// (its status list has no `canceled`), and says why beside it.
pub fn run_status_word(info: &RunInfo, color: bool) -> String {
    let word = status_word(info.status, color);
    match (info.status, info.canceled, &info.said) {
        (RunStatus::Failed, Some(true), _) => format!("{word} (canceled)"),
        (_, _, Some(said)) => format!("{word} ({said})"),
        _ => word,
    }
}

pub fn status_word(status: RunStatus, color: bool) -> String {
    if !color {
        return status.to_string();
    }
    let code = match status {
        RunStatus::Queued => "33",
        RunStatus::Running => "36",
        RunStatus::Completed => "32",
        RunStatus::Failed => "31",
    };
    paint(code, &status.to_string())
}

/// A word in the status column that is no run's status (`not found`), in the terminal's own
/// colour when the others are coloured, so that the column still lines up (see [`paint`]).
pub fn other_status(word: &str, color: bool) -> String {
    if color {
        paint("39", word)
    } else {
        word.to_string()
    }
}

/// `text` in colour `code`. The table counts the escape bytes as width, so every cell of a
/// painted column, its header too, carries the same ones (two-digit codes) to line up.
fn paint(code: &str, text: &str) -> String {
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// Wall time between two RFC 3339 stamps, when both parse.
pub fn took(from: Option<&str>, to: Option<&str>) -> Option<Duration> {
    let a = instant(from?)?;
    let b = instant(to?)?;
    b.duration_since(a).ok()
}

/// An RFC 3339 time as any server may write it: `Z` or `z`, or a `+HH:MM`/`-HH:MM` offset
/// (which humantime does not read), and fractions of any length.
fn instant(text: &str) -> Option<std::time::SystemTime> {
    let (local, offset_secs) = match text.strip_suffix(['Z', 'z']) {
        Some(local) => (local, 0i64),
        None => {
            let at = text.len().checked_sub(6)?;
            let (local, zone) = (text.get(..at)?, text.get(at..)?.as_bytes());
            let sign = match zone[0] {
                b'+' => 1,
                b'-' => -1,
                // No zone at all: read as UTC, as humantime's weak form does.
                _ => return humantime::parse_rfc3339_weak(text).ok(),
            };
            let digits = |d: &[u8]| std::str::from_utf8(d).ok()?.parse::<i64>().ok();
            if zone[3] != b':' {
                return None;
            }
            let secs = digits(&zone[1..3])? * 3600 + digits(&zone[4..6])? * 60;
            (local, sign * secs)
        }
    };
    // humantime reads at most nine fractional digits; more add nothing it could show.
    let local = match local.split_once('.') {
        Some((whole, frac)) if frac.len() > 9 => format!("{whole}.{}", frac.get(..9)?),
        _ => local.to_string(),
    };
    let t = humantime::parse_rfc3339_weak(&local).ok()?;
    let shift = Duration::from_secs(offset_secs.unsigned_abs());
    // 12:00+02:00 is 10:00 UTC.
    if offset_secs >= 0 {
        t.checked_sub(shift)
    } else {
        t.checked_add(shift)
    }
}

/// What a run or a step still going on says of its attempts, beyond its status: a failed
/// attempt and the pause before the next (`attempt 2 failed: …; retrying in 1.0s`), or a later
/// attempt under way (`attempt 3`; with `why`, the failure that led to it too).
pub fn attempts_words(
    attempt: Option<u32>,
    last_error: Option<&str>,
    retry_at: Option<&str>,
    why: bool,
) -> Option<String> {
    let a = attempt.unwrap_or(1);
    let said = |e: &str| printable(&crate::api::clip(e)).into_owned();
    match (retry_at, last_error) {
        (Some(at), Some(e)) => Some(format!(
            "attempt {a} failed: {}; retrying {}",
            said(e),
            retry_when(at)
        )),
        // A pause with no failure of the agent's: the engine was short of resources.
        (Some(at), None) => Some(format!(
            "waiting for the engine's resources to start attempt {}; trying again {}",
            attempt.map_or(1, |a| a + 1),
            retry_when(at)
        )),
        (None, Some(e)) if a > 1 && why => Some(format!(
            "attempt {a}, after attempt {} failed: {}",
            a - 1,
            said(e)
        )),
        _ if a > 1 => Some(format!("attempt {a}")),
        _ => None,
    }
}

/// "in 2.0s" for a time a little ahead by this machine's clock, else the time as the server
/// gave it.
fn retry_when(at: &str) -> String {
    let ahead = humantime::parse_rfc3339_weak(at)
        .ok()
        .and_then(|t| t.duration_since(std::time::SystemTime::now()).ok());
    match ahead {
        Some(d) if d <= Duration::from_secs(3600) => format!("in {}", crate::client::fmt_secs(d)),
        _ => format!("at {}", printable(&crate::api::clip(at))),
    }
}

/// `restack status RUN_ID` in text.
pub fn run_detail(info: &RunInfo, color: bool) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<11}{v}\n"));
    line("Run:", &info.run_id);
    line(
        &format!("{}:", capitalize(info.kind().as_str())),
        info.name(),
    );
    line("Status:", &run_status_word(info, color));
    if let Some(c) = &info.created_at {
        line("Created:", c);
    }
    if let Some(c) = &info.started_at {
        line("Started:", c);
    }
    if let Some(c) = &info.completed_at {
        let d = took(info.created_at.as_deref(), Some(c))
            .map(|d| format!("  ({} after creation)", crate::client::fmt_secs(d)))
            .unwrap_or_default();
        line("Completed:", &format!("{c}{d}"));
    }
    if let Some(a) = info.attempt {
        line("Attempt:", &a.to_string());
    }
    // While it goes on; a workflow's are its current step's, shown with the step.
    if info.steps.is_none()
        && !info.status.is_terminal()
        && let Some(w) = attempts_words(
            info.attempt,
            info.last_error.as_deref(),
            info.retry_at.as_deref(),
            true,
        )
    {
        line("Retry:", &w);
    }
    if let Some(e) = &info.error {
        line("Error:", e);
    }
    if let Some(steps) = &info.steps {
        s.push_str("Steps:\n");
        let ended = info.status.is_terminal();
        for st in steps {
            // A step still queued in a run that has ended will never run.
            let status = if ended && st.status == RunStatus::Queued {
                other_status("not run", color)
            } else {
                status_word(st.status, color)
            };
            let mut l = format!("  {}. {:<24} {status}", st.index + 1, st.step);
            if let Some(w) = &st.wake_at
                && !st.status.is_terminal()
            {
                l.push_str(&format!("  (wakes at {w})"));
            }
            if let Some(e) = &st.error {
                l.push_str(&format!("  {e}"));
            }
            if let Some(w) = attempts_words(
                st.attempt,
                st.last_error.as_deref(),
                st.retry_at.as_deref(),
                true,
            ) {
                l.push_str(&format!("  ({w})"));
            }
            s.push_str(&l);
            s.push('\n');
        }
    }
    if let Some(o) = &info.output {
        s.push_str("Output:\n");
        s.push_str(&serde_json::to_string_pretty(o).unwrap_or_default());
        s.push('\n');
    }
    s
}

/// One row per run: ID, kind, name, status, created, duration. With `color`, the statuses
/// come from [`status_word`] and [`other_status`].
pub fn runs_table(
    rows: &[(String, String, String, String, String, String)],
    color: bool,
) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    let status = other_status("STATUS", color);
    t.set_header(vec!["RUN ID", "KIND", "NAME", &status, "CREATED", "TOOK"]);
    for r in rows {
        t.add_row(vec![&r.0, &r.1, &r.2, &r.3, &r.4, &r.5]);
    }
    t.to_string()
        .lines()
        .map(|l| l.trim_end().trim_start_matches(' '))
        .collect::<Vec<_>>()
        .join("\n")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// ` FLAG VALUE` for a command line, as the shell and clap read it back: a value that starts
/// with `-` would be taken for a flag after a space, so it follows `LONG=` instead.
pub fn flag_word(flag: &str, long: &str, value: &str) -> String {
    if value.starts_with('-') {
        format!(" {long}={}", shell_word(value))
    } else {
        format!(" {flag} {}", shell_word(value))
    }
}

/// `word` as the shell reads it back: bare when it is safe, else in single quotes.
pub fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's retries show where they happen: an agent run's on its own line, a workflow's
    /// with its step and that step's attempt (a workflow has no attempt of its own).
    #[test]
    fn retries_show_with_the_attempt_that_made_them() {
        let run = |steps: Option<Value>, extra: Value| -> RunInfo {
            let mut v = serde_json::json!({"runId": "r", "status": "running"});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            if let Some(steps) = steps {
                v["workflowName"] = "w".into();
                v["steps"] = steps;
            } else {
                v["agentName"] = "a".into();
            }
            serde_json::from_value(v).unwrap()
        };
        let far = "2999-01-01T00:00:00Z";
        let agent = run_detail(
            &run(
                None,
                serde_json::json!({"attempt": 2, "lastError": "boom", "retryAt": far}),
            ),
            false,
        );
        assert!(
            agent.contains(&format!(
                "Retry:     attempt 2 failed: boom; retrying at {far}"
            )),
            "{agent}"
        );
        let agent = run_detail(
            &run(None, serde_json::json!({"attempt": 3, "lastError": "boom"})),
            false,
        );
        assert!(
            agent.contains("Retry:     attempt 3, after attempt 2 failed: boom"),
            "{agent}"
        );
        let steps = serde_json::json!([
            {"index": 0, "step": "agent a", "status": "completed"},
            {"index": 1, "step": "agent b", "status": "running", "attempt": 3, "lastError": "boom", "retryAt": far},
        ]);
        let wf = run_detail(
            &run(
                Some(steps),
                serde_json::json!({"lastError": "boom", "retryAt": far}),
            ),
            false,
        );
        assert!(!wf.contains("Retry:"), "{wf}");
        // An ended run's attempt says enough on its own line.
        let mut done = run(None, serde_json::json!({"attempt": 3}));
        done.status = RunStatus::Completed;
        assert!(!run_detail(&done, false).contains("Retry:"));
        // A pause with no failure of the agent's: the engine waits for resources.
        let waits = run_detail(&run(None, serde_json::json!({"retryAt": far})), false);
        assert!(
            waits.contains("waiting for the engine's resources to start attempt 1"),
            "{waits}"
        );
        assert!(
            wf.contains(&format!("(attempt 3 failed: boom; retrying at {far})")),
            "{wf}"
        );
    }

    /// Servers write times in any RFC 3339 form; a run's duration must not vanish for it.
    #[test]
    fn durations_read_offsets_and_long_fractions() {
        let secs = |a: &str, b: &str| took(Some(a), Some(b)).map(|d| d.as_secs_f64());
        assert_eq!(
            secs("2025-01-02T03:04:05+02:00", "2025-01-02T01:04:09Z"),
            Some(4.0)
        );
        assert_eq!(
            secs("2025-01-01T23:30:00-01:00", "2025-01-02T00:30:02.5z"),
            Some(2.5)
        );
        assert_eq!(
            secs(
                "2025-01-02T01:04:05.1234567891Z",
                "2025-01-02T01:04:06.123456789Z"
            ),
            Some(1.0)
        );
        assert_eq!(
            secs("2025-01-02T01:04:05", "2025-01-02T01:04:07.5"),
            Some(2.5)
        );
        assert_eq!(secs("2025-01-02T01:04:05Z", "later"), None);
        assert_eq!(
            secs("2025-01-02T01:04:05+0200", "2025-01-02T01:04:06Z"),
            None
        );
    }

    #[test]
    fn urls_print_without_their_credentials() {
        for (url, shown) in [
            (
                "https://u:secret@api.example/x",
                "https://***@api.example/x",
            ),
            ("http://tok3n@127.0.0.1:6233", "http://***@127.0.0.1:6233"),
            // Extra slashes, which parsers skip, and a raw `/` in a password: when in doubt,
            // hidden (a base URL's path has no `@` to lose).
            ("http:///u:s3cret@127.0.0.1:1", "http://***@127.0.0.1:1"),
            ("http://u:1234/s3cret@host/x", "http://***@host/x"),
            ("http://127.0.0.1:6233/a@b", "http://***@b"),
            ("http://h/x?u=a@b", "http://h/x?u=a@b"),
            ("http://localhost:6233", "http://localhost:6233"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(printable("plain é"), "plain é");
        assert_eq!(printable("a\u{1b}[2J\nb"), "a\\u{1b}[2J\\nb");
    }

    /// Coloured or not, the table's columns line up: without its escapes, the coloured table
    /// is the plain one, whatever mix of statuses (and words that are none) its rows hold.
    #[test]
    fn a_coloured_table_lines_up_like_a_plain_one() {
        let rows = |color: bool| -> Vec<_> {
            let statuses = [
                status_word(RunStatus::Completed, color),
                status_word(RunStatus::Failed, color),
                other_status("not found", color),
                status_word(RunStatus::Queued, color),
            ];
            statuses
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let w = |t: &str| t.to_string();
                    (
                        format!("run-{i}"),
                        w("agent"),
                        w("echo"),
                        s,
                        w("2026-11-30T06:00:00.000Z"),
                        w("1.2s"),
                    )
                })
                .collect()
        };
        let coloured = runs_table(&rows(true), true);
        assert!(coloured.contains('\x1b'));
        let mut plain = String::new();
        let mut chars = coloured.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                plain.push(c);
            }
        }
        assert_eq!(plain, runs_table(&rows(false), false));
    }
}

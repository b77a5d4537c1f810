//! Running one attempt of a command agent as a child process: input JSON on stdin, one JSON
//! object on stdout, stderr lines as logs, the exit status decides. The child leads its own
//! process group so that a timeout or a cancel kills everything it started.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::catalog::{CommandSpec, Schema};
use crate::api::{JsonError, check_nesting, json_type, parse_json};

/// Stdout beyond this fails the run rather than filling memory.
pub const OUTPUT_CAP: usize = 8 * 1024 * 1024;
/// Longer stderr lines are cut. Of an attempt's lines, the first `LOG_LINES_CAP` and the last
/// `LOG_TAIL_LINES` are stored; those between are counted.
const LOG_LINE_CAP: usize = 8 * 1024;
const LOG_LINES_CAP: usize = 10_000;
const LOG_TAIL_LINES: usize = 100;
/// The most lines one attempt stores: its first and last, and the count of those between.
pub const LOG_LINES_PER_ATTEMPT: usize = LOG_LINES_CAP + 1 + LOG_TAIL_LINES;

pub enum Outcome {
    Done(Value),
    Failed(String),
    Canceled,
    /// The engine itself was short of something (descriptors, processes, memory) and could not
    /// start the agent: no fault of the agent's, so no attempt of it is used up.
    Busy(String),
}

pub struct Invocation<'a> {
    pub spec: &'a CommandSpec,
    pub agent: &'a str,
    pub run_id: &'a str,
    /// In a workflow, the step's index (as the API's `index`): with the run ID, it names the
    /// piece of work, for an agent that keys its effects on it.
    pub step: Option<usize>,
    pub attempt: u32,
    pub input: &'a Value,
    pub timeout: Option<Duration>,
    pub cancel: &'a CancellationToken,
    /// An output that fails it fails the attempt like bad stdout: swept, and retried (a model's
    /// next answer may well fit).
    pub output_schema: Option<&'a Schema>,
    /// The engine's database: with the run ID, it marks what this engine started.
    pub database: &'a Path,
}

/// Set in every agent's environment, beside the run's ID: which engine's run it is.
const ENGINE_VAR: &str = "RESTACK_ENGINE_DB";
/// Set in every agent's environment: which attempt (of which step) it is, unique to each
/// process the engine starts, so that the sweep after a failed attempt finds that attempt's
/// processes alone, not those a workflow's earlier steps left.
const INVOCATION_VAR: &str = "RESTACK_INVOCATION";

pub async fn run(inv: Invocation<'_>, mut log: impl FnMut(String) + Send) -> Outcome {
    let argv0 = &inv.spec.argv[0];
    let program = if argv0.contains('/') && Path::new(argv0).is_relative() {
        inv.spec.dir.join(argv0)
    } else {
        argv0.into()
    };
    let invocation = uuid::Uuid::now_v7().to_string();
    let mut cmd = tokio::process::Command::new(&program);
    for var in &inv.spec.hidden {
        cmd.env_remove(var);
    }
    cmd.args(&inv.spec.argv[1..])
        .current_dir(&inv.spec.dir)
        .envs(inv.spec.env.iter().map(|(k, v)| (k, v)))
        .env("RESTACK_RUN_ID", inv.run_id)
        .env("RESTACK_AGENT_NAME", inv.agent)
        .env("RESTACK_ATTEMPT", inv.attempt.to_string())
        .env(ENGINE_VAR, inv.database)
        .env(INVOCATION_VAR, &invocation)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // If the engine dies (kill -9), its agents die with it instead of running on unseen while
    // the restarted engine retries them (what they started in turn is found by
    // `kill_leftovers` at the next start). The signal follows the thread that forks, so this
    // spawn must stay on a runtime worker (they live as long as the engine), never on a
    // blocking-pool thread, which exits when idle.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    #[cfg(target_os = "linux")]
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    match inv.step {
        Some(i) => cmd.env("RESTACK_STEP_INDEX", i.to_string()),
        // Not inherited from an engine that itself runs as a step.
        None => cmd.env_remove("RESTACK_STEP_INDEX"),
    };
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            // The classic slip: a script beside the config, named as a program on PATH.
            let beside = inv.spec.dir.join(argv0);
            let why = if e.kind() == std::io::ErrorKind::NotFound
                && !argv0.contains('/')
                && beside.is_file()
            {
                use std::os::unix::fs::PermissionsExt;
                let runnable = beside
                    .metadata()
                    .is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
                format!(
                    "; a command without a `/` is looked up on PATH: write \"./{argv0}\" for the file beside the config{}",
                    if runnable {
                        ""
                    } else {
                        ", and make it executable"
                    }
                )
            } else {
                String::new()
            };
            let message = format!("cannot start {argv0}: {e}{why}");
            let short = [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM];
            if e.raw_os_error().is_some_and(|n| short.contains(&n)) {
                return Outcome::Busy(message);
            }
            return Outcome::Failed(message);
        }
    };
    let pgid = child.id().map(|p| p as i32);
    let kill_group = move || {
        if let Some(pgid) = pgid {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    };

    let input = serde_json::to_vec(inv.input).unwrap_or_else(|_| b"{}".to_vec());
    let mut stdin = child.stdin.take();
    let writer = async move {
        if let Some(stdin) = stdin.as_mut() {
            // A child that never reads its input is its own business: ignore EPIPE.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }
        drop(stdin);
    };

    // What the pipes have given so far lives out here, not in the futures that read them: a
    // process the agent started in a session of its own escapes the group kill and can hold
    // the pipes open, and what the agent itself wrote must still count when the wait for the
    // end of the streams is cut short.
    let mut out = Vec::new();
    let mut over_cap = false;
    let mut err = StderrLines::default();

    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if out.len() + n > OUTPUT_CAP {
                        // Stop it now: the run fails for its output, not for the broken pipe
                        // the agent would die of next.
                        kill_group();
                        over_cap = true;
                        return;
                    }
                    out.extend_from_slice(&chunk[..n]);
                }
            }
        }
    };

    let stderr = child.stderr.take().expect("piped stderr");
    let logger = async {
        let mut lines = BufReader::new(stderr);
        let mut raw = Vec::new();
        while let Ok(Some(cut)) = read_line_capped(&mut lines, &mut raw).await {
            err.push(&raw, cut, &mut log);
        }
    };

    let timeout = async {
        match inv.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };

    let mut swept = false;
    let status = {
        // Run the child to its end while its pipes are drained, so a chatty child never blocks.
        let io = async { tokio::join!(writer, reader, logger) };
        tokio::pin!(io);
        let waited = async {
            tokio::select! {
                status = child.wait() => Ok(status),
                _ = timeout => Err(None),
                _ = inv.cancel.cancelled() => Err(Some(())),
            }
        };
        tokio::pin!(waited);

        let mut drained = false;
        let status = loop {
            tokio::select! {
                r = &mut waited => break r,
                _ = &mut io, if !drained => drained = true,
            }
        };
        // Whatever happened, nothing the agent started in its group outlives this attempt.
        kill_group();
        // Nor, when it failed (a retry may follow), what left the group; a failure its exit
        // does not tell (bad stdout) is swept below. Before the drain, so a process holding
        // the pipes does not hold it.
        if !matches!(&status, Ok(Ok(s)) if s.success()) {
            end_escaped(&invocation, inv.database).await;
            swept = true;
        }
        if !drained {
            // Once the group is dead, what it wrote is already in the pipes and reads at once;
            // only a process that left the group can keep them open, and its end of stream is
            // not worth waiting for past a second.
            let _ = tokio::time::timeout(Duration::from_secs(1), io).await;
        }
        status
    };
    let last_line = err.finish(&mut log);

    let outcome = match status {
        Err(None) => Outcome::Failed(format!(
            "timed out after {}",
            humantime::format_duration(inv.timeout.unwrap_or_default())
        )),
        Err(Some(())) => Outcome::Canceled,
        Ok(Err(e)) => Outcome::Failed(format!("cannot wait for {argv0}: {e}")),
        // Past the cap the reader killed the agent: that, not its exit, is why it failed.
        Ok(Ok(_)) if over_cap => Outcome::Failed(format!("output exceeds {OUTPUT_CAP} bytes")),
        Ok(Ok(status)) => {
            if !status.success() {
                let how = match status.code() {
                    Some(code) => format!("exit status {code}"),
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        format!("killed by signal {}", status.signal().unwrap_or(0))
                    }
                };
                Outcome::Failed(if last_line.is_empty() {
                    how
                } else {
                    format!("{how}: {last_line}")
                })
            } else {
                match parse_output(&out) {
                    Outcome::Done(v) => match inv.output_schema.map(|s| s.check(&v)) {
                        Some(Err(e)) => {
                            Outcome::Failed(format!("output does not match output_schema: {e}"))
                        }
                        _ => Outcome::Done(v),
                    },
                    failed => failed,
                }
            }
        }
    };
    if !swept && !matches!(outcome, Outcome::Done(_)) {
        end_escaped(&invocation, inv.database).await;
    }
    outcome
}

/// Kills the processes that left a failed attempt's process group (a daemon in a session of
/// its own): they still carry the attempt's `invocation` and are found by it, so they do not go
/// on beside a retry. Awaited, so that the retry's processes are not yet running. Not after a
/// success: the scan reads every process's environment, which would cost a fast agent a
/// quarter of its throughput.
async fn end_escaped(invocation: &str, database: &Path) {
    let (invocation, db) = (invocation.to_string(), database.to_path_buf());
    let _ =
        tokio::task::spawn_blocking(move || kill_marked(&db, INVOCATION_VAR, |v| v == invocation))
            .await;
}

/// Kills what is left of the agent attempts of `run_ids` after this database's engine died
/// without stopping them (kill -9, a crash): the agent itself died with the engine, but a
/// process it started in the background lives on and would do the work again beside the
/// retry. Returns how many.
pub fn kill_leftovers(run_ids: &std::collections::HashSet<&str>, database: &Path) -> usize {
    if run_ids.is_empty() {
        return 0;
    }
    kill_marked(database, "RESTACK_RUN_ID", |v| run_ids.contains(v))
}

/// Kills this user's processes that an agent of this database's engine started (they all
/// inherited [`ENGINE_VAR`]; matching it means an engine serving a copy of the data directory
/// never touches the original's agents) and whose `var` holds a value `wanted` accepts.
/// Returns how many.
#[cfg(target_os = "linux")]
fn kill_marked(database: &Path, var: &str, wanted: impl Fn(&str) -> bool) -> usize {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let (me, uid) = (std::process::id(), unsafe { libc::geteuid() });
    let marker = [ENGINE_VAR.as_bytes(), b"=", database.as_os_str().as_bytes()].concat();
    let prefix = [var.as_bytes(), b"="].concat();
    let mut killed = 0;
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || !entry.metadata().is_ok_and(|m| m.uid() == uid) {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let (mut ours, mut matched) = (false, false);
        for kv in environ.split(|&b| b == 0) {
            ours |= kv == marker.as_slice();
            matched |= kv
                .strip_prefix(prefix.as_slice())
                .is_some_and(|v| std::str::from_utf8(v).is_ok_and(&wanted));
        }
        if ours && matched {
            // SAFETY: kill(2) on a process ID; no memory involved.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

#[cfg(not(target_os = "linux"))]
fn kill_marked(_: &Path, _: &str, _: impl Fn(&str) -> bool) -> usize {
    0
}

/// An attempt's stderr as it is read: the first [`LOG_LINES_CAP`] lines go to the log at once,
/// the last [`LOG_TAIL_LINES`] wait in `tail` (past the cap, the end is where an agent says why
/// it failed), and the last non-empty line is kept for the failure message.
#[derive(Default)]
struct StderrLines {
    count: usize,
    tail: std::collections::VecDeque<String>,
    last_line: String,
}

impl StderrLines {
    fn push(&mut self, raw: &[u8], cut: bool, log: &mut impl FnMut(String)) {
        let mut line = String::from_utf8_lossy(raw).trim_end().to_string();
        if cut || line.len() > LOG_LINE_CAP {
            let mut end = LOG_LINE_CAP.min(line.len());
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        if !line.is_empty() {
            self.last_line.clone_from(&line);
        }
        self.count += 1;
        if self.count <= LOG_LINES_CAP {
            log(line);
        } else {
            if self.tail.len() == LOG_TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        }
    }

    /// Logs the count of the lines left out and the tail; answers the last line.
    fn finish(self, log: &mut impl FnMut(String)) -> String {
        let skipped = self.count.saturating_sub(LOG_LINES_CAP + self.tail.len());
        if skipped > 0 {
            log(format!("({skipped} lines not stored)"));
        }
        self.tail.into_iter().for_each(log);
        self.last_line
    }
}

/// One stderr line into `raw`, keeping at most [`LOG_LINE_CAP`] bytes of it however long it
/// runs (an agent may write megabytes with no line break). `None` at the end of the stream;
/// `Some(true)` when the line was cut.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    r: &mut R,
    raw: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    raw.clear();
    let mut cut = false;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok((!raw.is_empty() || cut).then_some(cut));
        }
        let (len, ends) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let keep = len.min((LOG_LINE_CAP + 1).saturating_sub(raw.len()));
        raw.extend_from_slice(&buf[..keep]);
        cut |= keep < len;
        r.consume(len);
        if ends {
            return Ok(Some(cut));
        }
    }
}

/// The line of `text` where parsing fails, quoted and cut short: so that whoever wrote the
/// agent sees what it printed (a stray `print`, a second object) without running it by hand.
fn quote_line(text: &str) -> String {
    let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) else {
        return String::new();
    };
    match text.lines().nth(e.line().saturating_sub(1)) {
        Some(line) if !line.trim().is_empty() => {
            format!("; that line: {:?}", crate::api::clip(line.trim()))
        }
        _ => String::new(),
    }
}

fn parse_output(stdout: &[u8]) -> Outcome {
    // Replacing bad bytes would complete the run with an output the agent never wrote.
    let text = match std::str::from_utf8(stdout) {
        Ok(t) => t.trim(),
        Err(e) => {
            return Outcome::Failed(format!(
                "the agent's stdout is not UTF-8 (at byte {}), so it is not JSON",
                e.valid_up_to()
            ));
        }
    };
    if text.is_empty() {
        return Outcome::Failed(
            "the agent wrote nothing to stdout; it must write one JSON object".into(),
        );
    }
    match parse_json(text.as_bytes()) {
        Ok(Value::Object(output)) => match check_nesting(&output) {
            Ok(()) => Outcome::Done(Value::Object(output)),
            Err(e) => Outcome::Failed(format!("the agent's stdout {e}")),
        },
        Ok(other) => Outcome::Failed(format!(
            "the agent's stdout must be one JSON object, not {}",
            json_type(&other)
        )),
        Err(JsonError::Syntax(e)) => Outcome::Failed(format!(
            "the agent's stdout is not one JSON object: {e}{}",
            quote_line(text)
        )),
        Err(e) => Outcome::Failed(format!("the agent's stdout {e}")),
    }
}

//! Running one attempt of a command agent as a child process: input JSON on stdin, one JSON
//! object on stdout, stderr lines as logs, the exit status decides. The child leads its own
//! process group so that a timeout or a cancel kills everything it started.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::catalog::CommandSpec;
use crate::api::{JsonError, json_type, parse_json};

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
}

pub struct Invocation<'a> {
    pub spec: &'a CommandSpec,
    pub agent: &'a str,
    pub run_id: &'a str,
    pub attempt: u32,
    pub input: &'a Value,
    pub timeout: Option<Duration>,
    pub cancel: &'a CancellationToken,
    /// The engine's database: with the run ID, it marks what this engine started.
    pub database: &'a Path,
}

/// Set in every agent's environment, beside the run's ID: which engine's run it is.
const ENGINE_VAR: &str = "RESTACK_ENGINE_DB";

pub async fn run(inv: Invocation<'_>, mut log: impl FnMut(String) + Send) -> Outcome {
    let argv0 = &inv.spec.argv[0];
    let program = if argv0.contains('/') && Path::new(argv0).is_relative() {
        inv.spec.dir.join(argv0)
    } else {
        argv0.into()
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&inv.spec.argv[1..])
        .current_dir(&inv.spec.dir)
        .envs(inv.spec.env.iter().map(|(k, v)| (k, v)))
        .env("RESTACK_RUN_ID", inv.run_id)
        .env("RESTACK_AGENT_NAME", inv.agent)
        .env("RESTACK_ATTEMPT", inv.attempt.to_string())
        .env(ENGINE_VAR, inv.database)
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
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Failed(format!("cannot start {argv0}: {e}")),
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

    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = async move {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => return Ok(buf),
                Ok(n) => {
                    if buf.len() + n > OUTPUT_CAP {
                        // Stop it now: the run fails for its output, not for the broken pipe
                        // the agent would die of next.
                        kill_group();
                        return Err(());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
        }
    };

    let stderr = child.stderr.take().expect("piped stderr");
    let logger = async move {
        let mut last_line = String::new();
        let mut lines = BufReader::new(stderr);
        let mut raw = Vec::new();
        let mut count = 0usize;
        let mut tail = std::collections::VecDeque::new();
        loop {
            match read_line_capped(&mut lines, &mut raw).await {
                Ok(None) | Err(_) => break,
                Ok(Some(cut)) => {
                    let mut line = String::from_utf8_lossy(&raw).trim_end().to_string();
                    if cut || line.len() > LOG_LINE_CAP {
                        let mut end = LOG_LINE_CAP.min(line.len());
                        while !line.is_char_boundary(end) {
                            end -= 1;
                        }
                        line.truncate(end);
                        line.push('…');
                    }
                    if !line.is_empty() {
                        last_line.clone_from(&line);
                    }
                    count += 1;
                    if count <= LOG_LINES_CAP {
                        log(line);
                    } else {
                        if tail.len() == LOG_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            }
        }
        // Past the cap, the last lines are kept: that is where an agent says why it failed.
        let skipped = count.saturating_sub(LOG_LINES_CAP + tail.len());
        if skipped > 0 {
            log(format!("({skipped} lines not stored)"));
        }
        tail.into_iter().for_each(&mut log);
        last_line
    };

    let timeout = async {
        match inv.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };

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

    let mut io_result = None;
    let status = loop {
        tokio::select! {
            r = &mut waited => break r,
            r = &mut io, if io_result.is_none() => {
                io_result = Some(r);
            }
        }
    };
    // Whatever happened, nothing the agent started outlives this attempt.
    kill_group();
    let ((), stdout, last_line) = match io_result {
        Some(r) => r,
        None => match tokio::time::timeout(Duration::from_secs(5), io).await {
            Ok(r) => r,
            Err(_) => ((), Ok(Vec::new()), String::new()),
        },
    };

    match status {
        Err(None) => Outcome::Failed(format!(
            "timed out after {}",
            humantime::format_duration(inv.timeout.unwrap_or_default())
        )),
        Err(Some(())) => Outcome::Canceled,
        Ok(Err(e)) => Outcome::Failed(format!("cannot wait for {argv0}: {e}")),
        // Past the cap the reader killed the agent: that, not its exit, is why it failed.
        Ok(Ok(_)) if stdout.is_err() => {
            Outcome::Failed(format!("output exceeds {OUTPUT_CAP} bytes"))
        }
        Ok(Ok(status)) => {
            if !status.success() {
                let how = match status.code() {
                    Some(code) => format!("exit status {code}"),
                    None => {
                        use std::os::unix::process::ExitStatusExt;
                        format!("killed by signal {}", status.signal().unwrap_or(0))
                    }
                };
                return Outcome::Failed(if last_line.is_empty() {
                    how
                } else {
                    format!("{how}: {last_line}")
                });
            }
            parse_output(&stdout.unwrap_or_default())
        }
    }
}

/// Kills what is left of the agent attempts of `run_ids` after this database's engine died
/// without stopping them (kill -9, a crash): the agent itself died with the engine, but a
/// process it started in the background lives on and would do the work again beside the
/// retry. Every such process inherited the run's ID and the database's path, which is how it
/// is found; both must match, so an engine serving a copy of the data directory never touches
/// the original's agents. Only this user's processes are considered. Returns how many.
#[cfg(target_os = "linux")]
pub fn kill_leftovers(run_ids: &std::collections::HashSet<&str>, database: &Path) -> usize {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    if run_ids.is_empty() {
        return 0;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let (me, uid) = (std::process::id(), unsafe { libc::geteuid() });
    let marker = [ENGINE_VAR.as_bytes(), b"=", database.as_os_str().as_bytes()].concat();
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
        let (mut ours, mut of_a_run) = (false, false);
        for kv in environ.split(|&b| b == 0) {
            ours |= kv == marker.as_slice();
            of_a_run |= kv
                .strip_prefix(b"RESTACK_RUN_ID=")
                .is_some_and(|v| std::str::from_utf8(v).is_ok_and(|v| run_ids.contains(v)));
        }
        if ours && of_a_run {
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
pub fn kill_leftovers(_: &std::collections::HashSet<&str>, _: &Path) -> usize {
    0
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

fn parse_output(stdout: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return Outcome::Failed(
            "the agent wrote nothing to stdout; it must write one JSON object".into(),
        );
    }
    match parse_json(text.as_bytes()) {
        Ok(v @ Value::Object(_)) => Outcome::Done(v),
        Ok(other) => Outcome::Failed(format!(
            "the agent's stdout must be one JSON object, not {}",
            json_type(&other)
        )),
        Err(JsonError::Syntax(e)) => {
            Outcome::Failed(format!("the agent's stdout is not one JSON object: {e}"))
        }
        Err(e) => Outcome::Failed(format!("the agent's stdout {e}")),
    }
}

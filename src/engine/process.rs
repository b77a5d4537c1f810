//! Running one attempt of a command agent as a child process: input JSON on stdin, one JSON
//! object on stdout, stderr lines as logs, the exit status decides. The child leads its own
//! process group so that a timeout or a cancel kills everything it started.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::catalog::CommandSpec;
use crate::api::json_type;

/// Stdout beyond this fails the run rather than filling memory.
pub const OUTPUT_CAP: usize = 8 * 1024 * 1024;
/// Longer stderr lines are cut; more lines than this are counted, not stored.
const LOG_LINE_CAP: usize = 8 * 1024;
const LOG_LINES_CAP: usize = 10_000;

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
}

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
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // If the engine dies (kill -9), its agents die with it instead of running on unseen while
    // the restarted engine retries them. The signal follows the thread that forks, so this
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
        loop {
            raw.clear();
            match lines.read_until(b'\n', &mut raw).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let mut line = String::from_utf8_lossy(&raw).trim_end().to_string();
                    if line.len() > LOG_LINE_CAP {
                        let mut cut = LOG_LINE_CAP;
                        while !line.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        line.truncate(cut);
                        line.push('…');
                    }
                    if !line.is_empty() {
                        last_line.clone_from(&line);
                    }
                    count += 1;
                    if count <= LOG_LINES_CAP {
                        log(line);
                    } else if count == LOG_LINES_CAP + 1 {
                        log(format!(
                            "(more than {LOG_LINES_CAP} lines; the rest are not stored)"
                        ));
                    }
                }
            }
        }
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
            let Ok(stdout) = stdout else {
                return Outcome::Failed(format!("output exceeds {OUTPUT_CAP} bytes"));
            };
            parse_output(&stdout)
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
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Outcome::Done(v),
        Ok(other) => Outcome::Failed(format!(
            "the agent's stdout must be one JSON object, not {}",
            json_type(&other)
        )),
        Err(e) => Outcome::Failed(format!("the agent's stdout is not one JSON object: {e}")),
    }
}

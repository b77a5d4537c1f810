//! The `embedded` profile: the engine inside the CLI process, so the README's main job runs
//! with no server at all, and its runs are durable across commands.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::fixtures::{assert_error, code, stderr, stdout, stdout_json};
use crate::support::Sandbox;

/// Copies the repository's `examples/` into the sandbox, so the example config's relative
/// `data_dir` (`../.restack-data`) lands in the sandbox too.
fn copy_examples(sb: &Sandbox) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    copy(&examples, &sb.path("examples"));
}

#[test]
fn the_readme_main_job_runs_on_the_embedded_engine() {
    let sb = Sandbox::new();
    copy_examples(&sb);
    let out = sb
        .cmd()
        .args(["-c", "examples/restack.toml", "-p", "embedded"])
        .args([
            "workflow",
            "run",
            "digest",
            "--input",
            "examples/article.json",
        ])
        .arg("--follow")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let output = stdout_json(&out);
    // summarize, then a durable sleep, then wordcount over the summary.
    let summary = output["summary"].as_str().expect("a summary");
    assert!(!summary.is_empty());
    assert_eq!(output["text"].as_str(), Some(summary));
    assert!(output["words"].as_u64().is_some_and(|w| w > 0), "{output}");
    assert!(stderr(&out).contains("completed"), "{}", stderr(&out));
    // The run is on disk where the example config says, inside the sandbox.
    assert!(sb.path(".restack-data/restack.db").exists());

    // And the history knows it: `status` shows it afterwards, still on the embedded engine.
    let out = sb.run(&[
        "-c",
        "examples/restack.toml",
        "-p",
        "embedded",
        "-o",
        "json",
        "status",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let list = stdout_json(&out);
    assert_eq!(list[0]["workflowName"], "digest");
    assert_eq!(list[0]["status"], "completed");
    assert_eq!(list[0]["steps"].as_array().map(Vec::len), Some(3));
}

/// A run scheduled without --follow waits for the next engine to open the directory (the
/// embedded one stops with the command, and says so); an `echo`, which has nothing to run,
/// is stored completed at once.
#[test]
fn an_embedded_run_scheduled_without_follow_finishes_when_followed_later() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "-p", "embedded", "-o", "json", "agent", "run", "echo", "--set", "later=1",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let answer = stdout_json(&out);
    assert_eq!(answer["status"], "completed", "{answer}");

    let out = sb.run(&[
        "-p",
        "embedded",
        "agent",
        "run",
        "sleep",
        "--set",
        "seconds=0",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(
        stderr(&out).contains("the run starts the next time"),
        "{out:?}"
    );
    let id = stdout(&out)
        .split_whitespace()
        .nth(4)
        .expect("the run ID")
        .to_string();
    let out = sb.run(&["-p", "embedded", "-o", "json", "status", &id]);
    assert_eq!(code(&out), 0, "{id}: {out:?}");
    assert_eq!(stdout_json(&out)["status"], "queued", "{out:?}");
    let out = sb.run(&["-p", "embedded", "status", &id, "--follow"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"sleptSeconds": 0}));
}

#[test]
fn the_embedded_profile_refuses_a_data_dir_a_server_holds() {
    let sb = Sandbox::new();
    copy_examples(&sb);
    let config = sb.path("examples/restack.toml");
    let server = sb.serve(Some(&config), &sb.path(".restack-data"), &[]);
    let out = sb.run(&[
        "-c",
        "examples/restack.toml",
        "-p",
        "embedded",
        "agent",
        "run",
        "echo",
    ]);
    let err = assert_error(&out, 2);
    assert!(err.contains("in use"), "{err}");
    // The hint names where that server listens (here a port of its own, not 6233).
    assert!(
        err.contains(&format!(
            "hint: `restack serve` holds this data directory: talk to it with --url {}",
            server.url
        )),
        "{err}"
    );
}

/// Commands run side by side on one embedded data directory (`xargs -P` over a dataset) take
/// turns instead of failing: each waits for the engine of the one before.
#[test]
fn parallel_embedded_commands_take_turns() {
    let sb = Sandbox::new();
    let children: Vec<_> = (0..4)
        .map(|i| {
            sb.std_cmd()
                .args(["-p", "embedded", "agent", "run", "sleep", "--follow"])
                .args(["--set", "seconds=1", "--set", &format!("i={i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut waited = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(stdout_json(&out), json!({"sleptSeconds": 1}));
        waited += usize::from(stderr(&out).contains("waiting for it to end"));
    }
    assert!(
        waited > 0,
        "no command had to wait: the test proves nothing"
    );
}

/// `--timeout` bounds the whole command, a wait for another command's engine included: exit 3,
/// nothing sent.
#[test]
fn timeout_bounds_the_wait_for_another_embedded_command() {
    let sb = Sandbox::new();
    let mut first = sb
        .std_cmd()
        .args(["-p", "embedded", "-q", "agent", "run", "sleep", "--follow"])
        .args(["--set", "seconds=30"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = sb.user_data().join("engine.lock");
    crate::support::wait_until(
        "the first command to hold the engine",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&lock)
                .is_ok_and(|t| t.ends_with("embedded"))
                .then_some(())
        },
    );
    let out = sb.run(&[
        "-p",
        "embedded",
        "agent",
        "run",
        "echo",
        "--follow",
        "--timeout",
        "1s",
    ]);
    let err = assert_error(&out, 3);
    assert!(
        err.contains("--timeout reached") && err.contains("nothing was sent"),
        "{err}"
    );
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn an_embedded_data_dir_that_cannot_be_made_says_so_without_blaming_another_engine() {
    let sb = Sandbox::new();
    sb.write(
        "blocked",
        "a file, where the data directory's parent should be",
    );
    sb.write("dir.toml", "[serve]\ndata_dir = \"blocked/data\"\n");
    let out = sb.run(&["-c", "dir.toml", "-p", "embedded", "agent", "run", "echo"]);
    let err = assert_error(&out, 2);
    assert!(err.contains("cannot create data directory"), "{err}");
    assert!(!err.contains("another engine"), "{err}");
}

#[test]
fn embedded_failures_have_the_same_exit_codes() {
    let sb = Sandbox::new();
    sb.write(
        "fail.toml",
        "[agents.fail]\ncommand = [\"python3\", \"-c\", \"import sys; sys.exit(3)\"]\n",
    );
    let run = |args: &[&str]| {
        sb.cmd()
            .args(["-c", "fail.toml", "-p", "embedded"])
            .args(args)
            .output()
            .unwrap()
    };
    assert_error(&run(&["agent", "run", "fail", "-f"]), 1);
    assert_error(&run(&["agent", "run", "missing"]), 4);
    assert_error(
        &run(&[
            "agent",
            "run",
            "sleep",
            "--set",
            "seconds=60",
            "-f",
            "--timeout",
            "200ms",
        ]),
        6,
    );
}

/// `-v` shows the in-process engine's logs; on a stderr that is not a terminal they are plain
/// text, as `serve`'s are, not a file full of escape codes.
#[test]
fn verbose_engine_logs_are_plain_when_stderr_is_not_a_terminal() {
    let sb = Sandbox::new();
    // Without the sandbox's NO_COLOR: the pipe alone must keep the colour out.
    let out = sb
        .cmd()
        .env_remove("NO_COLOR")
        .args(["-p", "embedded", "-v", "health"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("restack::engine"), "no engine log:\n{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}

/// A run another config's embedded engine holds is not found by the default one; the history
/// knows where it is, and the error says how to reach it.
#[test]
fn a_run_of_another_configs_embedded_engine_is_pointed_to() {
    let sb = Sandbox::new();
    let cfg = sb.write("proj/restack.toml", "[serve]\ndata_dir = \"data\"\n");
    let out = sb.run(&[
        "-c",
        cfg.to_str().unwrap(),
        "-p",
        "embedded",
        "-q",
        "agent",
        "run",
        "echo",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = sb.run(&["-p", "embedded", "status", &id]);
    let err = assert_error(&out, 4);
    assert!(
        err.contains("hint: run") && err.contains("proj") && err.contains("-c"),
        "{err}"
    );
    // The table says it too, for its rows that other engine holds.
    let out = sb.run(&["-p", "embedded", "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("not found"), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("1 of these runs was scheduled with") && err.contains("proj"),
        "{err}"
    );
}

/// Ctrl-C of a command running the embedded engine stops it the way `serve` stops: the agent
/// is stopped and its attempt goes back to the queue unspent, so the run (no retries) resumes
/// and completes the next time an engine opens the directory, instead of failing there as
/// "interrupted by engine restart".
#[test]
fn ctrl_c_of_an_embedded_follow_leaves_the_run_to_resume() {
    interrupted_embedded_follow_leaves_the_run_to_resume(libc::SIGINT);
}

/// A closed terminal (SIGHUP) is no different.
#[test]
fn a_closed_terminal_leaves_an_embedded_run_to_resume() {
    interrupted_embedded_follow_leaves_the_run_to_resume(libc::SIGHUP);
}

/// Under `nohup` (SIGHUP ignored from the start) a hangup changes nothing: the command goes on
/// to the run's end.
#[test]
fn under_nohup_a_hangup_does_not_stop_an_embedded_follow() {
    use crate::engine::fixtures::{agent, pids, sandbox};
    use std::os::unix::process::CommandExt;
    let (sb, cfg) = sandbox(&format!(
        "[serve]\ndata_dir = \"engine\"\n\n{}",
        agent("probe", "")
    ));
    let mut cmd = sb.std_cmd();
    cmd.args([
        "-c",
        cfg.to_str().unwrap(),
        "-p",
        "embedded",
        "agent",
        "run",
        "probe",
    ])
    .args([
        "--follow",
        "--input",
        r#"{"pidfile": "pids", "gate": "go", "k": 1}"#,
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    // SAFETY: signal(2) in the child before exec, as nohup does.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let cli = cmd.spawn().unwrap();
    pids(&sb, "pids", 1);
    // SAFETY: kill(2) on a child this test started.
    unsafe { libc::kill(cli.id() as i32, libc::SIGHUP) };
    sb.write("go", "");
    let out = cli.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out)["k"], 1, "{out:?}");
}

fn interrupted_embedded_follow_leaves_the_run_to_resume(signal: i32) {
    use crate::engine::fixtures::{agent, pids, sandbox};
    let (sb, cfg) = sandbox(&format!(
        "[serve]\ndata_dir = \"engine\"\n\n{}",
        agent("probe", "")
    ));
    let cfg = cfg.to_str().unwrap();
    let mut cmd = sb.std_cmd();
    cmd.args([
        "-c", cfg, "-p", "embedded", "agent", "run", "probe", "--follow",
    ])
    .args(["--input", r#"{"pidfile": "pids", "gate": "go"}"#])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    // As from a terminal, whatever this test runs under: a suite started with `nohup` hands
    // its children SIGHUP ignored, which the CLI (rightly) keeps.
    // SAFETY: signal(2) in the child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut cli = cmd.spawn().unwrap();
    let agent_pid = pids(&sb, "pids", 1)[0];
    // SAFETY: kill(2) on a child this test started.
    unsafe { libc::kill(cli.id() as i32, signal) };
    crate::support::wait_until("the CLI to stop", Duration::from_secs(30), || {
        cli.try_wait().unwrap().map(|_| ())
    });
    let out = cli.wait_with_output().unwrap();
    let err = assert_error(&out, 130);
    assert!(err.contains("interrupted"), "{err}");
    crate::engine::fixtures::assert_all_gone(&[agent_pid]);

    sb.write("go", "");
    let out = sb.run(&["-c", cfg, "-p", "embedded", "-o", "json", "status"]);
    let row = &stdout_json(&out)[0];
    let id = row["runId"].as_str().unwrap().to_string();
    // Back in the queue as if never begun: no attempt, and no start time.
    assert_eq!(row["status"], "queued", "{row}");
    assert!(
        row.get("startedAt").is_none_or(serde_json::Value::is_null),
        "{row}"
    );
    let out = sb.run(&[
        "-c", cfg, "-p", "embedded", "-o", "json", "status", &id, "-f",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let run = stdout_json(&out);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["attempt"], 1,
        "the interrupted attempt was spent: {run}"
    );
}

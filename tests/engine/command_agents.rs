//! Command agents' contract: JSON in on stdin, one JSON object out on stdout, stderr as logs,
//! the exit status decides, and the process sees its run's identity and configured `env`.

use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{agent, sandbox};
use crate::support::wait_until;

const T: Duration = Duration::from_secs(30);

#[test]
fn agent_gets_its_input_env_and_the_config_folder_as_working_directory() {
    let (sb, cfg) = sandbox(&agent("probe", "env = { GREETING = \"hej\" }"));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("agents", "probe", json!({"text": "x", "n": [1, 2]}));
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let out = &run["output"];
    assert_eq!(out["text"], "x");
    assert_eq!(out["n"], json!([1, 2]));
    assert_eq!(out["env"]["RESTACK_RUN_ID"], id.as_str());
    assert_eq!(out["env"]["RESTACK_AGENT_NAME"], "probe");
    assert_eq!(out["env"]["RESTACK_ATTEMPT"], "1");
    assert_eq!(out["env"]["RESTACK_STEP_INDEX"], Value::Null, "not a step");
    assert_eq!(out["env"]["GREETING"], "hej");
    let cwd = std::fs::canonicalize(out["cwd"].as_str().unwrap()).unwrap();
    assert_eq!(cwd, std::fs::canonicalize(sb.root.path()).unwrap());
}

/// A step's agent sees the workflow's run ID, and its own index beside it: the same agent twice
/// in one workflow can still tell its pieces of work apart.
#[test]
fn a_steps_agent_sees_the_workflows_run_id_and_its_index() {
    let (sb, cfg) = sandbox(&format!(
        "{}[workflows.twice]\nsteps = [{{ agent = \"probe\" }}, {{ agent = \"probe\" }}]\n",
        agent("probe", "")
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("workflows", "twice", json!({}));
    let run = server.wait_done("workflows", "twice", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let env = &run["output"]["env"];
    assert_eq!(env["RESTACK_RUN_ID"], id.as_str(), "{run}");
    assert_eq!(env["RESTACK_STEP_INDEX"], "1", "{run}");
    assert_eq!(run["steps"][1]["index"], 1, "{run}");
}

#[test]
fn stdout_that_is_not_one_json_object_fails_the_run() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(101), "]".repeat(101));
    for (stdout, says) in [
        // The line it stumbled on is quoted, for whoever wrote the agent.
        (
            "hello, not json",
            "not one JSON object: expected value at line 1 column 1; that line: \"hello, not json\"",
        ),
        (
            "{\"a\": 1}\n{\"b\": 2}\n",
            "not one JSON object: trailing characters at line 2 column 1; that line: \"{\\\"b\\\": 2}\"",
        ),
        ("[1, 2]", "must be one JSON object, not an array"),
        ("", "wrote nothing to stdout"),
        ("{\"a\": [1, 1e400]}", "number out of range at `a.1`"),
        // An output its own status could not carry (a parser stops at 128 levels).
        (&deep, "nests deeper than 100 levels"),
    ] {
        let id = server.schedule("agents", "probe", json!({"stdout": stdout}));
        let run = server.wait_done("agents", "probe", &id, T);
        assert_eq!(run["status"], "failed", "stdout {stdout:?}: {run}");
        let error = run["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "stdout {stdout:?}: {error}");
        assert!(run.get("output").is_none_or(Value::is_null), "{run}");
    }
}

/// Bytes that are not UTF-8 are not JSON: the run fails, instead of completing with an
/// output the agent never wrote (the bad bytes replaced).
#[test]
fn stdout_that_is_not_utf8_fails_the_run() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let bytes: Vec<u8> = b"{\"a\": \"\xff\xfe\"}".to_vec();
    let id = server.schedule("agents", "probe", json!({ "stdout_bytes": bytes }));
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("not UTF-8"), "{error}");
}

/// The engine's bearer token is the engine's: an agent inherits neither it nor the variable
/// clients read a token from, unless its `pass_env` lists them or its own `env` sets one.
#[test]
fn agents_do_not_inherit_the_engines_token() {
    let toml = format!(
        "[serve]\ntoken_env = \"ENGINE_TOKEN\"\n\n{}{}{}",
        agent("probe", ""),
        agent("given", "env = { ENGINE_TOKEN = \"for-the-agent\" }"),
        agent("caller", "pass_env = [\"ENGINE_TOKEN\"]"),
    );
    let (sb, cfg) = sandbox(&toml);
    let server = sb.serve(
        Some(&cfg),
        &sb.path("engine"),
        &[
            ("ENGINE_TOKEN", "engine-secret"),
            ("RESTACK_API_BEARER_TOKEN", "cloud-secret"),
        ],
    );
    for (name, engine_token) in [
        ("probe", Value::Null),
        ("given", json!("for-the-agent")),
        ("caller", json!("engine-secret")),
    ] {
        let out = sb
            .cmd()
            .env("RESTACK_API_BEARER_TOKEN", "engine-secret")
            .args([
                "--url",
                &server.url,
                "-o",
                "json",
                "agent",
                "run",
                name,
                "-f",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        let run: Value = serde_json::from_slice(&out.stdout).unwrap();
        let env = &run["output"]["env"];
        assert_eq!(env["ENGINE_TOKEN"], engine_token, "{name}: {run}");
        assert_eq!(
            env["RESTACK_API_BEARER_TOKEN"],
            Value::Null,
            "{name}: {run}"
        );
        assert_eq!(env["RESTACK_RUN_ID"], run["runId"], "{name}: {run}");
    }
}

#[test]
fn an_agents_numbers_are_stored_as_it_wrote_them() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let stdout = r#"{"wei": 1000000000000000000000, "pi": 3.14159265358979323846, "tiny": 1e-400}"#;
    let id = server.schedule("agents", "probe", json!({ "stdout": stdout }));
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let out = &run["output"];
    assert_eq!(out["wei"].to_string(), "1000000000000000000000", "{run}");
    assert_eq!(out["pi"].to_string(), "3.14159265358979323846", "{run}");
    assert_eq!(out["tiny"].to_string(), "1e-400", "{run}");
}

#[test]
fn nonzero_exit_fails_with_the_status_and_last_stderr_line() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"stderr": ["loading model", "out of tokens"], "exit": 4}),
    );
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "exit status 4: out of tokens");
    assert!(run["completedAt"].is_string());
}

/// An agent may start something that outlives it in a session of its own, out of reach of the
/// group kill and holding the agent's pipes open. The agent's exit still decides: what it
/// wrote is its output and its logs, not a run failed for "nothing on stdout".
#[test]
fn a_process_left_holding_the_pipes_does_not_cost_the_agents_output() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"daemon": 30, "stderr": ["started a daemon"]}),
    );
    let run = server.wait_done("agents", "probe", &id, T);
    if let Some(pid) = run["output"]["daemon"].as_i64() {
        // SAFETY: kill(2) on the pid this test's agent started; no memory involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
    assert_eq!(run["status"], "completed", "{run}");
    assert!(run["output"]["daemon"].is_i64(), "{run}");
    crate::support::wait_until("the agent's log line", T, || {
        let (_, logs) = server.get(&format!("/api/agents/probe/{id}/logs"));
        (logs["lines"][0]["line"] == "started a daemon").then_some(())
    });
}

#[test]
fn stderr_lines_are_the_runs_logs() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule(
        "agents",
        "probe",
        json!({"stderr": ["step one", "step two: ünïcode"]}),
    );
    assert_eq!(
        server.wait_done("agents", "probe", &id, T)["status"],
        "completed"
    );
    // Log lines are written without waiting for a commit: poll until both are there.
    let lines = crate::support::wait_until("both log lines", T, || {
        let (code, body) = server.get(&format!("/api/agents/probe/{id}/logs"));
        assert_eq!(code, 200, "{body}");
        let lines = body["lines"].as_array().cloned().unwrap_or_default();
        (lines.len() >= 2).then_some(lines)
    });
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["line"].as_str()).collect();
    assert_eq!(texts, ["step one", "step two: ünïcode"]);
    assert!(
        lines
            .iter()
            .all(|l| l["attempt"] == 1 && l["at"].is_string())
    );
}

/// An agent's output streams are bounded: stderr with no line break is kept as one line cut at
/// 8 KiB (not held whole in memory), and stdout past the cap fails the run for that reason,
/// not for the broken pipe the agent would die of.
#[test]
fn endless_lines_are_cut_and_too_much_stdout_fails_for_it() {
    let (sb, _) = sandbox("");
    let cfg = sb.write(
        "big.toml",
        r#"
[agents.chatty]
command = ["python3", "-c", "import sys; sys.stderr.write('y' * (4 << 20)); print('{}')"]

[agents.flood]
command = ["python3", "-c", "import sys; sys.stdout.write('x' * (9 << 20))"]
"#,
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("agents", "chatty", json!({}));
    let run = server.wait_done("agents", "chatty", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let (_, logs) = server.get(&format!("/api/agents/chatty/{id}/logs"));
    let lines = logs["lines"].as_array().expect("lines");
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0]["line"].as_str().unwrap();
    assert!(
        line.len() <= 8 * 1024 + 4 && line.ends_with('…'),
        "{}",
        line.len()
    );

    let id = server.schedule("agents", "flood", json!({}));
    let run = server.wait_done("agents", "flood", &id, T);
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"], "output exceeds 8388608 bytes", "{run}");
}

/// An attempt's first 10 000 stderr lines are stored, then only its last 100, with a count of
/// those between: the end, where an agent says why it failed, is never lost.
#[test]
fn past_the_line_cap_the_last_lines_are_kept() {
    let (sb, _) = sandbox("");
    let cfg = sb.write(
        "chatty.toml",
        r#"
[agents.chatty]
command = ["python3", "-c", "import sys\nfor i in range(10150): print(f'line {i}', file=sys.stderr)\nprint('fatal: no luck', file=sys.stderr)\nsys.exit(3)"]
"#,
    );
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("agents", "chatty", json!({}));
    let run = server.wait_done("agents", "chatty", &id, T);
    assert_eq!(run["error"], "exit status 3: fatal: no luck", "{run}");
    let (_, logs) = server.get(&format!("/api/agents/chatty/{id}/logs"));
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert_eq!(lines.last(), Some(&"fatal: no luck"));
    assert!(
        lines.contains(&"(51 lines not stored)"),
        "{:?}",
        &lines[lines.len() - 110..]
    );
    assert!(lines.contains(&"line 10051") && !lines.contains(&"line 10050"));
}

/// A script beside the config named without `./` is looked up on PATH, as a shell would; the
/// failure says so and how to name it.
#[test]
fn a_script_named_as_a_program_on_path_fails_saying_how_to_name_it() {
    let (sb, cfg) = sandbox("[agents.local]\ncommand = [\"run.sh\"]\n");
    sb.write("run.sh", "#!/bin/sh\necho '{}'\n");
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let id = server.schedule("agents", "local", json!({}));
    let run = server.wait_done("agents", "local", &id, T);
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("looked up on PATH") && error.contains("./run.sh"),
        "{error}"
    );
}

/// Every answer of a long-poll given `sinceTag`, from the run's first look to its end.
fn watch_every_change(server: &crate::support::Server, path: &str) -> Vec<Value> {
    let http = reqwest::blocking::Client::new();
    let mut seen = Vec::new();
    let mut tag: Option<String> = None;
    let deadline = std::time::Instant::now() + T;
    while std::time::Instant::now() < deadline {
        let mut url = format!("{}{path}", server.url);
        if let Some(t) = &tag {
            url.push_str(&format!("?wait=20&since=running&sinceTag={t}"));
        }
        let resp = http.get(&url).send().unwrap();
        assert_eq!(resp.status(), 200);
        let etag = resp
            .headers()
            .get("etag")
            .expect("an ETag")
            .to_str()
            .unwrap();
        tag = Some(etag.trim_matches('"').to_string());
        let run: Value = resp.json().unwrap();
        let ended = run["status"] == "completed" || run["status"] == "failed";
        seen.push(run);
        if ended {
            break;
        }
    }
    seen
}

/// While a run goes on, its status says why its last attempt failed and when the next begins,
/// and a long-poll given the last answer's tag answers at each such change: what `--follow`
/// shows as it happens. Once the run has ended, only its own outcome is left.
#[test]
fn a_retry_shows_in_the_status_and_wakes_a_tagged_long_poll() {
    let (sb, cfg) = sandbox(&format!(
        "{}[workflows.wf]\nsteps = [{{ agent = \"flaky\" }}]\n",
        agent("flaky", "retries = 3")
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    let input = json!({"fail_attempts": 2});
    for (area, name) in [("agents", "flaky"), ("workflows", "wf")] {
        let id = server.schedule(area, name, input.clone());
        let seen = watch_every_change(&server, &format!("/api/{area}/{name}/{id}"));
        let last = seen.last().unwrap();
        assert_eq!(last["status"], "completed", "{name}: {seen:?}");
        for key in ["error", "lastError", "retryAt"] {
            assert!(
                last.get(key).is_none(),
                "{name}: {key} after the end: {last}"
            );
        }
        for run in &seen {
            if run["status"] == "running" {
                assert!(
                    run.get("error").is_none(),
                    "{name}: error while running: {run}"
                );
            }
        }
        // The attempt is the agent run's, or the step's; a workflow shows the rest for the
        // run as well as for the step.
        let shows = |run: &Value, attempt: u32, why: &str, pausing: bool| {
            let (own, step) = match run["steps"].get(0) {
                Some(step) => (step, Some(run)),
                None => (run, None),
            };
            own["attempt"] == attempt
                && [Some(own), step]
                    .into_iter()
                    .flatten()
                    .all(|v| v["lastError"] == why && v.get("retryAt").is_some() == pausing)
        };
        for attempt in [1, 2] {
            let why = format!("exit status 3: attempt {attempt} fails on purpose");
            assert!(
                seen.iter().any(|run| shows(run, attempt, &why, true)),
                "{name}: no answer in attempt {attempt}'s pause: {seen:#?}"
            );
            assert!(
                seen.iter().any(|run| shows(run, attempt + 1, &why, false)),
                "{name}: no answer in attempt {}: {seen:#?}",
                attempt + 1
            );
        }
    }

    // `--follow` says each of them, in order, on stderr.
    let out = sb
        .cmd()
        .args([
            "--url",
            &server.url,
            "agent",
            "run",
            "flaky",
            "--follow",
            "--input",
        ])
        .arg(input.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let said: Vec<usize> = [
        "attempt 1 failed: exit status 3: attempt 1 fails on purpose; retrying in",
        ": attempt 2 (",
        "attempt 2 failed: exit status 3: attempt 2 fails on purpose; retrying in",
        ": attempt 3 (",
        ": completed (",
    ]
    .iter()
    .map(|line| {
        err.find(line)
            .unwrap_or_else(|| panic!("{line:?} not in {err}"))
    })
    .collect();
    assert!(said.is_sorted(), "out of order: {err}");
}

/// A program that is not there is said at start-up, before any run fails on it.
#[test]
fn a_missing_program_is_said_at_start_up() {
    let (sb, cfg) = sandbox(&format!(
        "{}[agents.ghost]\ncommand = [\"./nope.sh\"]\n\n[agents.plain]\ncommand = [\"./agents/probe.py\"]\n\n\
         [agents.typo]\ncommand = [\"no-such-program-xyz\"]\n",
        agent("probe", "")
    ));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    // Said in name order, so the last one's line comes after any about the others.
    let logs = wait_until("the start-up's warnings", T, || {
        let logs = server.logs();
        logs.contains("agent `typo`").then_some(logs)
    });
    let root = sb.root.path().display();
    assert!(
        logs.contains(&format!("agent `ghost`: {root}/nope.sh does not exist")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!(
            "agent `plain`: {root}/agents/probe.py is not executable"
        )),
        "{logs}"
    );
    assert!(
        logs.contains("agent `typo`: `no-such-program-xyz` is not on PATH"),
        "{logs}"
    );
    assert!(!logs.contains("agent `probe`:"), "{logs}");
}

/// A logs answer holds the latest lines up to a size, and says how many it left out: an agent
/// may store 80 MiB of lines per attempt, and an answer is built whole in memory.
#[test]
fn a_logs_answer_holds_the_latest_lines_up_to_a_size() {
    let (sb, cfg) = sandbox(&agent("probe", ""));
    let server = sb.serve(Some(&cfg), &sb.path("engine"), &[]);
    // 300 lines of 8 000 bytes: 2.4 MB of text.
    let id = server.schedule("agents", "probe", json!({"stderr_lines": [300, 8000]}));
    let run = server.wait_done("agents", "probe", &id, T);
    assert_eq!(run["status"], "completed", "{run}");
    let (code, logs) = server.get(&format!("/api/agents/probe/{id}/logs"));
    assert_eq!(code, 200);
    let lines = logs["lines"].as_array().unwrap();
    let bytes: usize = lines
        .iter()
        .map(|l| l["line"].as_str().unwrap().len())
        .sum();
    assert!(bytes <= 1 << 20, "{bytes} bytes of lines");
    assert!(lines.len() > 100, "{} lines", lines.len());
    assert!(
        lines.last().unwrap()["line"]
            .as_str()
            .unwrap()
            .starts_with("000299 ")
    );
    assert_eq!(
        logs["omitted"].as_u64().unwrap() + lines.len() as u64,
        300,
        "every line is either in the answer or counted out"
    );
    let first = lines[0]["line"].as_str().unwrap();
    assert!(
        first.starts_with(&format!("{:06} ", 300 - lines.len())),
        "the latest lines, in order: {}",
        &first[..7]
    );
}

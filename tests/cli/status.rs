//! `restack status`: one run, its name found in the local history or given by `--agent` /
//! `--workflow`; and with no run ID, a table (or JSON array) of this profile's recent runs.

use std::time::Duration;

use serde_json::{Value, json};

use super::fixtures::{assert_error, code, engine, stderr, stdout, stdout_json};
use crate::support::{Sandbox, Server};

/// Schedules through the CLI (so the run is in the history) and waits for it to end.
fn run_via_cli(sb: &Sandbox, server: &Server, kind: &str, name: &str, set: &str) -> String {
    let out = sb.run(&["--url", &server.url, "-q", kind, "run", name, "--set", set]);
    assert_eq!(code(&out), 0, "{out:?}");
    let id = stdout(&out).trim().to_string();
    let plural = format!("{kind}s");
    server.wait_done(&plural, name, &id, Duration::from_secs(30));
    id
}

#[test]
fn status_finds_the_name_in_the_history() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = run_via_cli(&sb, &server, "agent", "echo", "k=v");
    let out = sb.run(&["--url", &server.url, "status", &id]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = stdout(&out);
    for want in [id.as_str(), "echo", "completed", "\"k\": \"v\""] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
}

#[test]
fn status_of_a_workflow_from_the_history_lists_its_steps() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = run_via_cli(&sb, &server, "workflow", "pair", "k=v");
    let out = sb.run(&["--url", &server.url, "-o", "json", "status", &id]);
    assert_eq!(code(&out), 0, "{out:?}");
    let body = stdout_json(&out);
    assert_eq!(body["runId"], id.as_str());
    assert_eq!(body["workflowName"], "pair");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(2));
}

#[test]
fn status_takes_the_name_from_agent_or_workflow_flags() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    // Scheduled behind the CLI's back: the history knows nothing of these runs.
    let agent_run = server.schedule("agents", "echo", json!({"via": "api"}));
    let workflow_run = server.schedule("workflows", "pair", json!({"via": "api"}));
    server.wait_done("agents", "echo", &agent_run, Duration::from_secs(30));
    server.wait_done("workflows", "pair", &workflow_run, Duration::from_secs(30));

    let out = sb
        .cmd()
        .args(["--url", &server.url, "-o", "json", "status", &agent_run])
        .args(["--agent", "echo"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out)["output"], json!({"via": "api"}));

    let out = sb
        .cmd()
        .args(["--url", &server.url, "status", &workflow_run])
        .args(["--workflow", "pair"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("completed"), "{}", stdout(&out));
}

#[test]
fn status_of_a_run_outside_the_history_asks_for_its_name() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = server.schedule("agents", "echo", json!({}));
    let out = sb.run(&["--url", &server.url, "status", &id]);
    let err = assert_error(&out, 2);
    assert!(
        err.contains("--agent") && err.contains("--workflow"),
        "{err}"
    );
}

#[test]
fn status_of_an_unknown_run_is_exit_4() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = server.schedule("agents", "echo", json!({}));
    // A real run, looked up under another agent's name, is unknown too.
    for (flag, name, run) in [
        ("--agent", "echo", "0190a1b2-0000-7000-8000-000000000000"),
        ("--agent", "sleep", id.as_str()),
        ("--workflow", "pair", id.as_str()),
    ] {
        let out = sb.run(&["--url", &server.url, "status", run, flag, name]);
        let err = assert_error(&out, 4);
        assert!(err.contains("not found"), "{err}");
    }
}

#[test]
fn status_follow_watches_a_run_to_its_end() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = server.schedule("agents", "slow", json!({"seconds": 0.3}));
    let out = sb.run(&["--url", &server.url, "status", &id, "--agent", "slow", "-f"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out), json!({"done": true}));
}

#[test]
fn status_alone_prints_a_table_of_recent_runs_with_live_status() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let first = run_via_cli(&sb, &server, "agent", "echo", "n=1");
    let second = run_via_cli(&sb, &server, "workflow", "pair", "n=2");
    let out = sb.run(&["--url", &server.url, "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("RUN ID") && lines[0].contains("STATUS"),
        "{text}"
    );
    // Newest first.
    let row = |id: &str| lines.iter().position(|l| l.contains(id));
    let (r1, r2) = (row(&first).expect(&text), row(&second).expect(&text));
    assert!(r2 < r1, "{text}");
    for (i, kind, name) in [(r1, "agent", "echo"), (r2, "workflow", "pair")] {
        let cells: Vec<&str> = lines[i].split_whitespace().collect();
        assert!(cells.contains(&kind), "{}", lines[i]);
        assert!(cells.contains(&name), "{}", lines[i]);
        assert!(cells.contains(&"completed"), "{}", lines[i]);
    }
}

/// Without a run ID, `--agent` or `--workflow` narrows the table to that one's runs.
#[test]
fn status_alone_with_agent_or_workflow_shows_only_its_runs() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let echo = run_via_cli(&sb, &server, "agent", "echo", "n=1");
    let pair = run_via_cli(&sb, &server, "workflow", "pair", "n=2");
    // An agent that shares a workflow's name is another thing: nothing of `pair` is an agent.
    for (flag, name, shown) in [
        ("--agent", "echo", vec![json!(echo)]),
        ("--workflow", "pair", vec![json!(pair)]),
        ("--agent", "pair", vec![]),
    ] {
        let out = sb.run_at(&server.url, &["-o", "json", "status", flag, name]);
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(run_ids(&out), shown, "{flag} {name}");
    }
}

/// The run IDs of a JSON array of runs on stdout, in order.
fn run_ids(out: &std::process::Output) -> Vec<Value> {
    stdout_json(out)
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| r["runId"].clone())
        .collect()
}

#[test]
fn status_alone_in_json_is_an_array() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let first = run_via_cli(&sb, &server, "agent", "echo", "n=1");
    let second = run_via_cli(&sb, &server, "agent", "echo", "n=2");
    let out = sb.run(&["--url", &server.url, "-o", "json", "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let list = stdout_json(&out);
    assert_eq!(run_ids(&out), [json!(second), json!(first)]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "completed")
    );
}

#[test]
fn status_table_shows_only_the_current_profiles_runs() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = sb.write(
        "profiles.toml",
        &format!(
            "[profiles.a]\nurl = \"{0}\"\n[profiles.b]\nurl = \"{0}\"\n",
            server.url
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let schedule = |profile: &str| {
        let out = sb.run(&["-c", cfg, "-p", profile, "-q", "agent", "run", "echo"]);
        assert_eq!(code(&out), 0, "{out:?}");
        stdout(&out).trim().to_string()
    };
    let in_a = schedule("a");
    let in_b = schedule("b");
    let out = sb.run(&["-c", cfg, "-p", "a", "-o", "json", "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let list = stdout_json(&out);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["runId"].as_str())
        .collect();
    assert_eq!(ids, [in_a.as_str()], "not {in_b}");
}

#[test]
fn status_alone_with_no_history_says_so() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run(&["--url", &server.url, "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    assert!(stderr(&out).contains("no runs"), "{}", stderr(&out));
}

/// A run scheduled with `--url` lives on that server: `status` asks there, for one run and in
/// the table, even without the flag (here the profile itself points where nothing listens).
#[test]
fn status_asks_for_a_run_where_it_was_scheduled() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = run_via_cli(&sb, &server, "agent", "echo", "k=v");
    let cfg = sb.write(
        "elsewhere.toml",
        &format!(
            "[profiles.local]\nurl = \"{}\"\n",
            super::fixtures::closed_url()
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let out = sb.run(&["-c", cfg, "status", &id]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("completed"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("scheduled at {}", server.url)),
        "{}",
        stderr(&out)
    );
    let out = sb.run(&["-c", cfg, "-o", "json", "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout_json(&out)[0]["status"], "completed");
}

/// A server that answers every lookup with a 5xx has shown nothing: the table fails with its
/// error rather than printing rows of unknowns with exit 0.
#[test]
fn status_table_fails_when_the_server_answers_no_lookup() {
    use crate::support::standin::{Reply, Standin};
    let sb = Sandbox::new();
    let standin = Standin::start(|req, _| match req.method.as_str() {
        "POST" => Reply::json(200, json!({"runId": "r-1", "status": "queued"})),
        _ => Reply::raw(500, "text/plain", "database on fire"),
    });
    let out = sb.run_at(&standin.url, &["agent", "run", "echo", "-q"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let out = sb.run_at(&standin.url, &["status"]);
    let err = assert_error(&out, 7);
    assert!(err.contains("database on fire"), "{err}");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
}

/// A run scheduled with `--url` at a server that is gone since is a row of the table, not the
/// end of it; and the profile's own token is never sent to that other server.
#[test]
fn a_gone_foreign_server_is_a_row_and_gets_no_profile_token() {
    use crate::support::standin::{Reply, Standin};
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = sb.write(
        "tokened.toml",
        &format!(
            "[profiles.local]\nurl = \"{}\"\ntoken = \"profile-secret\"\n",
            server.url
        ),
    );
    let cfg = cfg.to_str().unwrap();
    std::fs::set_permissions(cfg, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let elsewhere =
        Standin::one_run(|_| Reply::json(200, json!({"runId": "r-1", "status": "running"})));
    let out = sb.run(&[
        "-c",
        cfg,
        "--url",
        &elsewhere.url,
        "agent",
        "run",
        "echo",
        "-q",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    let own = sb.run(&["-c", cfg, "agent", "run", "echo", "-q"]);
    assert_eq!(code(&own), 0, "{own:?}");
    let out = sb.run(&["-c", cfg, "-o", "json", "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let rows = stdout_json(&out);
    assert_eq!(rows[0]["status"], "completed", "{rows}");
    assert_eq!(rows[1]["runId"], "r-1", "{rows}");
    // Neither the schedule with --url nor the lookup the table made on its own carried the
    // profile's token: it belongs to the profile's server.
    let sent: Vec<bool> = elsewhere
        .requests()
        .iter()
        .map(|r| r.headers.iter().any(|(k, _)| k == "authorization"))
        .collect();
    assert_eq!(sent, [false, false], "{:?}", elsewhere.requests());
    drop(elsewhere);
    let out = sb.run(&["-c", cfg, "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(stdout(&out).contains("unknown"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("1 of these runs could not be looked up"),
        "{}",
        stderr(&out)
    );
}

/// A run scheduled with `--url` is looked up there with only the exported token; when that
/// server refuses, the hint says so instead of blaming the token that was not sent.
#[test]
fn a_refusal_where_the_run_lives_says_which_token_went_there() {
    use crate::support::standin::{Reply, Standin};
    let sb = Sandbox::new();
    let elsewhere = Standin::one_run(|_| Reply::json(401, json!({"error": "who are you"})));
    let out = sb.run(&["--url", &elsewhere.url, "agent", "run", "echo", "-q"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let out = sb.run(&["status", "r-1"]);
    let err = assert_error(&out, 5);
    assert!(
        err.contains(&format!(
            "only RESTACK_API_BEARER_TOKEN is sent to {}",
            elsewhere.url
        )),
        "{err}"
    );
}

/// The history keeps a URL as it was given, and `HTTP://` is the same scheme: `status` asks
/// for the run there, not at the profile's server.
#[test]
fn a_run_scheduled_at_an_uppercase_scheme_is_asked_for_there() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let url = server.url.replacen("http://", "HTTP://", 1);
    let out = sb.run(&["--url", &url, "agent", "run", "echo", "-q"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let id = stdout(&out).trim().to_string();
    let out = sb.run(&["status", &id]);
    assert_eq!(code(&out), 0, "{out:?}");
}

/// CLIs run side by side (a CI matrix, a dataset evaluation) while the history reaches the
/// size at which it is cut: every run they schedule is still recorded.
#[test]
fn parallel_clis_lose_no_run_when_the_history_is_cut() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let old = json!({"profile": "other", "kind": "agent", "name": "echo",
        "runId": "0190aaaa-0000-7000-8000-000000000000", "url": "http://x", "time": "t"});
    let line = format!("{old}\n");
    sb.write(
        "data/restack/history.jsonl",
        &line.repeat(4 * 1024 * 1024 / line.len() + 1),
    );
    let children: Vec<_> = (0..16)
        .map(|_| {
            sb.std_cmd()
                .args(["--url", &server.url, "-q", "agent", "run", "echo"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let history = |sb: &Sandbox| sb.read("data/restack/history.jsonl");
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(stderr(&out), "", "no warning about recording");
        let id = stdout(&out).trim().to_string();
        assert!(history(&sb).contains(&id), "run {id} is not in the history");
    }
}

/// A canceled run is `failed` in the API, and the CLI says it was canceled, in the detail and
/// in the table.
#[test]
fn a_canceled_run_shows_as_canceled() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let out = sb.run_at(
        &server.url,
        &["-q", "agent", "run", "sleep", "--set", "seconds=600"],
    );
    assert_eq!(code(&out), 0, "{out:?}");
    let id = stdout(&out).trim().to_string();
    let (status, body) = server.post(&format!("/api/agents/sleep/{id}/cancel"), json!({}));
    assert_eq!(status, 200, "{body}");
    let out = sb.run_at(&server.url, &["status", &id]);
    assert!(stdout(&out).contains("failed (canceled)"), "{out:?}");
    let out = sb.run_at(&server.url, &["status"]);
    assert!(stdout(&out).contains("failed (canceled)"), "{out:?}");
}

/// `-q` gives scripts one thing: a run's status word, or the table's run IDs (newest first).
#[test]
fn status_quiet_prints_the_status_or_the_ids() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let first = run_via_cli(&sb, &server, "agent", "echo", "k=1");
    let second = run_via_cli(&sb, &server, "agent", "echo", "k=2");
    let out = sb.run_at(&server.url, &["status", &first, "-q"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out), "completed\n");
    let out = sb.run_at(&server.url, &["status", "-q"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert_eq!(stdout(&out), format!("{second}\n{first}\n"));
}

/// With --url, the table lists the runs scheduled at that server, not every run of the
/// profile looked up there (which it would call "not found").
#[test]
fn status_with_a_url_lists_the_runs_scheduled_there() {
    let sb = Sandbox::new();
    let (a, b) = (engine(&sb), sb.serve(None, &sb.path("engine-b"), &[]));
    let at_a = run_via_cli(&sb, &a, "agent", "echo", "k=a");
    let at_b = run_via_cli(&sb, &b, "agent", "echo", "k=b");
    for (server, id) in [(&a, &at_a), (&b, &at_b)] {
        let out = sb.run_at(&format!("{}/", server.url), &["-o", "json", "status"]);
        assert_eq!(code(&out), 0, "{out:?}");
        let rows = stdout_json(&out);
        assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
        assert_eq!(rows[0]["runId"], id.as_str(), "{rows}");
        assert_eq!(rows[0]["status"], "completed", "{rows}");
    }
}

/// The history survives what happens to files: a line that is not UTF-8 or not an entry
/// hides only itself, a last line cut short does not swallow the next run, and the file, whose
/// URLs may carry credentials, is its owner's alone.
#[test]
fn a_damaged_history_loses_only_its_damaged_lines() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let server = engine(&sb);
    let first = run_via_cli(&sb, &server, "agent", "echo", "k=1");
    let file = sb.path("data/restack/history.jsonl");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\xff\xfe not an entry\n{\"profile\":\"local\",\"runId\":\"cut");
    std::fs::write(&file, bytes).unwrap();
    let second = run_via_cli(&sb, &server, "agent", "echo", "k=2");
    for id in [&first, &second] {
        let out = sb.run_at(&server.url, &["status", id]);
        assert_eq!(code(&out), 0, "{id}: {out:?}");
    }
    let out = sb.run_at(&server.url, &["-o", "json", "status"]);
    assert_eq!(
        stdout_json(&out).as_array().map(Vec::len),
        Some(2),
        "{out:?}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the history is readable by others: {mode:o}"
    );
}

/// A long table asks for its rows a few at a time: 200 rows work under a descriptor limit of
/// 64 (macOS defaults to 256), where a connection per row ran out of descriptors.
#[test]
fn a_long_table_does_not_open_a_connection_per_row() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    run_via_cli(&sb, &server, "agent", "echo", "k=v");
    let first: Value = serde_json::from_str(sb.read("data/restack/history.jsonl").trim()).unwrap();
    let mut lines = String::new();
    for i in 0..200 {
        let mut e = first.clone();
        e["runId"] = json!(format!("0190aaaa-0000-7000-8000-{i:012}"));
        lines.push_str(&format!("{e}\n"));
    }
    sb.write("data/restack/history.jsonl", &lines);
    let out = std::process::Command::new("sh")
        .env_clear()
        .envs(sb.env())
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(crate::support::BIN)
        .args([
            "--url",
            &server.url,
            "-o",
            "json",
            "status",
            "--limit",
            "200",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{out:?}");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 200);
    assert!(
        rows.iter()
            .all(|r| r["status"].is_null() && r["lookupError"].is_string() && r["error"].is_null()),
        "unknown runs: {:?}",
        rows[0]
    );
}

/// One server in the history that accepts connections and never answers must not hold the
/// table for the usual request timeout: `--timeout` bounds every lookup, and that row shows
/// `unknown` while the others show their status.
#[test]
fn a_server_that_never_answers_does_not_hold_the_table() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let cfg = sb.write(
        "here.toml",
        &format!("[profiles.local]\nurl = \"{}\"\n", server.url),
    );
    let cfg = cfg.to_str().unwrap();
    let out = sb.run(&["-c", cfg, "-q", "agent", "run", "echo", "--set", "k=v"]);
    assert_eq!(code(&out), 0, "{out:?}");
    // The kernel completes the handshake; nothing ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // More of its runs than lookups go out at once, and newer than the good one: they must
    // not hold the good server's row until the deadline.
    let mut history = sb.read("data/restack/history.jsonl");
    let mut stuck: Value = serde_json::from_str(history.trim()).unwrap();
    stuck["url"] = json!(format!("http://{}", silent.local_addr().unwrap()));
    for i in 0..20 {
        stuck["runId"] = json!(format!("r-stuck-{i}"));
        history.push_str(&format!("{stuck}\n"));
    }
    sb.write("data/restack/history.jsonl", &history);

    let asked = std::time::Instant::now();
    let out = sb.run(&[
        "-c",
        cfg,
        "-o",
        "json",
        "status",
        "--timeout",
        "1s",
        "--limit",
        "30",
    ]);
    assert_eq!(code(&out), 0, "{out:?}");
    // Well under the 30 s a request may otherwise take: the deadline cut it.
    assert!(asked.elapsed() < Duration::from_secs(20), "{out:?}");
    let rows = stdout_json(&out);
    assert_eq!(rows[0]["runId"], "r-stuck-19", "{rows}");
    assert!(rows[0]["status"].is_null(), "{rows}");
    let why = rows[0]["lookupError"].as_str().unwrap_or_default();
    assert!(why.contains("did not answer in time"), "{rows}");
    assert_eq!(rows[20]["status"], "completed", "{rows}");
}

/// `--url` over where the history says the run was scheduled: the command says so, since a
/// "not found" may follow.
#[test]
fn status_at_another_url_than_the_runs_says_so() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = run_via_cli(&sb, &server, "agent", "echo", "k=v");
    let other = sb.serve(None, &sb.path("other-data"), &[]);
    let out = sb.run(&["--url", &other.url, "status", &id]);
    let err = assert_error(&out, 4);
    assert!(
        err.contains(&format!(
            "was scheduled at {}; asking {} instead",
            server.url, other.url
        )),
        "{err}"
    );
}

/// A history that cannot be read is said to be so, not taken for an empty one.
#[test]
fn an_unreadable_history_is_a_warning() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("data/restack/history.jsonl")).unwrap();
    let out = sb.run(&["--url", &super::fixtures::closed_url(), "status"]);
    assert_eq!(code(&out), 0, "{out:?}");
    assert!(
        stderr(&out).contains("warning: cannot read the history"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("no runs"), "{}", stderr(&out));
}

/// A lookup of this profile's own server that the deadline cuts short is a row of the table
/// (`unknown`), not the end of the command, when the server answered the others.
#[test]
fn a_slow_lookup_of_the_own_server_is_a_row() {
    use crate::support::standin::{Reply, Standin};
    let sb = Sandbox::new();
    let scheduled = std::sync::atomic::AtomicUsize::new(0);
    let standin = Standin::start(move |req, _| {
        if req.method == "POST" {
            let n = scheduled.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            return Reply::json(200, json!({"runId": format!("r-{n}"), "status": "queued"}));
        }
        if req.path.ends_with("/r-2") {
            // A server slow to answer this one lookup.
            std::thread::sleep(Duration::from_secs(5));
        }
        let id = req.path.rsplit('/').next().unwrap_or_default().to_string();
        Reply::json(
            200,
            json!({"runId": id, "status": "completed", "output": {}}),
        )
    });
    for _ in 0..2 {
        let out = sb.run_at(&standin.url, &["agent", "run", "echo", "-q"]);
        assert_eq!(code(&out), 0, "{out:?}");
    }
    let out = sb.run_at(&standin.url, &["-o", "json", "status", "--timeout", "1s"]);
    assert_eq!(code(&out), 0, "{out:?}");
    let rows = stdout_json(&out);
    assert_eq!(rows[0]["runId"], "r-2", "{rows}");
    assert!(rows[0]["status"].is_null(), "{rows}");
    assert_eq!(rows[1]["status"], "completed", "{rows}");
}

/// A `--timeout` too large for the clock is no deadline, not a crash.
#[test]
fn a_timeout_past_the_clock_is_no_deadline() {
    let sb = Sandbox::new();
    let server = engine(&sb);
    let id = run_via_cli(&sb, &server, "agent", "echo", "k=v");
    for args in [
        vec!["status", "--timeout", "500000000000y"],
        vec!["status", id.as_str(), "--timeout", "500000000000y"],
    ] {
        let out = sb.run_at(&server.url, &args);
        assert_eq!(code(&out), 0, "{args:?}: {out:?}");
        assert!(stdout(&out).contains("completed"), "{args:?}: {out:?}");
    }
}

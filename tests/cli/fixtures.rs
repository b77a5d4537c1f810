//! What the CLI tests share: an engine with a few small Python agents, a closed port, and
//! readers for the engine's side of the story (what was actually scheduled).

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::support::{Sandbox, Server};

/// Agents that cover the outcomes a user sees: one that fails with exit 3, one that is slow
/// enough to still be running when looked at, and a workflow over them.
pub const CONFIG: &str = r#"
[agents.fail]
command = ["python3", "agents/fail.py"]

[agents.slow]
command = ["python3", "agents/slow.py"]

[workflows.pair]
steps = [{ agent = "echo" }, { agent = "echo" }]
"#;

const FAIL_PY: &str = r#"import json, sys
json.load(sys.stdin)
print("about to give up", file=sys.stderr)
print("boom: no luck today", file=sys.stderr)
sys.exit(3)
"#;

const SLOW_PY: &str = r#"import json, sys, time
data = json.load(sys.stdin)
time.sleep(float(data.get("seconds", 0.3)))
json.dump({"done": True}, sys.stdout)
"#;

/// Writes the agents and the config into the sandbox; returns the config's path.
pub fn write_config(sb: &Sandbox) -> PathBuf {
    sb.write("agents/fail.py", FAIL_PY);
    sb.write("agents/slow.py", SLOW_PY);
    sb.write("restack.toml", CONFIG)
}

/// A real engine with the test agents, its data in the sandbox.
pub fn engine(sb: &Sandbox) -> Server {
    engine_with_env(sb, &[])
}

pub fn engine_with_env(sb: &Sandbox, env: &[(&str, &str)]) -> Server {
    let config = write_config(sb);
    sb.serve(Some(&config), &sb.path("engine-data"), env)
}

/// Every run the engine has, newest first.
pub fn runs(server: &Server) -> Vec<Value> {
    let (code, body) = server.get("/api/runs?limit=100");
    assert_eq!(code, 200, "{body}");
    body["runs"].as_array().expect("runs array").clone()
}

/// A URL where nothing listens: a port the OS just handed out and took back.
pub fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout as one JSON value; fails the test when stdout holds anything else.
pub fn stdout_json(out: &Output) -> Value {
    let text = stdout(out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{text}"))
}

/// The exit code, failing the test (with both streams) when there is none.
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| {
        panic!(
            "killed by a signal\nstdout:\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Asserts the exit code and an `error:` line, and that nothing panicked; returns stderr.
pub fn assert_error(out: &Output, expected: i32) -> String {
    let err = stderr(out);
    assert_eq!(
        code(out),
        expected,
        "stdout:\n{}\nstderr:\n{err}",
        stdout(out)
    );
    assert!(err.contains("error: "), "no `error:` line:\n{err}");
    assert!(!err.contains("panicked"), "it panicked:\n{err}");
    err
}

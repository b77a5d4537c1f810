//! The Python agent the engine tests share, registered under whatever names a test needs.
//! One script driven by the run's input keeps each test's intent in the test itself instead of
//! in a pile of near-identical scripts.

use std::path::PathBuf;

use crate::support::{PY, Sandbox};

/// Directives (all optional), read from the input; a key named after the agent holds
/// directives for that agent only, so one workflow input can steer each step differently:
/// - `append`: a file to which each invocation appends `<agent name> <attempt>`
/// - `pidfile` (+ `child`): write the agent's pid (and a sleeping child's) there
/// - `stderr`: lines to log; `stderr_lines`: `[count, width]`, that many numbered lines
/// - `active` (+ `hold`, `until_seen`): a folder; reports in `others` how many other runs were
///   inside at once, holding `hold` seconds (or, with `until_seen`, until it has seen one)
/// - `gate`: wait (at most 30 s) until this file exists
/// - `sleep`: seconds to sleep
/// - `fail_attempts`: attempts up to this one exit 3
/// - `exit`: exit with this status; `stdout`: write this text verbatim and exit 0;
///   `stdout_bytes`: write these bytes and exit 0
/// - `daemon`: seconds a process started in a session of its own lives on, holding the
///   agent's stdout and stderr open; its pid is in the output as `daemon`, and in the file
///   `daemon_pidfile` names as soon as it starts
///
/// Otherwise it prints its input plus `seen` (agent names so far), `env` and `cwd`.
pub const AGENT_PY: &str = r#"
import json, os, subprocess, sys, time

inp = json.load(sys.stdin)
name = os.environ["RESTACK_AGENT_NAME"]
attempt = int(os.environ["RESTACK_ATTEMPT"])
d = dict(inp)
if isinstance(inp.get(name), dict):
    d.update(inp[name])

if "append" in d:
    with open(d["append"], "a") as f:
        f.write(f"{name} {attempt}\n")
if "pidfile" in d:
    pids = [os.getpid()]
    if d.get("child"):
        pids.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]).pid)
    with open(d["pidfile"] + ".tmp", "w") as f:
        f.write(" ".join(map(str, pids)))
    os.replace(d["pidfile"] + ".tmp", d["pidfile"])
for line in d.get("stderr", []):
    print(line, file=sys.stderr, flush=True)
if "stderr_lines" in d:
    count, width = d["stderr_lines"]
    for i in range(count):
        print(f"{i:06d} " + "x" * width, file=sys.stderr)
others = None
if "active" in d:
    os.makedirs(d["active"], exist_ok=True)
    me = os.path.join(d["active"], os.environ["RESTACK_RUN_ID"])
    open(me, "w").close()
    others = 0
    until = time.time() + d.get("hold", 0.3)
    while time.time() < until and not (d.get("until_seen") and others > 0):
        others = max(others, len(os.listdir(d["active"])) - 1)
        time.sleep(0.01)
    os.remove(me)
daemon = None
if "daemon" in d:
    daemon = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({d['daemon']})"],
                              start_new_session=True).pid
    if "daemon_pidfile" in d:
        with open(d["daemon_pidfile"] + ".tmp", "w") as f:
            f.write(str(daemon))
        os.replace(d["daemon_pidfile"] + ".tmp", d["daemon_pidfile"])
if "gate" in d:
    deadline = time.time() + 30
    while not os.path.exists(d["gate"]) and time.time() < deadline:
        time.sleep(0.02)
if "sleep" in d:
    time.sleep(d["sleep"])
if attempt <= d.get("fail_attempts", 0):
    print(f"attempt {attempt} fails on purpose", file=sys.stderr)
    sys.exit(3)
if "exit" in d:
    sys.exit(d["exit"])
if "stdout" in d:
    sys.stdout.write(d["stdout"])
    sys.exit(0)
if "stdout_bytes" in d:
    sys.stdout.buffer.write(bytes(d["stdout_bytes"]))
    sys.exit(0)

out = dict(inp)
out["seen"] = inp.get("seen", []) + [name]
out["env"] = {k: os.environ.get(k) for k in
              ["RESTACK_RUN_ID", "RESTACK_AGENT_NAME", "RESTACK_ATTEMPT", "RESTACK_STEP_INDEX", "GREETING",
               "RESTACK_API_BEARER_TOKEN", "ENGINE_TOKEN"]}
out["cwd"] = os.getcwd()
if others is not None:
    out["others"] = others
if daemon is not None:
    out["daemon"] = daemon
print(json.dumps(out))
"#;

/// `[agents.NAME]` running the shared script, plus `extra` TOML lines for that table.
pub fn agent(name: &str, extra: &str) -> String {
    format!("[agents.{name}]\ncommand = [\"{PY}\", \"agents/probe.py\"]\n{extra}\n\n")
}

/// A sandbox holding the script and a config made of `toml`; the config's folder (the sandbox
/// root) is the agents' working directory, so relative paths in inputs land there.
pub fn sandbox(toml: &str) -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    sb.write("agents/probe.py", AGENT_PY);
    let config = sb.write("restack.toml", toml);
    (sb, config)
}

/// The pids an agent wrote to `rel`, once it has.
pub fn pids(sb: &Sandbox, rel: &str, count: usize) -> Vec<i32> {
    crate::support::wait_until(
        &format!("{count} pids in {rel}"),
        std::time::Duration::from_secs(20),
        || {
            let pids: Vec<i32> = sb
                .read(rel)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect();
            (pids.len() == count).then_some(pids)
        },
    )
}

/// Waits until none of `pids` is alive.
pub fn assert_all_gone(pids: &[i32]) {
    for &pid in pids {
        crate::support::wait_until(
            &format!("pid {pid} to be gone"),
            std::time::Duration::from_secs(30),
            || (!crate::support::process_alive(pid)).then_some(()),
        );
    }
}

//! Test scaffolding: hermetic sandboxes, a real engine process on 127.0.0.1:0, polling helpers.
#![allow(dead_code)]

pub mod standin;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_restack");

/// A private world for one test: its own HOME, config and data directories, and nothing of
/// the developer's environment.
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            root: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// `XDG_DATA_HOME/restack`: the history file and the default engine data directory.
    pub fn user_data(&self) -> PathBuf {
        self.path("data/restack")
    }

    /// A file's text, or "" while it does not exist (agents write files the tests watch).
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }

    /// The environment every command of this sandbox runs with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", self.path("home").display().to_string()),
            ("XDG_CONFIG_HOME", self.path("config").display().to_string()),
            ("XDG_DATA_HOME", self.path("data").display().to_string()),
            ("NO_COLOR", "1".into()),
        ]
    }

    /// The real binary, through assert_cmd, with only the sandbox's environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(BIN);
        c.env_clear().envs(self.env()).current_dir(self.root.path());
        c.timeout(Duration::from_secs(60));
        c
    }

    /// Runs the binary with `args` and returns what it did.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().expect("run restack")
    }

    /// Runs the binary against the server at `url` (`--url URL ARGS...`).
    pub fn run_at(&self, url: &str, args: &[&str]) -> std::process::Output {
        self.cmd()
            .arg("--url")
            .arg(url)
            .args(args)
            .output()
            .expect("run restack")
    }

    /// The same, as a std Command (for processes a test must signal or watch).
    pub fn std_cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_clear().envs(self.env()).current_dir(self.root.path());
        c
    }

    /// Starts `restack serve` on 127.0.0.1:0 with `data` as its data directory.
    pub fn serve(&self, config: Option<&Path>, data: &Path, env: &[(&str, &str)]) -> Server {
        let mut c = self.std_cmd();
        if let Some(cfg) = config {
            c.arg("-c").arg(cfg);
        }
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data);
        c.envs(env.iter().copied());
        Server::spawn(c, data)
    }
}

/// A `restack serve` process. Dropping it kills it.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub fn spawn(mut cmd: Command, data_dir: &Path) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn restack serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        // Drain stderr for the engine's whole life, so its logging never blocks it.
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest.split(';').next().unwrap_or("").trim().to_string();
                    let _ = tx.send(url);
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                // The engine is gone, so its stderr ends and the drain thread with it.
                let _ = drain.join();
                panic!(
                    "the engine did not start; its log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Server {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (at most `within`) for it to exit; returns its exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        send(reqwest::blocking::Client::new().get(format!("{}{path}", self.url)))
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(
            reqwest::blocking::Client::new()
                .post(format!("{}{path}", self.url))
                .json(&body),
        )
    }

    /// A request with a raw body, for inputs a well-behaved client would never send.
    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        send(
            reqwest::blocking::Client::new()
                .post(format!("{}{path}", self.url))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
    }

    /// Any method, any headers: auth and method-not-allowed cases.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req =
            reqwest::blocking::Client::new().request(method, format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(req)
    }

    /// Schedules and returns the run ID (panics on anything but 200).
    pub fn schedule(&self, kind: &str, name: &str, input: Value) -> String {
        let (code, body) = self.post(
            &format!("/api/{kind}/{name}"),
            serde_json::json!({"input": input}),
        );
        assert_eq!(code, 200, "schedule {kind}/{name}: {body}");
        body["runId"].as_str().expect("runId").to_string()
    }

    /// Polls the run until its status is `status`.
    pub fn wait_status(&self, kind: &str, name: &str, id: &str, status: &str, within: Duration) {
        wait_until(&format!("run {id} to be {status}"), within, || {
            let (_, run) = self.get(&format!("/api/{kind}/{name}/{id}"));
            (run["status"] == status).then_some(())
        });
    }

    /// Polls the run until it is completed or failed.
    /// The text of a run's log lines, in order.
    pub fn log_lines(&self, kind: &str, name: &str, id: &str) -> Vec<String> {
        let (_, logs) = self.get(&format!("/api/{kind}/{name}/{id}/logs"));
        logs["lines"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["line"].as_str().map(str::to_string))
            .collect()
    }

    pub fn wait_done(&self, kind: &str, name: &str, id: &str, within: Duration) -> Value {
        wait_until(&format!("run {id} to end"), within, || {
            let (code, body) = self.get(&format!("/api/{kind}/{name}/{id}?wait=5"));
            assert_eq!(code, 200, "{body}");
            matches!(body["status"].as_str(), Some("completed" | "failed")).then_some(body)
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request and returns the status and the JSON body (`Null` when it is not JSON).
pub fn send(req: reqwest::blocking::RequestBuilder) -> (u16, Value) {
    let resp = req
        .timeout(Duration::from_secs(90))
        .send()
        .expect("request");
    let code = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls `f` until it returns Some, or panics after `within`. Tests wait on conditions, not
/// on sleeps.
pub fn wait_until<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process still runs. A zombie counts as gone: it has been killed, only its
/// parent has not reaped it yet.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
    }
}

/// A Python command agent, written into the sandbox, and a config that registers it.
pub const PY: &str = "python3";

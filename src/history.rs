//! The local record of runs this CLI scheduled, so `restack status RUN_ID` can find the agent or
//! workflow name (the API needs it) and `restack status` can list recent runs.
//!
//! One JSON line per run in `<data dir>/restack/history.jsonl`. Concurrent CLIs (a CI matrix, a
//! dataset evaluation) take turns through a lock file: each append, and the cut that keeps the
//! file small, happen under it, so no append lands in a file being replaced. Failing to record
//! is a warning, never an error: the run was scheduled.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::api::Kind;
use crate::config::user_data_dir;

/// Past this size the file is cut to its newest half on the next append.
const MAX_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub profile: String,
    pub kind: Kind,
    pub name: String,
    pub run_id: String,
    pub url: String,
    pub time: String,
}

pub fn path() -> PathBuf {
    user_data_dir().join("history.jsonl")
}

pub fn record(entry: &Entry) {
    if let Err(e) = append(entry) {
        eprintln!(
            "warning: could not record the run in {}: {e}",
            path().display()
        );
    }
}

fn append(entry: &Entry) -> std::io::Result<()> {
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _turn = lock(&path.with_extension("lock"))?;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_BYTES) {
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        let keep = lines[lines.len() / 2..].join("\n") + "\n";
        let tmp = path.with_extension("jsonl.tmp");
        std::fs::write(&tmp, keep)?;
        std::fs::rename(&tmp, &path)?;
    }
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?
        .write_all(line.as_bytes())
}

/// Holds `path`'s exclusive lock until dropped (closing the file releases it).
fn lock(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    loop {
        // SAFETY: flock(2) on a descriptor this function owns; no memory involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn entries() -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(path()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The newest entry for `run_id`, preferring the given profile's.
pub fn find(run_id: &str, profile: &str) -> Option<Entry> {
    let all: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| e.run_id == run_id)
        .collect();
    all.iter()
        .rev()
        .find(|e| e.profile == profile)
        .or(all.last())
        .cloned()
}

/// The newest `limit` runs of a profile, newest first.
pub fn recent(profile: &str, of: Option<(Kind, &str)>, limit: usize) -> Vec<Entry> {
    let mut v: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| e.profile == profile && of.is_none_or(|(k, n)| e.kind == k && e.name == n))
        .collect();
    v.reverse();
    v.truncate(limit);
    v
}

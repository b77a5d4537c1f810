//! The local record of runs this CLI scheduled, so `restack status RUN_ID` can find the agent or
//! workflow name (the API needs it) and `restack status` can list recent runs.
//!
//! One JSON line per run in `<data dir>/restack/history.jsonl`. Concurrent CLIs (a CI matrix, a
//! dataset evaluation) take turns through a lock file: each append, and the cut that keeps the
//! file small, happen under it, so no append lands in a file being replaced. Failing to record
//! is a warning, never an error: the run was scheduled.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
        let bytes = std::fs::read(&path)?;
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let keep = lines[lines.len() / 2..].join("\n") + "\n";
        let tmp = path.with_extension("jsonl.tmp");
        OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?
            .write_all(keep.as_bytes())?;
        std::fs::rename(&tmp, &path)?;
    }
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    // Only its owner may read it: a URL in it can carry credentials.
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .mode(0o600)
        .open(&path)?;
    let meta = file.metadata()?;
    // A file an earlier version made readable by others is closed up too.
    if meta.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    // A line cut short (a CLI killed mid-write, a disk that filled) must not swallow this one.
    if meta.len() > 0 && ends_mid_line(&mut file)? {
        line.insert(0, '\n');
    }
    file.write_all(line.as_bytes())
}

/// Whether the (non-empty) file's last byte is something other than a line break.
fn ends_mid_line(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
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

/// Set once the history could not be read (and a warning said so).
static UNREADABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process found the history there but could not read it.
pub fn unreadable() -> bool {
    UNREADABLE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Every entry that reads as one; a line that does not (cut short, edited, not UTF-8) is
/// skipped, never the whole file.
fn entries() -> Vec<Entry> {
    let bytes = match std::fs::read(path()) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        // Said, as a failed append is: "no runs yet" would be untrue.
        Err(e) => {
            eprintln!("warning: cannot read the history {}: {e}", path().display());
            UNREADABLE.store(true, std::sync::atomic::Ordering::Relaxed);
            return Vec::new();
        }
    };
    String::from_utf8_lossy(&bytes)
        .lines()
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

/// The newest `limit` runs of a profile, newest first; with `at` (a URL), the runs scheduled
/// at that server instead, under whichever profile.
pub fn recent(
    profile: &str,
    at: Option<&str>,
    of: Option<(Kind, &str)>,
    limit: usize,
) -> Vec<Entry> {
    let mut v: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| {
            at.map_or(e.profile == profile, |url| {
                crate::config::same_server(&e.url, url)
            })
        })
        .filter(|e| of.is_none_or(|(k, n)| e.kind == k && e.name == n))
        .collect();
    v.reverse();
    v.truncate(limit);
    v
}

//! One engine per data directory: exclusive locks on the directory itself and on
//! `engine.lock`, held for the engine's life. The directory's, because deleting a "stale" lock
//! file after a crash is a common habit and a directory cannot be deleted under the database;
//! the file's, because that is the one earlier builds take, and an engine of each version must
//! still keep the other out. `engine.lock` also carries the holder's PID for the error, and on
//! a second line what holds it (`serve http://127.0.0.1:6233`, or `embedded`), so that the
//! error can say how to reach that engine, or that the other command will soon be done.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{Context, Result};

pub struct DirLock {
    _dir: File,
    file: File,
}

/// Another engine holds the directory: the one start-up failure with an obvious way out.
#[derive(Debug, thiserror::Error)]
#[error("data directory {dir} is in use by another restack engine{who}")]
pub struct DirInUse {
    dir: String,
    who: String,
    /// The holder's PID, as it wrote it.
    pub pid: Option<u32>,
    /// What the holder wrote of itself: `serve URL`, `embedded`, or nothing (an earlier build).
    pub holder: Holder,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Unknown,
    /// `restack serve`, answering at this URL.
    Serve(String),
    /// A command's embedded engine, gone when that command ends.
    Embedded,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let path = dir.join("engine.lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let held = File::open(dir)
            .with_context(|| format!("cannot open data directory {}", dir.display()))?;
        if held.try_lock().is_err() || file.try_lock().is_err() {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let mut lines = text.lines().map(str::trim);
            let pid = lines.next().unwrap_or("");
            let who = match pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                true => String::new(),
                false => format!(" (pid {pid})"),
            };
            let holder = match lines.next() {
                Some("embedded") => Holder::Embedded,
                Some(s) => match s.strip_prefix("serve ") {
                    Some(url) => Holder::Serve(url.to_string()),
                    None => Holder::Unknown,
                },
                None => Holder::Unknown,
            };
            return Err(DirInUse {
                dir: dir.display().to_string(),
                who,
                pid: pid.parse().ok(),
                holder,
            }
            .into());
        }
        let mut lock = DirLock { _dir: held, file };
        lock.write(None)?;
        Ok(lock)
    }

    /// Says what holds the directory, for another engine's error.
    pub fn describe(&mut self, holder: &Holder) -> std::io::Result<()> {
        self.write(Some(holder))
    }

    fn write(&mut self, holder: Option<&Holder>) -> std::io::Result<()> {
        let mut text = std::process::id().to_string();
        match holder {
            Some(Holder::Serve(url)) => text.push_str(&format!("\nserve {url}")),
            Some(Holder::Embedded) => text.push_str("\nembedded"),
            Some(Holder::Unknown) | None => {}
        }
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.flush()
    }
}

//! One engine per data directory: exclusive locks on the directory itself and on
//! `engine.lock`, held for the engine's life. The directory's, because deleting a "stale" lock
//! file after a crash is a common habit and a directory cannot be deleted under the database;
//! the file's, because that is the one earlier builds take, and an engine of each version must
//! still keep the other out. `engine.lock` also carries the holder's PID for the error.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{Context, Result};

pub struct DirLock {
    _dir: File,
    _file: File,
}

/// Another engine holds the directory: the one start-up failure with an obvious way out.
#[derive(Debug, thiserror::Error)]
#[error("data directory {dir} is in use by another restack engine{who}")]
pub struct DirInUse {
    dir: String,
    who: String,
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
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(DirInUse {
                dir: dir.display().to_string(),
                who,
            }
            .into());
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(DirLock {
            _dir: held,
            _file: file,
        })
    }
}

//! Durable state in SQLite (WAL): runs, workflow steps, logs.
//!
//! Writes go through the group-commit writer thread ([`writer`]); reads use a small pool of
//! read connections, which WAL lets run beside the writer. Nothing here knows about HTTP.

mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use crate::api::{Kind, RunStatus};
use crate::engine::notify::Notifier;
use writer::Job;
pub use writer::Op;

/// A run as it is scheduled.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub input: String,
    pub created_at: i64,
    /// An instant built-in's output: the run is stored already completed, started and ended
    /// at `created_at`.
    pub output: Option<String>,
}

/// A run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub status: RunStatus,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub attempt: u32,
    pub wake_at: Option<i64>,
    pub canceled: bool,
}

/// A workflow step's whole row; writers send the full state, never a partial update.
#[derive(Debug, Clone)]
pub struct StepWrite {
    pub run_id: String,
    pub idx: usize,
    pub status: RunStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub wake_at: Option<i64>,
    pub attempt: u32,
}

#[derive(Debug, Clone)]
pub struct NewLog {
    pub run_id: String,
    pub at: i64,
    pub step: Option<usize>,
    pub attempt: Option<u32>,
    pub line: String,
}

#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub kind: Option<Kind>,
    pub name: Option<String>,
    pub status: Option<RunStatus>,
    pub before: Option<String>,
    pub limit: usize,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    tx: Mutex<Option<Sender<Job>>>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

const RUN_COLUMNS: &str = "id, kind, name, status, input, output, error, created_at, started_at, completed_at, attempt, wake_at, canceled";

impl Store {
    /// Opens (creating and migrating) `restack.db` in `dir` and starts the writer thread.
    pub fn open(dir: &Path, sync_full: bool, notifier: Arc<Notifier>) -> Result<Store> {
        let path = dir.join("restack.db");
        let mut conn = Connection::open(&path)
            .with_context(|| format!("cannot open database {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            if sync_full { "FULL" } else { "NORMAL" },
        )?;
        // The default checkpoint interval (1000 pages) is kept on purpose: a WAL that is reused
        // from its start after each checkpoint costs a cheaper fsync than one that keeps growing
        // (8192 pages made the low-load workflow latency ~1 ms worse).
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::migrate(&mut conn).with_context(|| format!("cannot migrate {}", path.display()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("restack-writer".into())
            .spawn(move || writer::run(conn, rx, notifier))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                tx: Mutex::new(Some(tx)),
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues a write and waits for its commit. `Ok(false)`: it matched nothing (for example a
    /// finish after a cancel).
    pub async fn write(&self, op: Op) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.send(Job {
            op,
            reply: Some(reply),
        })?;
        rx.await
            .map_err(|_| anyhow!("the database writer has stopped"))?
            .map_err(|e| anyhow!("database write failed: {e}"))
    }

    /// Queues a write nobody waits for (log lines).
    pub fn write_later(&self, op: Op) {
        let _ = self.send(Job { op, reply: None });
    }

    fn send(&self, job: Job) -> Result<()> {
        let guard = self.inner.tx.lock().unwrap_or_else(|e| e.into_inner());
        let tx = guard
            .as_ref()
            .ok_or_else(|| anyhow!("the engine is stopping"))?;
        tx.send(job)
            .map_err(|_| anyhow!("the database writer has stopped"))
    }

    /// Stops the writer after it has committed everything queued so far.
    pub fn close(&self) {
        self.inner
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }

    /// Runs `f` on a pooled read connection. Reads here are point lookups of microseconds, so
    /// they run in place rather than hopping to a blocking thread.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let conn = match conn {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let result = f(&conn);
        let mut pool = self.inner.readers.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < 8 {
            pool.push(conn);
        }
        Ok(result?)
    }

    pub fn get_run(&self, id: &str) -> Result<Option<RunRow>> {
        self.read(|c| {
            c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row([id], run_row)
                .optional()
        })
    }

    pub fn steps(&self, id: &str) -> Result<Vec<StepWrite>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT run_id, idx, status, output, error, started_at, completed_at, wake_at, attempt
                 FROM steps WHERE run_id = ?1 ORDER BY idx",
            )?;
            stmt.query_map([id], |r| {
                Ok(StepWrite {
                    run_id: r.get(0)?,
                    idx: r.get::<_, i64>(1)? as usize,
                    status: RunStatus::from_code(r.get(2)?),
                    output: r.get(3)?,
                    error: r.get(4)?,
                    started_at: r.get(5)?,
                    completed_at: r.get(6)?,
                    wake_at: r.get(7)?,
                    attempt: r.get(8)?,
                })
            })?
            .collect()
        })
    }

    /// Unfinished runs, oldest first, through the partial index (no full scan at start-up).
    pub fn active_runs(&self) -> Result<Vec<RunRow>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs INDEXED BY runs_active WHERE status < 2"
            ))?;
            let mut rows: Vec<RunRow> = stmt
                .query_map([], run_row)?
                .collect::<rusqlite::Result<_>>()?;
            rows.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(rows)
        })
    }

    pub fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(k) = f.kind {
            args.push((k as i64).into());
            sql.push_str(&format!(" AND kind = ?{}", args.len()));
        }
        if let Some(n) = &f.name {
            args.push(n.clone().into());
            sql.push_str(&format!(" AND name = ?{}", args.len()));
        }
        if let Some(s) = f.status {
            args.push(s.code().into());
            sql.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(b) = &f.before {
            args.push(b.clone().into());
            sql.push_str(&format!(" AND id < ?{}", args.len()));
        }
        args.push((f.limit as i64).into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        self.read(|c| {
            c.prepare_cached(&sql)?
                .query_map(rusqlite::params_from_iter(args), run_row)?
                .collect()
        })
    }

    pub fn logs(&self, id: &str, limit: usize) -> Result<Vec<NewLog>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT run_id, at, step, attempt, line FROM logs WHERE run_id = ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![id, limit as i64], |r| {
                Ok(NewLog {
                    run_id: r.get(0)?,
                    at: r.get(1)?,
                    step: r.get::<_, Option<i64>>(2)?.map(|s| s as usize),
                    attempt: r.get(3)?,
                    line: r.get(4)?,
                })
            })?
            .collect()
        })
    }
}

fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        kind: if r.get::<_, i64>(1)? == 1 {
            Kind::Workflow
        } else {
            Kind::Agent
        },
        name: r.get(2)?,
        status: RunStatus::from_code(r.get(3)?),
        input: r.get(4)?,
        output: r.get(5)?,
        error: r.get(6)?,
        created_at: r.get(7)?,
        started_at: r.get(8)?,
        completed_at: r.get(9)?,
        attempt: r.get(10)?,
        wake_at: r.get(11)?,
        canceled: r.get(12)?,
    })
}

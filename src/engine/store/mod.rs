//! Durable state in SQLite (WAL): runs, workflow steps, logs.
//!
//! Writes go through the group-commit writer thread ([`writer`]); reads use a small pool of
//! read connections, which WAL lets run beside the writer. Nothing here knows about HTTP.

pub mod ids;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use crate::api::{Kind, RunStatus};
use crate::engine::notify::Notifier;
use ids::{LEGACY_SEQ_END, Mint};
use writer::Job;
pub use writer::Op;

/// A run as it is scheduled. Its ID comes from the store ([`Store::insert`]).
#[derive(Debug, Clone)]
pub struct NewRun {
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
    /// When the run wakes, while it sleeps: a `sleep` agent run, or a workflow in a sleep (set
    /// by the step write that starts the sleep, cleared by its next one). The schema's older
    /// comment names only the agent.
    pub wake_at: Option<i64>,
    pub canceled: bool,
}

/// A workflow step's whole row; writers send the full state, never a partial update.
#[derive(Debug, Clone)]
pub struct StepWrite {
    pub run_id: String,
    pub idx: usize,
    /// The step's definition when it ran (`StepDef::describe`); none in rows older builds
    /// wrote.
    pub step: Option<String>,
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
    /// Only runs older than this one: a `seq` from [`Store::cursor`].
    pub before: Option<i64>,
    pub limit: usize,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    outbox: Mutex<Option<Outbox>>,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    commits: Arc<writer::Commits>,
}

/// The way into the writer. New runs get their IDs under the same lock that queues them, so
/// runs are committed in ID order.
struct Outbox {
    tx: Sender<Job>,
    mint: Mint,
}

/// Every query names the runs table `r`, because listing by name joins it.
const RUN_COLUMNS: &str = "r.id, r.kind, r.name, r.status, r.input, r.output, r.error, r.created_at, r.started_at, r.completed_at, r.attempt, r.wake_at, r.canceled";

/// [`RUN_COLUMNS`] in the same places, without the input, output and error (`''`, `NULL`).
const RUN_COLUMNS_WITHOUT_BODIES: &str = "r.id, r.kind, r.name, r.status, '', NULL, NULL, r.created_at, r.started_at, r.completed_at, r.attempt, r.wake_at, r.canceled";

impl Store {
    /// Opens (creating and migrating) `restack.db` in `dir` and starts the writer thread.
    pub fn open(dir: &Path, sync_full: bool, notifier: Arc<Notifier>) -> Result<Store> {
        let path = dir.join("restack.db");
        let mut conn = Connection::open(&path)
            .with_context(|| format!("cannot open database {}", path.display()))?;
        // One spelling of the path however the directory was named: agents carry it to tell
        // which engine started them.
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::check_ours(&conn)
            .with_context(|| format!("cannot open database {}", path.display()))?;
        // SQLite opens a file it may not write read-only, without a word; every schedule would
        // then fail. Say so now.
        if conn.is_readonly(rusqlite::MAIN_DB)? {
            bail!(
                "cannot open database {} for writing: the engine's user may only read it",
                path.display()
            );
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(|| format!("cannot open database {}", path.display()))?;
        conn.pragma_update(
            None,
            "synchronous",
            if sync_full { "FULL" } else { "NORMAL" },
        )?;
        // The default checkpoint interval (1000 pages) is kept on purpose: a WAL that is reused
        // from its start after each checkpoint costs a cheaper fsync than one that keeps growing
        // (8192 pages made the low-load workflow latency ~1 ms worse).
        schema::migrate(&mut conn).with_context(|| format!("cannot migrate {}", path.display()))?;
        // The highest row number: a seek to the table's last page, not a scan.
        let last: i64 =
            conn.query_row("SELECT coalesce(max(seq), 0) FROM runs", [], |r| r.get(0))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let commits = Arc::new(writer::Commits::default());
        let seen = commits.clone();
        let writer = std::thread::Builder::new()
            .name("restack-writer".into())
            .spawn(move || writer::run(conn, rx, notifier, seen))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                outbox: Mutex::new(Some(Outbox {
                    tx,
                    mint: Mint::after(last),
                })),
                readers: Mutex::new(Vec::new()),
                writer: Mutex::new(Some(writer)),
                commits,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the engine cannot write right now: its last commit failed, lately.
    pub fn writes_failing(&self) -> bool {
        self.inner.commits.failing()
    }

    /// Stores a new run and answers its ID once the run is committed.
    pub async fn insert(&self, run: NewRun) -> Result<String> {
        let (reply, rx) = oneshot::channel();
        let id = self.queue_insert(run, Some(reply))?;
        Self::committed(rx).await?;
        Ok(id)
    }

    /// Queues a new run nobody waits for (the benchmark's seeding); its ID at once.
    pub fn insert_later(&self, run: NewRun) -> Result<String> {
        self.queue_insert(run, None)
    }

    fn queue_insert(
        &self,
        run: NewRun,
        reply: Option<oneshot::Sender<Result<bool, String>>>,
    ) -> Result<String> {
        self.send_with(|mint| {
            let (seq, id) = mint.next_id();
            let op = Op::Insert {
                seq,
                id: id.clone(),
                run,
            };
            (Job { op, reply }, id)
        })
    }

    /// Queues a write and waits for its commit. `Ok(false)`: it matched nothing (for example a
    /// finish after a cancel).
    pub async fn write(&self, op: Op) -> Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.send(Job {
            op,
            reply: Some(reply),
        })?;
        Self::committed(rx).await
    }

    async fn committed(rx: oneshot::Receiver<Result<bool, String>>) -> Result<bool> {
        rx.await
            .map_err(|_| anyhow!("the database writer has stopped"))?
            .map_err(|e| anyhow!("database write failed: {e}"))
    }

    /// Queues a write nobody waits for (log lines).
    pub fn write_later(&self, op: Op) {
        let _ = self.send(Job { op, reply: None });
    }

    fn send(&self, job: Job) -> Result<()> {
        self.send_with(|_| (job, ()))
    }

    /// Builds the job under the outbox's lock (an insert takes its ID there) and queues it;
    /// answers what the builder returns beside the job.
    fn send_with<T>(&self, build: impl FnOnce(&mut Mint) -> (Job, T)) -> Result<T> {
        let mut guard = self.inner.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let outbox = guard
            .as_mut()
            .ok_or_else(|| anyhow!("the engine is stopping"))?;
        let (job, answer) = build(&mut outbox.mint);
        outbox
            .tx
            .send(job)
            .map_err(|_| anyhow!("the database writer has stopped"))?;
        Ok(answer)
    }

    /// Stops the writer after it has committed everything queued so far.
    pub fn close(&self) {
        self.inner
            .outbox
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

    /// Runs `f` on a pooled read connection. Reads here are point lookups of microseconds, or
    /// bounded pages (a listing, a batch of a queue), so they run in place rather than hopping
    /// to a blocking thread; the unbounded ones run once, at start-up.
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
            at_run(c, id, |seq| {
                c.prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs r WHERE r.seq = ?1 AND r.id = ?2"
                ))?
                .query_row(params![seq, id], run_row)
                .optional()
            })
        })
    }

    /// Where a listing that continues after run `id` starts, or `None` when `id` is no run ID.
    /// An ID minted here that is not (or no longer) stored still marks a point in time.
    pub fn cursor(&self, id: &str) -> Result<Option<i64>> {
        Ok(self.read(|c| locate(c, id))?.or_else(|| ids::seq_of(id)))
    }

    pub fn steps(&self, id: &str) -> Result<Vec<StepWrite>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT run_id, idx, status, output, error, started_at, completed_at, wake_at, attempt,
                        step
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
                    step: r.get(9)?,
                })
            })?
            .collect()
        })
    }

    /// Runs found running, oldest first, through the partial index (no full scan at start-up;
    /// `status < 2` is repeated because SQLite only uses a partial index for a query that
    /// states its condition). Without their input (`""`), output and error: most may be asleep,
    /// and a run is read whole when it is driven.
    pub fn running_runs(&self) -> Result<Vec<RunRow>> {
        self.read(|c| {
            c.prepare(&format!(
                "SELECT {RUN_COLUMNS_WITHOUT_BODIES} FROM runs r INDEXED BY runs_active WHERE r.status < 2 AND r.status = 1 ORDER BY r.seq"
            ))?
            .query_map([], run_row)?
            .collect()
        })
    }

    /// The kinds and names that have queued runs: one index seek per name, however many runs
    /// each has queued.
    pub fn queued_names(&self) -> Result<Vec<(Kind, String)>> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT kind, name FROM runs INDEXED BY runs_queued
                 WHERE status = 0 AND (kind, name) > (?1, ?2) ORDER BY kind, name LIMIT 1",
            )?;
            let mut names = Vec::new();
            let mut after: (i64, String) = (-1, String::new());
            while let Some(next) = stmt
                .query_row(params![after.0, after.1], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            {
                after = next;
                names.push((Kind::from_code(after.0), after.1.clone()));
            }
            Ok(names)
        })
    }

    /// How many runs of one kind and name are queued: one pass over their index entries.
    pub fn count_queued(&self, kind: Kind, name: &str) -> Result<usize> {
        self.read(|c| {
            c.query_row(
                "SELECT count(*) FROM runs INDEXED BY runs_queued
                 WHERE status = 0 AND kind = ?1 AND name = ?2",
                params![kind.code(), name],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n as usize)
    }

    /// The oldest queued runs of one kind and name, `limit` of them or all.
    pub fn queued_runs(&self, kind: Kind, name: &str, limit: Option<usize>) -> Result<Vec<RunRow>> {
        let limit = limit.map_or(-1, |l| l as i64);
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs r INDEXED BY runs_queued
                 WHERE r.status = 0 AND r.kind = ?1 AND r.name = ?2 ORDER BY r.seq LIMIT ?3"
            ))?
            .query_map(params![kind.code(), name, limit], run_row)?
            .collect()
        })
    }

    /// Newest first. By name, the runs the writer has indexed come through `runs_by_name` and
    /// the few committed since (at most a batch or so) are scanned; otherwise the table is read
    /// backwards from the newest row.
    pub fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        let mut cond = String::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(k) = f.kind {
            args.push((k as i64).into());
            cond.push_str(&format!(" AND r.kind = ?{}", args.len()));
        }
        if let Some(s) = f.status {
            args.push(s.code().into());
            cond.push_str(&format!(" AND r.status = ?{}", args.len()));
        }
        // Below the cursor: the newest row a page may hold.
        let below = f.before.map_or(i64::MAX, |b| b - 1);
        let limit = f.limit as i64;
        let Some(name) = &f.name else {
            args.extend([below.into(), limit.into()]);
            let sql = format!(
                "SELECT {RUN_COLUMNS} FROM runs r WHERE r.seq <= ?{}{cond}
                 ORDER BY r.seq DESC LIMIT ?{}",
                args.len() - 1,
                args.len()
            );
            return self.read(|c| query_runs(c, &sql, args));
        };
        args.push(name.clone().into());
        let n = args.len();
        let (from, to, limit_at) = (n + 1, n + 2, n + 3);
        let tail = format!(
            "SELECT {RUN_COLUMNS} FROM runs r
             WHERE r.seq > ?{from} AND r.seq <= ?{to} AND r.name = ?{n}{cond}
             ORDER BY r.seq DESC LIMIT ?{limit_at}"
        );
        let indexed = format!(
            "SELECT {RUN_COLUMNS} FROM runs_by_name n JOIN runs r ON r.seq = n.seq
             WHERE n.name = ?{n} AND n.seq > ?{from} AND n.seq <= ?{to}{cond}
             ORDER BY n.seq DESC LIMIT ?{limit_at}"
        );
        self.read(|c| {
            // One snapshot for the watermark and both reads.
            let tx = c.unchecked_transaction()?;
            let through = by_name_through(&tx)?;
            let range = |from: i64, to: i64, limit: i64| {
                let mut a = args.clone();
                a.extend([from.into(), to.into(), limit.into()]);
                a
            };
            let mut rows = query_runs(&tx, &tail, range(through, below, limit))?;
            let rest = limit - rows.len() as i64;
            if rest > 0 {
                rows.extend(query_runs(
                    &tx,
                    &indexed,
                    range(i64::MIN, below.min(through), rest),
                )?);
            }
            Ok(rows)
        })
    }

    /// The run's latest log lines, oldest first: as many as `max_lines` and `max_bytes` of
    /// text allow (at least one), so that one answer's size is bounded whatever the agents
    /// wrote; and how many earlier lines that left out. The latest, because when there are
    /// more (a run retried, each attempt with its lines), the end, where an agent says why it
    /// failed, matters more than the start.
    pub fn logs(&self, id: &str, max_lines: usize, max_bytes: usize) -> Result<(Vec<NewLog>, u64)> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, step, attempt, line FROM logs WHERE run_id = ?1 ORDER BY id DESC",
            )?;
            let mut rows = stmt.query([id])?;
            let (mut lines, mut bytes, mut cut_below) = (Vec::new(), 0, None);
            while let Some(r) = rows.next()? {
                let rowid: i64 = r.get(0)?;
                let line: String = r.get(4)?;
                if !lines.is_empty() && (lines.len() >= max_lines || bytes + line.len() > max_bytes)
                {
                    cut_below = Some(rowid + 1);
                    break;
                }
                bytes += line.len();
                lines.push(NewLog {
                    run_id: id.to_string(),
                    at: r.get(1)?,
                    step: r.get::<_, Option<i64>>(2)?.map(|s| s as usize),
                    attempt: r.get(3)?,
                    line,
                });
            }
            drop(rows);
            lines.reverse();
            let omitted: i64 = match cut_below {
                Some(below) => c
                    .prepare_cached("SELECT count(*) FROM logs WHERE run_id = ?1 AND id < ?2")?
                    .query_row(params![id, below], |r| r.get(0))?,
                None => 0,
            };
            Ok((lines, omitted as u64))
        })
    }
}

/// Does `at(seq)` at the row of run `id`, whichever kind of ID it has, and answers what it
/// found there. `at` must itself require the row's `id` (`WHERE seq = ?1 AND id = ?2`): an ID
/// minted here names its row, and that condition confirms it in the same lookup, so a read or
/// a write touches the row once. An older ID (or one whose row `at` found nothing in) is then
/// looked up in the legacy index.
fn at_run<T>(
    c: &Connection,
    id: &str,
    mut at: impl FnMut(i64) -> rusqlite::Result<Option<T>>,
) -> rusqlite::Result<Option<T>> {
    if let Some(seq) = ids::seq_of(id)
        && let Some(found) = at(seq)?
    {
        return Ok(Some(found));
    }
    let legacy: Option<i64> = c
        .prepare_cached(&format!(
            "SELECT seq FROM runs INDEXED BY runs_legacy_id WHERE id = ?1 AND seq < {LEGACY_SEQ_END}"
        ))?
        .query_row([id], |r| r.get(0))
        .optional()?;
    legacy.map_or(Ok(None), at)
}

/// The row number of run `id`, whichever kind of ID it has.
fn locate(c: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    at_run(c, id, |seq| {
        c.prepare_cached("SELECT seq FROM runs WHERE seq = ?1 AND id = ?2")?
            .query_row(params![seq, id], |r| r.get(0))
            .optional()
    })
}

/// The highest `seq` the by-name index covers (see `writer::Names`).
fn by_name_through(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT value FROM meta WHERE key = 'by_name_through'",
        [],
        |r| r.get(0),
    )
}

fn query_runs(
    c: &Connection,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
) -> rusqlite::Result<Vec<RunRow>> {
    c.prepare_cached(sql)?
        .query_map(rusqlite::params_from_iter(args), run_row)?
        .collect()
}

fn run_row(r: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        kind: Kind::from_code(r.get(1)?),
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

#[cfg(test)]
mod tests;

//! Group commit: one thread owns the write connection, drains every write that is waiting into
//! one transaction, commits (one fsync), and only then answers each caller. That is how a 200
//! can mean "on disk" without paying an fsync per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::{NewLog, NewRun, StepWrite, at_run, by_name_through};
use crate::api::RunStatus;
use crate::engine::notify::Notifier;

/// The most writes one transaction takes, so one commit never holds callers for long.
const MAX_BATCH: usize = 4096;

/// Names the writer indexes at a time when nothing is waiting for it (the gap between a commit
/// and the next request), so that the index work fills time the writer would idle.
const NAMES_SLICE: usize = 256;

/// New runs the by-name index may fall behind by before the writer indexes some even though
/// writes are waiting. Listing by name scans these, so this bounds that scan.
const NAMES_BEHIND_MAX: usize = 4096;

/// How long the writer must have nothing to do before it indexes the names of fewer runs.
const IDLE: Duration = Duration::from_millis(20);

/// The pause after a failed catch-up, doubling up to the most.
const NAMES_RETRY_FIRST: Duration = Duration::from_secs(1);
const NAMES_RETRY_MAX: Duration = Duration::from_secs(60);

/// A write. Each changes at most one run, and the run's waiters are woken after the commit.
#[derive(Debug, Clone)]
pub enum Op {
    /// A new run; `seq` and `id` come from the store's [`super::ids::Mint`].
    Insert {
        seq: i64,
        id: String,
        run: NewRun,
    },
    /// queued -> running for a new attempt; `wake_at` is the sleep agent's stored timer, or the
    /// end of a command agent's pause before its next attempt, when `error` says why the last
    /// one failed (kept through the next attempt, until the run ends).
    Start {
        id: String,
        attempt: u32,
        at: i64,
        wake_at: Option<i64>,
        error: Option<String>,
    },
    /// Back to queued: an attempt that a graceful shutdown's kill cut short, to run again at
    /// the next start.
    Requeue {
        id: String,
        attempt: u32,
    },
    /// The first terminal write wins: a finish after a cancel changes nothing (answers false).
    Finish {
        id: String,
        status: RunStatus,
        output: Option<String>,
        error: Option<String>,
        at: i64,
        canceled: bool,
        /// Workflow steps written with the end: the last step, and any instant steps before it
        /// that were not written on their own.
        steps: Vec<StepWrite>,
    },
    /// Workflow steps' new states, in order (never empty); the first write of a step also
    /// marks the workflow running.
    Steps(Vec<StepWrite>),
    Logs(Vec<NewLog>),
}

impl Op {
    fn run_id(&self) -> Option<&str> {
        match self {
            Op::Insert { id, .. }
            | Op::Start { id, .. }
            | Op::Requeue { id, .. }
            | Op::Finish { id, .. } => Some(id),
            Op::Steps(s) => s.first().map(|s| s.run_id.as_str()),
            Op::Logs(_) => None,
        }
    }
}

pub struct Job {
    pub op: Op,
    /// `Ok(true)` when the write changed something; `None` for fire-and-forget writes (logs).
    pub reply: Option<oneshot::Sender<Result<bool, String>>>,
}

/// When the last group commit failed, if it did: while writes fail (a full disk), `/health`
/// says so instead of "ok".
#[derive(Default)]
pub struct Commits {
    /// 0 while the last commit succeeded; else 1 + when it failed, on a clock of the process's
    /// own (ms since its first use), which a clock stepped back cannot move.
    failed_at: AtomicU64,
}

/// How long after a failed commit, with none good since, the engine counts as failing.
const FAILING_FOR_MS: u64 = 60_000;

fn ms_since_start() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Commits {
    fn record(&self, ok: bool) {
        if !ok {
            self.failed_at
                .store(ms_since_start() + 1, Ordering::Relaxed);
        } else if self.failed_at.load(Ordering::Relaxed) != 0 {
            self.failed_at.store(0, Ordering::Relaxed);
        }
    }

    /// The last commit failed, and not long ago (with no writes since, a disk that has room
    /// again would otherwise keep the engine "failing" for good).
    pub fn failing(&self) -> bool {
        match self.failed_at.load(Ordering::Relaxed) {
            0 => false,
            at => (ms_since_start() + 1).saturating_sub(at) < FAILING_FOR_MS,
        }
    }
}

pub fn run(
    mut conn: Connection,
    rx: Receiver<Job>,
    notifier: Arc<Notifier>,
    commits: Arc<Commits>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(256);
    let mut results: Vec<Result<bool, String>> = Vec::with_capacity(256);
    let mut names = match Names::load(&conn) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("cannot read the by-name index's watermark: {e}");
            return;
        }
    };
    loop {
        // A job the gap check below took is already in `batch`.
        let first = if !batch.is_empty() {
            Ok(None)
        } else if names.behind == 0 {
            rx.recv()
                .map(Some)
                .map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            rx.recv_timeout(names.idle()).map(Some)
        };
        match first {
            Ok(job) => batch.extend(job),
            Err(RecvTimeoutError::Timeout) => {
                names.catch_up(&mut conn, NAMES_BEHIND_MAX);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Every sender is gone: the engine has stopped. Leave the index whole.
                while names.behind > 0 && names.catch_up(&mut conn, NAMES_BEHIND_MAX) {}
                return;
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        results.clear();
        let inserts = batch
            .iter()
            .filter(|j| matches!(j.op, Op::Insert { .. }))
            .count();
        let committed = (|| -> rusqlite::Result<()> {
            let tx = begin(&mut conn)?;
            for job in &batch {
                results.push(apply_whole(&tx, &job.op)?.map_err(|e| e.to_string()));
            }
            tx.commit()
        })();
        if let Err(e) = &committed {
            tracing::error!("commit of {} writes failed: {e}", batch.len());
        }
        commits.record(committed.is_ok());
        for (job, result) in batch
            .drain(..)
            .zip(results.drain(..).chain(std::iter::repeat(Ok(false))))
        {
            let result = match &committed {
                Ok(()) => result,
                Err(e) => Err(format!("commit failed: {e}")),
            };
            if let Some(id) = job.op.run_id() {
                notifier.notify(id);
            }
            if let Some(reply) = job.reply {
                let _ = reply.send(result);
            }
        }
        if committed.is_ok() {
            names.behind += inserts;
        }
        if names.behind >= NAMES_BEHIND_MAX {
            names.catch_up(&mut conn, NAMES_SLICE);
        } else if names.behind >= NAMES_SLICE {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => {
                    names.catch_up(&mut conn, NAMES_SLICE);
                }
            }
        }
    }
}

/// The by-name index (`runs_by_name`) is filled behind the commits, many runs to a
/// transaction, rather than inside each group commit, where its B-tree cost a tenth of the
/// schedule throughput. `meta.by_name_through` is the highest `seq` it covers; a listing reads
/// the index up to there and scans the table above it. Runs are committed in `seq` order (see
/// `Store::send_with`), so nothing is ever left below the watermark.
struct Names {
    /// The connection's own `synchronous` setting, restored after each catch-up.
    synchronous: i64,
    through: i64,
    /// New runs above `through`, as far as this writer knows.
    behind: usize,
    /// After a failed catch-up (a full disk): when to try again, and the pause after that.
    retry_at: Option<Instant>,
    pause: Duration,
}

impl Names {
    fn load(conn: &Connection) -> rusqlite::Result<Names> {
        let through = by_name_through(conn)?;
        let behind: i64 =
            conn.query_row("SELECT count(*) FROM runs WHERE seq > ?1", [through], |r| {
                r.get(0)
            })?;
        Ok(Names {
            synchronous: conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
            through,
            behind: behind as usize,
            retry_at: None,
            pause: Duration::ZERO,
        })
    }

    /// How long the writer waits for work before indexing: [`IDLE`], or longer while a
    /// failed catch-up backs off.
    fn idle(&self) -> Duration {
        self.retry_at.map_or(IDLE, |t| {
            t.saturating_duration_since(Instant::now()).max(IDLE)
        })
    }

    /// Indexes the names of up to `limit` runs in one transaction. `false` when it could not
    /// (it is tried again later; listings stay correct meanwhile, only slower).
    ///
    /// The transaction is not synced: the index can be rebuilt from the table, and the
    /// watermark moves in the same transaction, so a crash can only leave the index behind,
    /// never wrong. (WAL with `synchronous = NORMAL` still keeps the file intact, and the next
    /// group commit's sync makes these pages durable too.)
    fn catch_up(&mut self, conn: &mut Connection, limit: usize) -> bool {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        let result = (|| -> rusqlite::Result<(i64, usize)> {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let tx = begin(conn)?;
            // Two statements that stay inside SQLite take about half the time of fetching each
            // row into Rust and inserting it back (~1.8 against ~3.5 us a run under wrk POST on
            // the benchmark's VM). The slice is measured first because the insert's change
            // count leaves out rows it ignored, and the watermark must pass those too.
            let (n, last): (i64, Option<i64>) = tx
                .prepare_cached(
                    "SELECT count(*), max(seq) FROM
                       (SELECT seq FROM runs WHERE seq > ?1 ORDER BY seq LIMIT ?2)",
                )?
                .query_row(params![self.through, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            let (n, last) = (n as usize, last.unwrap_or(self.through));
            tx.prepare_cached(
                "INSERT OR IGNORE INTO runs_by_name (name, seq, kind)
                 SELECT name, seq, kind FROM runs WHERE seq > ?1 AND seq <= ?2",
            )?
            .execute(params![self.through, last])?;
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'by_name_through'")?
                .execute([last])?;
            tx.commit()?;
            Ok((last, n))
        })();
        if let Err(e) = conn.pragma_update(None, "synchronous", self.synchronous) {
            tracing::error!("cannot restore synchronous = {}: {e}", self.synchronous);
        }
        match result {
            Ok((last, n)) => {
                (self.retry_at, self.pause) = (None, Duration::ZERO);
                self.through = last;
                self.behind = if n < limit {
                    0
                } else {
                    self.behind.saturating_sub(n).max(1)
                };
                true
            }
            Err(e) => {
                // Not again at once: on a full disk every try fails, and each would log.
                self.pause = (self.pause * 2).clamp(NAMES_RETRY_FIRST, NAMES_RETRY_MAX);
                self.retry_at = Some(Instant::now() + self.pause);
                tracing::error!(
                    "indexing run names failed (listings scan more until it works): {e}; trying again in {}",
                    humantime::format_duration(self.pause)
                );
                false
            }
        }
    }
}

/// The writer's transactions take the write lock at `BEGIN`, waiting (busy timeout) for
/// anyone else who holds it. A deferred one would read first (updates find their run's row)
/// and then fail at once with "database is locked" if another connection had checkpointed the
/// WAL in between, failing the whole group commit.
fn begin(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// One write inside the open transaction. Public so that the benchmark's commit-cost replay
/// (`loadgen commit`) runs exactly these statements at batch sizes it chooses.
pub fn apply(tx: &Transaction, op: &Op) -> rusqlite::Result<bool> {
    let n = match op {
        Op::Insert { seq, id, run: r } => {
            let (status, ended) = match r.output {
                Some(_) => (RunStatus::Completed, Some(r.created_at)),
                None => (RunStatus::Queued, None),
            };
            tx.prepare_cached(
                "INSERT INTO runs (seq, id, kind, name, status, input, output, created_at, started_at, completed_at)
                 VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                id,
                r.kind.code(),
                r.name,
                status.code(),
                r.input,
                r.output,
                r.created_at,
                ended,
                seq
            ])?
        }
        Op::Start {
            id,
            attempt,
            at,
            wake_at,
            error,
        } => update(tx, id, |seq| {
            tx.prepare_cached(
                "UPDATE runs SET status = 1, attempt = ?3, started_at = coalesce(started_at, ?4), wake_at = ?5,
                    error = coalesce(?6, error)
                 WHERE seq = ?1 AND id = ?2 AND status < 2",
            )?
            .execute(params![seq, id, attempt, at, wake_at, error])
        })?,
        Op::Requeue { id, attempt } => update(tx, id, |seq| {
            tx.prepare_cached(
                // Back to no attempt at all: no start time either, as a run never begun.
                "UPDATE runs SET status = 0, attempt = ?3, wake_at = NULL,
                    started_at = CASE WHEN ?3 = 0 THEN NULL ELSE started_at END
                 WHERE seq = ?1 AND id = ?2 AND status < 2",
            )?
            .execute(params![seq, id, attempt])
        })?,
        Op::Finish {
            id,
            status,
            output,
            error,
            at,
            canceled,
            steps,
        } => {
            // A run that started has its start written already (`Op::Start`, or its steps); one
            // that ends without is either an instant `echo` run, which completes as it starts,
            // or a run that never started (canceled while queued, its agent gone at a restart).
            let started = first_start(steps).or((*status == RunStatus::Completed).then_some(*at));
            let n = update(tx, id, |seq| {
                tx.prepare_cached(
                    "UPDATE runs SET status = ?3, output = ?4, error = ?5, completed_at = ?6,
                        started_at = coalesce(started_at, ?8), canceled = ?7
                     WHERE seq = ?1 AND id = ?2 AND status < 2",
                )?
                .execute(params![
                    seq,
                    id,
                    status.code(),
                    output,
                    error,
                    at,
                    canceled,
                    started
                ])
            })?;
            if n > 0 {
                for s in steps {
                    write_step(tx, s)?;
                }
            }
            // A canceled workflow's unfinished step ends with it, so its status shows no step
            // still running.
            if n > 0 && *canceled {
                tx.prepare_cached(
                    "UPDATE steps SET status = 3, error = 'canceled', completed_at = ?2
                     WHERE run_id = ?1 AND status < 2",
                )?
                .execute(params![id, at])?;
            }
            n
        }
        Op::Steps(steps) => {
            let Some(run_id) = steps.first().map(|s| &s.run_id) else {
                return Ok(false);
            };
            // A step that starts a sleep also marks the run, so that a restart finds it asleep
            // without reading its steps; the workflow's next step write clears it (a clock set
            // back must not make an old sleep look current).
            let asleep_until = steps
                .iter()
                .filter(|s| s.status == RunStatus::Running)
                .find_map(|s| s.wake_at);
            let n = update(tx, run_id, |seq| {
                tx.prepare_cached(
                    "UPDATE runs SET status = 1, started_at = coalesce(started_at, ?3),
                        wake_at = ?4
                     WHERE seq = ?1 AND id = ?2 AND status < 2",
                )?
                .execute(params![seq, run_id, first_start(steps), asleep_until])
            })?;
            if n > 0 {
                for s in steps {
                    write_step(tx, s)?;
                }
            }
            n
        }
        Op::Logs(lines) => {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO logs (run_id, at, step, attempt, line) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for l in lines {
                stmt.execute(params![l.run_id, l.at, l.step, l.attempt, l.line])?;
            }
            lines.len()
        }
    };
    Ok(n > 0)
}

/// [`apply`], all or nothing. A write of several statements that fails part way (a run's end
/// whose step rows cannot be written) is undone to where it began; else the run would stay
/// ended without its steps, and the executor's retry of the write would change nothing.
///
/// `Ok(Err(e))`: this write failed and left nothing behind. `Err(e)`: the transaction cannot
/// go on. Some failures (a full disk, an I/O error) roll the whole of it back, and the writes
/// after them would each commit on their own while their callers hear of an error; so the
/// batch ends there and fails as one.
fn apply_whole(tx: &Transaction, op: &Op) -> rusqlite::Result<rusqlite::Result<bool>> {
    // One statement each, which SQLite already applies whole (an agent's run ends alone, and
    // its log lines come one at a time, as they are read).
    let single = match op {
        Op::Insert { .. } | Op::Start { .. } | Op::Requeue { .. } => true,
        Op::Logs(lines) => lines.len() == 1,
        Op::Finish {
            steps, canceled, ..
        } => steps.is_empty() && !canceled,
        Op::Steps(_) => false,
    };
    if !single {
        tx.prepare_cached("SAVEPOINT write")?.execute([])?;
    }
    let result = apply(tx, op);
    if result.is_err() && tx.is_autocommit() {
        return result.map(Ok);
    }
    if !single {
        match result {
            Ok(_) => tx.prepare_cached("RELEASE write")?.execute([]).map(drop)?,
            Err(_) => tx.execute_batch("ROLLBACK TO write; RELEASE write")?,
        }
    }
    Ok(result)
}

/// Runs `set(seq)`, an `UPDATE` of one row that also requires its `id` (see [`at_run`]), on
/// run `id`'s row; answers the rows it changed, 0 when the run is unknown or already ended.
fn update(
    tx: &Transaction,
    id: &str,
    mut set: impl FnMut(i64) -> rusqlite::Result<usize>,
) -> rusqlite::Result<usize> {
    Ok(at_run(tx, id, |seq| Ok(Some(set(seq)?).filter(|&n| n > 0)))?.unwrap_or(0))
}

/// When the first of these steps began: a workflow started with its first step.
fn first_start(steps: &[StepWrite]) -> Option<i64> {
    steps.first().and_then(|s| s.started_at.or(s.completed_at))
}

fn write_step(tx: &Transaction, s: &StepWrite) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        // A step started once: later attempts keep its first start, and its definition as it
        // began (a sleep lengthened since still shows the length it slept; a row an older
        // build wrote keeps none rather than take today's). While it runs, it keeps the
        // error of its last failed attempt until another replaces it.
        "INSERT INTO steps (run_id, idx, status, output, error, started_at, completed_at, wake_at, attempt,
                            step)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (run_id, idx) DO UPDATE SET status = excluded.status,
            output = excluded.output,
            error = CASE WHEN excluded.status = 1 THEN coalesce(excluded.error, steps.error)
                         ELSE excluded.error END,
            started_at = coalesce(steps.started_at, excluded.started_at),
            completed_at = excluded.completed_at, wake_at = excluded.wake_at,
            attempt = excluded.attempt",
    )?
    .execute(params![
        s.run_id,
        s.idx as i64,
        s.status.code(),
        s.output,
        s.error,
        s.started_at,
        s.completed_at,
        s.wake_at,
        s.attempt,
        s.step
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a full disk every catch-up fails; the writer must not try (and log) again at each
    /// idle moment, 50 times a second, but back off.
    #[test]
    fn a_failed_catch_up_backs_off() {
        // No `runs` table at all: every catch-up fails, as on a full disk.
        let mut conn = Connection::open_in_memory().unwrap();
        let mut names = Names {
            synchronous: 2,
            through: 0,
            behind: 1,
            retry_at: None,
            pause: Duration::ZERO,
        };
        assert!(!names.catch_up(&mut conn, NAMES_SLICE));
        assert_eq!(names.pause, NAMES_RETRY_FIRST);
        let retry_at = names.retry_at.expect("a time to try again");
        assert!(names.idle() > IDLE, "the idle wait stretches to the retry");
        // Not tried again before then: the pause does not grow.
        assert!(!names.catch_up(&mut conn, NAMES_SLICE));
        assert_eq!(names.pause, NAMES_RETRY_FIRST);
        assert_eq!(names.retry_at, Some(retry_at));
    }
}

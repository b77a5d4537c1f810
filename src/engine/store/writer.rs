//! Group commit: one thread owns the write connection, drains every write that is waiting into
//! one transaction, commits (one fsync), and only then answers each caller. That is how a 200
//! can mean "on disk" without paying an fsync per request.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use rusqlite::{Connection, Transaction, params};
use tokio::sync::oneshot;

use super::{NewLog, NewRun, StepWrite};
use crate::api::RunStatus;
use crate::engine::notify::Notifier;

/// The most writes one transaction takes, so one commit never holds callers for long.
const MAX_BATCH: usize = 4096;

/// A write. Each changes at most one run, and the run's waiters are woken after the commit.
#[derive(Debug)]
pub enum Op {
    Insert(NewRun),
    /// queued -> running for a new attempt; `wake_at` is the sleep agent's stored timer.
    Start {
        id: String,
        attempt: u32,
        at: i64,
        wake_at: Option<i64>,
    },
    /// Back to queued (graceful shutdown, or a retry that waits for a slot).
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
        step: Option<StepWrite>,
    },
    /// A workflow step's new state; the first one also marks the workflow running.
    Step(StepWrite),
    Logs(Vec<NewLog>),
}

impl Op {
    fn run_id(&self) -> Option<&str> {
        match self {
            Op::Insert(r) => Some(&r.id),
            Op::Start { id, .. } | Op::Requeue { id, .. } | Op::Finish { id, .. } => Some(id),
            Op::Step(s) => Some(&s.run_id),
            Op::Logs(_) => None,
        }
    }
}

pub struct Job {
    pub op: Op,
    /// `Ok(true)` when the write changed something; `None` for fire-and-forget writes (logs).
    pub reply: Option<oneshot::Sender<Result<bool, String>>>,
}

pub fn run(mut conn: Connection, rx: Receiver<Job>, notifier: Arc<Notifier>) {
    let mut batch: Vec<Job> = Vec::with_capacity(256);
    let mut results: Vec<Result<bool, String>> = Vec::with_capacity(256);
    loop {
        match rx.recv() {
            Ok(job) => batch.push(job),
            Err(_) => return, // every sender is gone: the engine has stopped
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        results.clear();
        let committed = (|| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            for job in &batch {
                results.push(apply(&tx, &job.op).map_err(|e| e.to_string()));
            }
            tx.commit()
        })();
        if let Err(e) = &committed {
            tracing::error!("commit of {} writes failed: {e}", batch.len());
        }
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
    }
}

/// One write inside the open transaction. Public so that the benchmark's commit-cost replay
/// (`loadgen commit`) runs exactly these statements at batch sizes it chooses.
pub fn apply(tx: &Transaction, op: &Op) -> rusqlite::Result<bool> {
    let n = match op {
        Op::Insert(r) => {
            let (status, ended) = match r.output {
                Some(_) => (RunStatus::Completed, Some(r.created_at)),
                None => (RunStatus::Queued, None),
            };
            tx.prepare_cached(
                "INSERT INTO runs (id, kind, name, status, input, output, created_at, started_at, completed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
            )?
            .execute(params![
                r.id,
                r.kind as i64,
                r.name,
                status.code(),
                r.input,
                r.output,
                r.created_at,
                ended
            ])?
        }
        Op::Start {
            id,
            attempt,
            at,
            wake_at,
        } => tx
            .prepare_cached(
                "UPDATE runs SET status = 1, attempt = ?2, started_at = coalesce(started_at, ?3), wake_at = ?4
                 WHERE id = ?1 AND status < 2",
            )?
            .execute(params![id, attempt, at, wake_at])?,
        Op::Requeue { id, attempt } => tx
            .prepare_cached("UPDATE runs SET status = 0, attempt = ?2, wake_at = NULL WHERE id = ?1 AND status < 2")?
            .execute(params![id, attempt])?,
        Op::Finish {
            id,
            status,
            output,
            error,
            at,
            canceled,
            step,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE runs SET status = ?2, output = ?3, error = ?4, completed_at = ?5,
                        started_at = coalesce(started_at, ?5), canceled = ?6
                     WHERE id = ?1 AND status < 2",
                )?
                .execute(params![id, status.code(), output, error, at, canceled])?;
            if n > 0
                && let Some(s) = step
            {
                write_step(tx, s)?;
            }
            n
        }
        Op::Step(s) => {
            let n = tx
                .prepare_cached(
                    "UPDATE runs SET status = 1, started_at = coalesce(started_at, ?2) WHERE id = ?1 AND status < 2",
                )?
                .execute(params![s.run_id, s.started_at.or(s.completed_at)])?;
            if n > 0 {
                write_step(tx, s)?;
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

fn write_step(tx: &Transaction, s: &StepWrite) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO steps (run_id, idx, status, output, error, started_at, completed_at, wake_at, attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
        s.attempt
    ])
}

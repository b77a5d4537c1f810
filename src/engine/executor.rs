//! Runs what is scheduled: one task per run (a long queue of a command agent's runs or of a
//! workflow's waits in the store, see `backlog`; a run asleep for long waits in `timers`),
//! concurrency slots for agent processes, retries with back-off, durable timers, cancel,
//! recovery at start and a graceful stop.
//!
//! Every state change is written (and committed) before the next thing happens, so whatever
//! point the engine dies at, the store says where to pick up: a queued run is dispatched again, a
//! workflow resumes at its first unfinished step, a timer keeps its stored wake-up time. (An
//! `echo` step's end rides with the workflow's next write: recomputing it changes nothing.)

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::backlog::Backlog;
use super::catalog::{AgentDef, AgentImpl, Catalog, StepDef, WorkflowDef};
use super::process::{self, Invocation, Outcome};
use super::store::{NewLog, Op, RunRow, StepWrite, Store};
use super::timers::Timers;
use crate::api::{Kind, RunStatus, now_ms};

/// Why an agent found running at start-up, with no attempts left, failed.
const INTERRUPTED: &str = "interrupted by engine restart";
/// Restarts that cut a workflow's step short which it survives beyond its retries.
const STEP_RESTARTS_SPARED: u32 = 3;

/// A sleep with more than this left (ms) gives its task up and waits in [`Timers`]; a shorter
/// one is not worth the store read that wakes it.
const SLEEP_IN_TASK_AT_MOST_MS: i64 = 1_000;
/// The longest pause between tries to start an agent while the engine is short of resources.
const BUSY_AT_MOST: Duration = Duration::from_secs(30);
/// The longest back-off between a failed attempt and its retry (0.5 s doubling up to it).
const BACKOFF_AT_MOST: Duration = Duration::from_secs(32);

/// A run handed to a driver: fresh from a schedule call, or found unfinished at start-up.
#[derive(Debug, Clone)]
pub struct ActiveRun {
    pub id: String,
    pub kind: Kind,
    pub name: String,
    pub input: Value,
    pub status: RunStatus,
    /// Attempts already started.
    pub attempt: u32,
    pub wake_at: Option<i64>,
    /// Read back from the store after it had started: its stored steps must be read before
    /// resuming. (A queued run has none: a workflow's first step write also marks it running.)
    pub recovered: bool,
}

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    catalog: Arc<Catalog>,
    /// Bounds agent processes across the engine (`max_concurrency`).
    global: Arc<Semaphore>,
    /// Cancel handles of runs being driven.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Fired at shutdown: no new attempt starts, timers and back-offs give up (they resume later).
    stopping: CancellationToken,
    /// Fired when the grace period is over: running processes are killed.
    kill: CancellationToken,
    tracker: TaskTracker,
    enabled: bool,
    /// Which runs of each command agent and workflow drivers hold; the rest of a long queue
    /// waits in the store.
    backlog: Backlog,
    /// Runs asleep without a task, and whether the task that wakes them has started.
    timers: Timers,
    timers_kept: AtomicBool,
}

/// How an agent invocation ended, from the driver's point of view.
enum Step {
    Done(Value),
    Failed(String),
    /// Canceled by a user or interrupted by shutdown: the driver writes nothing more (the cancel
    /// wrote the run's end; a shutdown's kill requeued the attempt before returning this).
    Stopped,
    /// Asleep until this time (ms), which is stored: the driver ends, and the run is driven
    /// again from the store when it falls due.
    Asleep(i64),
}

/// Where an attempt's state is recorded: the run itself, or one step of a workflow.
#[derive(Clone, Copy)]
enum Slot<'a> {
    Run(&'a str),
    /// A workflow's step: the run, the step's index and its definition (`agent NAME`).
    Step(&'a str, usize, &'a str),
}

impl Slot<'_> {
    fn run_id(&self) -> &str {
        match self {
            Slot::Run(id) | Slot::Step(id, _, _) => id,
        }
    }
    fn step(&self) -> Option<usize> {
        match self {
            Slot::Run(_) => None,
            Slot::Step(_, i, _) => Some(*i),
        }
    }
}

impl Executor {
    /// `enabled = false` gives an executor that runs nothing: the embedded engine of a read-only
    /// command uses it so that it never starts (and then abandons) work.
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        max_concurrency: usize,
        workflows_in_memory: usize,
        enabled: bool,
    ) -> Executor {
        Executor {
            inner: Arc::new(Inner {
                store,
                backlog: Backlog::for_catalog(&catalog, max_concurrency, workflows_in_memory),
                catalog,
                global: Arc::new(Semaphore::new(max_concurrency)),
                running: Mutex::new(HashMap::new()),
                stopping: CancellationToken::new(),
                kill: CancellationToken::new(),
                tracker: TaskTracker::new(),
                enabled,
                timers: Timers::default(),
                timers_kept: AtomicBool::new(false),
            }),
        }
    }

    /// False for the executor of a read-only embedded engine, which runs nothing.
    pub fn executes(&self) -> bool {
        self.inner.enabled
    }

    pub fn dispatch(&self, run: ActiveRun) {
        if !self.inner.enabled || self.inner.stopping.is_cancelled() {
            return;
        }
        let backlogged = self.inner.catalog.queues_in_store(run.kind, &run.name);
        if backlogged && !self.inner.backlog.admit(run.kind, &run.name, &run.id) {
            return;
        }
        self.inner.spawn(run, backlogged);
    }

    /// Kills the run's process, if any, or forgets it asleep. The caller has already written
    /// the run's end.
    pub fn cancel(&self, kind: Kind, name: &str, id: &str) {
        if self.inner.timers.remove(id) && self.inner.catalog.queues_in_store(kind, name) {
            self.inner.backlog.forget(kind, name, id);
        }
        if let Some(t) = self
            .inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            t.cancel();
        }
    }

    /// Picks up every unfinished run. Returns how many were resumed and how many failed.
    pub async fn recover(&self) -> Result<(usize, usize)> {
        if !self.inner.enabled {
            return Ok((0, 0));
        }
        let store = &self.inner.store;
        let running = store.running_runs()?;
        // A run asleep (its wake-up time is set only while it sleeps, however long ago that
        // ended) had no agent running: what its earlier steps left is theirs. A command
        // agent's run with a wake-up time is in a retry's back-off: what its failed attempt
        // may have left (a process that escaped the last sweep) goes, as for a running one.
        let catalog = &self.inner.catalog;
        let ids: HashSet<&str> = running
            .iter()
            .filter(|r| {
                r.wake_at.is_none() || r.kind == Kind::Agent && catalog.is_command_agent(&r.name)
            })
            .map(|r| r.id.as_str())
            .collect();
        let killed = process::kill_leftovers(&ids, store.path());
        if killed > 0 {
            tracing::warn!(
                "stopped {killed} processes left running by agents of the previous engine"
            );
        }
        // The running runs, and the queued runs of built-in agents, are all listed before any
        // starts, so a failed listing stops the start-up with nothing half begun. A running run
        // is then read whole as it is driven, as when it wakes (a failed read is retried a
        // second later). The queues of command agents and workflows are read back a batch at a
        // time, as while serving.
        let mut rows = running;
        let mut queues = Vec::new();
        for (kind, name) in store.queued_names()? {
            if self.inner.catalog.queues_in_store(kind, &name) {
                queues.push((kind, name));
            } else {
                rows.extend(store.queued_runs(kind, &name, None)?);
            }
        }
        let (mut resumed, mut failed) = (0, 0);
        for row in rows {
            match self.inner.recovery_verdict(&row) {
                Ok(()) => {
                    resumed += 1;
                    let (kind, name) = (row.kind, row.name.as_str());
                    let backlogged = self.inner.catalog.queues_in_store(kind, name);
                    if let Some(wake_at) = row
                        .wake_at
                        .filter(|w| *w - now_ms() > SLEEP_IN_TASK_AT_MOST_MS)
                    {
                        // Asleep still (a `sleep` agent run, or a workflow in a sleep): nothing
                        // to drive until it wakes, and no place to hold.
                        self.inner.sleep_without_task(wake_at, kind, name, &row.id);
                        continue;
                    }
                    if row.status == RunStatus::Queued {
                        // A built-in agent's, read whole.
                        self.inner.spawn(active_from_row(row), backlogged);
                    } else {
                        // A run that was under way takes its place again as if woken, so no
                        // more start at once than while serving; one without room waits for
                        // it, a run ID in memory.
                        self.inner.wake(kind, name, &row.id);
                    }
                }
                Err(why) => {
                    failed += 1;
                    // On a task of its own, like every other write that must land: it retries
                    // until it commits or the engine stops, without holding up the start.
                    let inner = self.inner.clone();
                    self.inner.tracker.spawn(async move {
                        inner.finish(&row.id, Err(why), Vec::new()).await;
                    });
                }
            }
        }
        for (kind, name) in queues {
            self.inner.backlog.fall_behind(kind, &name);
            let started = self.inner.refill(kind, &name);
            resumed += started;
            if self.inner.backlog.is_behind(kind, &name) {
                // Counted for the banner, so that no run seems lost: one pass over the index.
                // Runs have started by now, so a failed count is only said, not a failed start.
                match store.count_queued(kind, &name) {
                    Ok(n) => {
                        let waiting = n.saturating_sub(started);
                        resumed += waiting;
                        tracing::info!(
                            "{kind} `{name}`: {waiting} queued runs wait in the store and start as others end"
                        );
                    }
                    Err(e) => {
                        tracing::warn!("{kind} `{name}`: cannot count its queued runs: {e:#}")
                    }
                }
            }
        }
        Ok((resumed, failed))
    }

    /// Stops starting work, lets running agents finish within `grace`, then kills the rest;
    /// what was cut short is left to resume at the next start.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stopping.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("grace period over; stopping the agents still running");
            self.inner.kill.cancel();
            self.inner.tracker.wait().await;
        }
    }
}

/// Whether an agent run's attempt that a restart cut short may not be retried: built-ins
/// always resume (they have no process to lose), command agents while retries are left.
/// (A workflow's step always runs again: the workflow resumes.)
fn out_of_attempts(agent: &AgentDef, attempts: u32) -> bool {
    agent.is_command() && attempts > agent.retries
}

/// From a row read whole: never one of [`Store::running_runs`], which leave the input out.
fn active_from_row(row: RunRow) -> ActiveRun {
    debug_assert!(
        !row.input.is_empty(),
        "run {} read without its input",
        row.id
    );
    ActiveRun {
        input: serde_json::from_str(&row.input).unwrap_or_else(|_| json!({})),
        id: row.id,
        kind: row.kind,
        name: row.name,
        status: row.status,
        attempt: row.attempt,
        wake_at: row.wake_at,
        recovered: row.status != RunStatus::Queued,
    }
}

impl Inner {
    /// Drives the run on a task of its own; a `backlogged` run (a command agent's or a
    /// workflow's, held by [`Backlog`]) gives its place back at the end, or when it falls
    /// asleep, and the next runs of its name start.
    fn spawn(self: &Arc<Self>, run: ActiveRun, backlogged: bool) {
        let inner = self.clone();
        let token = inner.kill.child_token();
        inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.id.clone(), token.clone());
        self.tracker.spawn(async move {
            let (id, kind, name) = (run.id.clone(), run.kind, run.name.clone());
            let asleep = match kind {
                Kind::Agent => inner.drive_agent(run, &token).await,
                Kind::Workflow => inner.drive_workflow(run, &token).await,
            };
            inner
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            // Canceled on its way to sleep (after the sleep's start was written, before this):
            // nothing is left to wake.
            match asleep.filter(|_| !token.is_cancelled()) {
                Some(wake_at) => inner.sleep_without_task(wake_at, kind, &name, &id),
                None if backlogged => inner.backlog.release(kind, &name, &id),
                None => {}
            }
            if backlogged {
                inner.fill_places(kind, &name);
            }
        });
    }

    /// Gives the free places of a backlogged name out: to woken runs that wait for room
    /// first, then to more of the queue, read back from the store.
    fn fill_places(self: &Arc<Self>, kind: Kind, name: &str) {
        while let Some(next) = self.backlog.next_woken(kind, name) {
            self.drive_held(kind, name, &next);
        }
        if self.backlog.wants_refill(kind, name) && !self.stopping.is_cancelled() {
            self.refill(kind, name);
        }
    }

    /// Leaves run `id` asleep until `wake_at` (already stored) without a task, and without the
    /// place its driver held.
    fn sleep_without_task(self: &Arc<Self>, wake_at: i64, kind: Kind, name: &str, id: &str) {
        if self.catalog.queues_in_store(kind, name) {
            self.backlog.fall_asleep(kind, name, id);
        }
        self.timers.set(wake_at, kind, name, id);
        if !self.timers_kept.swap(true, Ordering::AcqRel) {
            self.tracker.spawn(self.clone().keep_timers());
        }
    }

    /// Wakes the runs asleep in [`Timers`] as they fall due, until the engine stops (their
    /// wake-up times are stored: the next start drives them again).
    async fn keep_timers(self: Arc<Self>) {
        loop {
            for (kind, name, id) in self.timers.take_due(now_ms()) {
                self.wake(kind, &name, &id);
            }
            // Looked at again at least hourly, so no wait is ever too long for the clock.
            let wait = self.timers.next().map_or(3_600_000, |at| {
                (at.saturating_sub(now_ms())).clamp(0, 3_600_000)
            });
            tokio::select! {
                biased;
                _ = self.stopping.cancelled() => return,
                _ = self.timers.sooner() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    }

    /// A run's sleep is over: it is driven again when there is room for it (a workflow's
    /// place), else it waits for a place to free up (see `fill_places`).
    fn wake(self: &Arc<Self>, kind: Kind, name: &str, id: &str) {
        let backlogged = self.catalog.queues_in_store(kind, name);
        if backlogged && !self.backlog.admit_woken(kind, name, id) {
            return;
        }
        if !self.drive_held(kind, name, id) && backlogged {
            self.fill_places(kind, name);
        }
    }

    /// Drives a woken run again from the store, as at start-up, on the place it holds (if its
    /// name has places). False when the place is free again: the run ended meanwhile
    /// (canceled), the engine is stopping, or the store could not be read (the run then sleeps
    /// another second).
    fn drive_held(self: &Arc<Self>, kind: Kind, name: &str, id: &str) -> bool {
        let backlogged = self.catalog.queues_in_store(kind, name);
        let row = if self.stopping.is_cancelled() {
            None
        } else {
            match self.store.get_run(id) {
                Ok(row) => row.filter(|r| !r.status.is_terminal()),
                Err(e) => {
                    tracing::error!(run = %id, "cannot read a run to wake it: {e:#}; retrying");
                    self.sleep_without_task(now_ms() + 1_000, kind, name, id);
                    return false;
                }
            }
        };
        match row {
            Some(row) => {
                self.spawn(active_from_row(row), backlogged);
                true
            }
            None => {
                if backlogged {
                    self.backlog.release(kind, name, id);
                }
                false
            }
        }
    }

    /// Reads the oldest queued runs of a command agent or a workflow back from the store and
    /// drives those that fit; answers how many. Runs a driver already holds are skipped. Reads
    /// again while the drivers it started have already finished, and when a read fails, tries
    /// again in a second: nothing else may be left to wake the queue.
    fn refill(self: &Arc<Self>, kind: Kind, name: &str) -> usize {
        let mut started = 0;
        while let Some(limit) = self.backlog.begin_refill(kind, name) {
            let rows = match self.store.queued_runs(kind, name, Some(limit)) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("cannot read the queue of {kind} `{name}`: {e:#}; retrying");
                    self.backlog.fall_behind(kind, name);
                    if self.backlog.start_retry(kind, name) {
                        let (inner, name) = (self.clone(), name.to_string());
                        self.tracker.spawn(async move {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                                    inner.backlog.end_retry(kind, &name);
                                    inner.refill(kind, &name);
                                }
                                _ = inner.stopping.cancelled() => {}
                            }
                        });
                    }
                    break;
                }
            };
            let more = rows.len() == limit;
            for row in rows {
                if self.backlog.admit(kind, name, &row.id) {
                    started += 1;
                    self.spawn(active_from_row(row), true);
                }
            }
            if more {
                // There may be more than one read holds.
                self.backlog.fall_behind(kind, name);
            }
            if !self.backlog.wants_refill(kind, name) || self.stopping.is_cancelled() {
                break;
            }
        }
        started
    }

    /// Whether a run found unfinished at start-up may go on, or why not.
    fn recovery_verdict(&self, row: &RunRow) -> Result<(), String> {
        match row.kind {
            Kind::Workflow if !self.catalog.workflows.contains_key(&row.name) => Err(format!(
                "workflow `{}` is not configured in this engine",
                row.name
            )),
            Kind::Workflow => Ok(()),
            Kind::Agent => {
                let Some(agent) = self.catalog.agents.get(&row.name) else {
                    return Err(format!(
                        "agent `{}` is not configured in this engine",
                        row.name
                    ));
                };
                if row.status == RunStatus::Running && out_of_attempts(agent, row.attempt) {
                    Err(INTERRUPTED.into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Drives an agent run to its end, or until it falls asleep (the time it wakes).
    async fn drive_agent(&self, mut run: ActiveRun, token: &CancellationToken) -> Option<i64> {
        let Some(agent) = self.catalog.agents.get(&run.name).cloned() else {
            self.finish(
                &run.id,
                Err(format!("agent `{}` is not configured", run.name)),
                Vec::new(),
            )
            .await;
            return None;
        };
        if run.recovered
            && run.status == RunStatus::Running
            && run.wake_at.is_none()
            && agent.is_command()
        {
            self.log_interrupted(Slot::Run(&run.id), run.attempt);
        }
        let result = self
            .invoke(
                &agent,
                Slot::Run(&run.id),
                &run.input,
                &mut run.attempt,
                run.wake_at,
                token,
            )
            .await;
        match result {
            Step::Done(output) => self.finish(&run.id, Ok(output), Vec::new()).await,
            Step::Failed(e) => self.finish(&run.id, Err(e), Vec::new()).await,
            Step::Stopped => {}
            Step::Asleep(wake_at) => return Some(wake_at),
        }
        None
    }

    /// Drives a workflow to its end, or until it falls asleep (the time it wakes).
    async fn drive_workflow(&self, run: ActiveRun, token: &CancellationToken) -> Option<i64> {
        let Some(wf) = self.catalog.workflows.get(&run.name).cloned() else {
            self.finish(
                &run.id,
                Err(format!("workflow `{}` is not configured", run.name)),
                Vec::new(),
            )
            .await;
            return None;
        };
        let stored = if run.recovered {
            match self.store.steps(&run.id) {
                Ok(s) => s,
                Err(e) => {
                    // Tried again in a second, as a run asleep: nothing else would drive it.
                    tracing::error!(run = %run.id, "cannot read steps: {e:#}; retrying");
                    return Some(now_ms() + 1_000);
                }
            }
        } else {
            Vec::new()
        };
        if let Some(why) = changed_under(&wf, &stored) {
            tracing::warn!(run = %run.id, "{why}");
            self.finish(&run.id, Err(why), Vec::new()).await;
            return None;
        }
        // Resume after the last completed step, with its stored output as the next input.
        let mut prev = run.input.clone();
        let mut first = 0;
        for s in &stored {
            if s.status == RunStatus::Completed && s.idx == first {
                prev = s
                    .output
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok())
                    .unwrap_or_else(|| json!({}));
                first = s.idx + 1;
            }
        }
        let n = wf.steps.len();
        // Completed `echo` steps not yet written. An echo's output is its input, which is
        // already stored (the workflow's input or the step before's output), so a crash before
        // they are written loses nothing that recovery would not recompute the same: they ride
        // with the workflow's next write instead of a commit (and an fsync) each. Any other
        // step's end is written before the workflow goes on, so its work is never redone.
        let mut carried: Vec<StepWrite> = Vec::new();
        for (idx, step) in wf.steps.iter().enumerate().skip(first) {
            if token.is_cancelled() || self.stopping.is_cancelled() {
                return None;
            }
            let label = step.describe();
            let instant = matches!(step, StepDef::Agent(name)
                if self.catalog.agents.get(name).is_some_and(|a| a.is_echo()));
            if !instant
                && !carried.is_empty()
                && !self.record(Op::Steps(std::mem::take(&mut carried))).await
            {
                return None;
            }
            let resume = stored
                .iter()
                .find(|s| s.idx == idx && !s.status.is_terminal());
            let started_at = resume.and_then(|s| s.started_at).unwrap_or_else(now_ms);
            // What the step's final write records: attempts made, and a sleep's wake-up time.
            let mut attempts = resume.map(|s| s.attempt).unwrap_or(0);
            let mut step_wake = None;
            // A step refused before it began (its input fails the agent's schema) never started.
            let mut refused = false;
            let result = match step {
                StepDef::Agent(name) => {
                    let Some(agent) = self.catalog.agents.get(name).cloned() else {
                        self.finish(
                            &run.id,
                            Err(format!(
                                "step {}: agent `{name}` is not configured",
                                idx + 1
                            )),
                            Vec::new(),
                        )
                        .await;
                        return None;
                    };
                    // A step cut short by a restart runs again even with its retries spent:
                    // the workflow resumes at its first unfinished step (DESIGN.md, Workflows).
                    // The cut attempt still counts, so a failure after it is final then; and
                    // past a few such restarts (a step that takes the engine down with it,
                    // under a supervisor that restarts it) the step fails.
                    let cut = resume
                        .is_some_and(|s| s.status == RunStatus::Running && s.wake_at.is_none());
                    if cut && out_of_attempts(&agent, attempts.saturating_sub(STEP_RESTARTS_SPARED))
                    {
                        self.log(
                            Slot::Step(&run.id, idx, &label),
                            attempts,
                            format!(
                                "attempt {attempts} {INTERRUPTED}; no restarts left for this step"
                            ),
                        );
                        Step::Failed(INTERRUPTED.into())
                    } else if let Err(e) = self.catalog.check_input(Kind::Agent, name, &prev) {
                        // Scheduling checked the workflow's input (against its own schema, or
                        // else its first step's); a step's input is the previous step's output.
                        refused = true;
                        Step::Failed(e)
                    } else {
                        let wake = resume.and_then(|s| s.wake_at);
                        if cut && agent.is_command() {
                            self.log_interrupted(Slot::Step(&run.id, idx, &label), attempts);
                        }
                        self.invoke(
                            &agent,
                            Slot::Step(&run.id, idx, &label),
                            &prev,
                            &mut attempts,
                            wake,
                            token,
                        )
                        .await
                    }
                }
                StepDef::Sleep(d) => {
                    let wake_at = match resume.and_then(|s| s.wake_at) {
                        Some(w) => w,
                        None => {
                            let w = started_at.saturating_add(d.as_millis() as i64);
                            let sw = step_write(
                                &run.id,
                                idx,
                                &label,
                                RunStatus::Running,
                                started_at,
                                Some(w),
                                0,
                            );
                            if !self.record(Op::Steps(vec![sw])).await {
                                return None;
                            }
                            w
                        }
                    };
                    step_wake = Some(wake_at);
                    if wake_at - now_ms() > SLEEP_IN_TASK_AT_MOST_MS {
                        Step::Asleep(wake_at)
                    } else if !self.sleep_until(wake_at, token).await {
                        return None;
                    } else {
                        Step::Done(prev.clone())
                    }
                }
            };
            match result {
                Step::Done(output) => {
                    let mut sw = step_write(
                        &run.id,
                        idx,
                        &label,
                        RunStatus::Completed,
                        started_at,
                        step_wake,
                        0,
                    );
                    sw.output = Some(output.to_string());
                    sw.completed_at = Some(now_ms());
                    sw.attempt = attempts.max(u32::from(matches!(step, StepDef::Agent(_))));
                    carried.push(sw);
                    if idx + 1 == n {
                        self.finish(&run.id, Ok(output), carried).await;
                        return None;
                    }
                    if !instant && !self.record(Op::Steps(std::mem::take(&mut carried))).await {
                        return None;
                    }
                    prev = output;
                }
                Step::Failed(e) => {
                    let mut sw = step_write(
                        &run.id,
                        idx,
                        &label,
                        RunStatus::Failed,
                        started_at,
                        None,
                        attempts,
                    );
                    if refused && resume.is_none() {
                        sw.started_at = None;
                    }
                    sw.error = Some(e.clone());
                    sw.completed_at = Some(now_ms());
                    let msg = format!("step {} ({label}) failed: {e}", idx + 1);
                    carried.push(sw);
                    self.finish(&run.id, Err(msg), carried).await;
                    return None;
                }
                Step::Stopped => return None,
                // Nothing is carried: a sleep is no `echo` step, so what was carried was
                // written before it began.
                Step::Asleep(wake_at) => return Some(wake_at),
            }
        }
        if first >= n {
            // Every step was done before a restart cut the final write short.
            self.finish(&run.id, Ok(prev), Vec::new()).await;
        }
        None
    }

    /// One agent invocation with its retries: built-ins in-process, command agents as child
    /// processes within their concurrency slots. `attempts` comes in as the attempts already
    /// made and goes out as the attempts made in all, for the caller's final write.
    async fn invoke(
        &self,
        agent: &AgentDef,
        slot: Slot<'_>,
        input: &Value,
        attempts: &mut u32,
        wake_at: Option<i64>,
        token: &CancellationToken,
    ) -> Step {
        match &agent.imp {
            AgentImpl::Echo => Step::Done(input.clone()),
            AgentImpl::Sleep => {
                let seconds = input.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                let wake_at = match wake_at {
                    Some(w) => w,
                    None => {
                        let now = now_ms();
                        let w = now + (seconds * 1000.0) as i64;
                        if !self.record_start(slot, 1, now, Some(w), None).await {
                            return Step::Stopped;
                        }
                        w
                    }
                };
                if wake_at - now_ms() > SLEEP_IN_TASK_AT_MOST_MS {
                    return Step::Asleep(wake_at);
                }
                if !self.sleep_until(wake_at, token).await {
                    return Step::Stopped;
                }
                Step::Done(
                    json!({ "sleptSeconds": input.get("seconds").cloned().unwrap_or(json!(0)) }),
                )
            }
            AgentImpl::Command(spec) => {
                // A retry's back-off (or a wait for resources) is stored before it begins, so
                // a restart during it waits out the rest instead of retrying at once.
                // Bounded by the longest such wait: a clock stepped back must not stretch it.
                let longest = BACKOFF_AT_MOST.max(BUSY_AT_MOST).as_millis() as i64;
                if let Some(retry_at) = wake_at
                    && !self
                        .sleep_until(retry_at.min(now_ms() + longest), token)
                        .await
                {
                    return Step::Stopped;
                }
                let mut attempt = *attempts;
                let mut short_for = Duration::ZERO;
                loop {
                    attempt += 1;
                    *attempts = attempt;
                    let Some(_permits) = self.acquire(agent, token).await else {
                        return Step::Stopped;
                    };
                    if !self.record_start(slot, attempt, now_ms(), None, None).await {
                        return Step::Stopped;
                    }
                    let store = self.store.clone();
                    let (run_id, step) = (slot.run_id().to_string(), slot.step());
                    let log = move |line: String| {
                        store.write_later(Op::Logs(vec![NewLog {
                            run_id: run_id.clone(),
                            at: now_ms(),
                            step,
                            attempt: Some(attempt),
                            line,
                        }]))
                    };
                    let inv = Invocation {
                        spec,
                        agent: &agent.name,
                        run_id: slot.run_id(),
                        step: slot.step(),
                        attempt,
                        input,
                        timeout: agent.timeout,
                        cancel: token,
                        output_schema: agent.output_schema.as_ref(),
                        database: self.store.path(),
                    };
                    // Boxed: inline, the attempt's state would size every driver's task, and a
                    // driver waiting for a slot (a queued run) would carry it for nothing.
                    let outcome = Box::pin(process::run(inv, log)).await;
                    drop(_permits);
                    let error = match outcome {
                        Outcome::Done(output) => return Step::Done(output),
                        Outcome::Canceled => {
                            if self.kill.is_cancelled() {
                                self.requeue(slot, attempt - 1).await;
                            }
                            return Step::Stopped;
                        }
                        Outcome::Failed(e) => e,
                        Outcome::Busy(e) => {
                            // Not the agent's failure: the same attempt again once the engine
                            // has what it lacked, however long that takes (a run is not lost
                            // to a moment of too many open files).
                            attempt -= 1;
                            *attempts = attempt;
                            // The store says this attempt began: the wait says it did not, so
                            // that a stop or a crash during it leaves it unspent.
                            short_for = (short_for * 2).clamp(Duration::from_secs(1), BUSY_AT_MOST);
                            let again = humantime::format_duration(short_for);
                            tracing::warn!("run {}: {e}; trying again in {again}", slot.run_id());
                            let line = format!(
                                "{e}; the engine is short of resources, trying again in {again}"
                            );
                            // No failure of the agent's: its last one stays `lastError`.
                            if !self
                                .wait_to_retry(
                                    slot,
                                    attempt,
                                    attempt + 1,
                                    short_for,
                                    (None, line),
                                    token,
                                )
                                .await
                            {
                                return Step::Stopped;
                            }
                            continue;
                        }
                    };
                    if attempt > agent.retries {
                        return Step::Failed(error);
                    }
                    let backoff =
                        Duration::from_millis(500u64.saturating_mul(1 << (attempt - 1).min(6)))
                            .min(BACKOFF_AT_MOST);
                    let line = format!(
                        "attempt {attempt} failed: {error}; retrying in {}",
                        humantime::format_duration(backoff)
                    );
                    if !self
                        .wait_to_retry(slot, attempt, attempt, backoff, (Some(error), line), token)
                        .await
                    {
                        return Step::Stopped;
                    }
                }
            }
        }
    }

    /// Waits for the agent's own slot and a global one; `None` when canceled or stopping.
    async fn acquire(
        &self,
        agent: &AgentDef,
        token: &CancellationToken,
    ) -> Option<(Option<OwnedSemaphorePermit>, OwnedSemaphorePermit)> {
        let wait = async {
            let own = match &agent.slots {
                Some(s) => Some(s.clone().acquire_owned().await.ok()?),
                None => None,
            };
            let global = self.global.clone().acquire_owned().await.ok()?;
            Some((own, global))
        };
        // Biased: with slots free and the engine stopping, a random pick could start an
        // attempt after the stop began (even on a driver spawned after the tracker's wait).
        tokio::select! {
            biased;
            _ = token.cancelled() => None,
            _ = self.stopping.cancelled() => None,
            p = wait => p,
        }
    }

    /// Sleeps until a stored wake-up time; false when canceled or stopping (the timer is stored,
    /// so it is re-armed at the next start).
    async fn sleep_until(&self, wake_at: i64, token: &CancellationToken) -> bool {
        let ms = (wake_at - now_ms()).max(0) as u64;
        tokio::select! {
            biased;
            _ = token.cancelled() => false,
            _ = self.stopping.cancelled() => false,
            _ = tokio::time::sleep(Duration::from_millis(ms)) => true,
        }
    }

    /// An attempt's start, or (with `error`, the last attempt's) the pause before the next.
    async fn record_start(
        &self,
        slot: Slot<'_>,
        attempt: u32,
        at: i64,
        wake_at: Option<i64>,
        error: Option<String>,
    ) -> bool {
        let op = match slot {
            Slot::Run(id) => Op::Start {
                id: id.to_string(),
                attempt,
                at,
                wake_at,
                error,
            },
            Slot::Step(id, idx, step) => {
                let mut sw = step_write(id, idx, step, RunStatus::Running, at, wake_at, attempt);
                sw.error = error;
                Op::Steps(vec![sw])
            }
        };
        self.record(op).await
    }

    async fn requeue(&self, slot: Slot<'_>, attempt: u32) {
        let op = match slot {
            Slot::Run(id) => Op::Requeue {
                id: id.to_string(),
                attempt,
            },
            Slot::Step(id, idx, step) => Op::Steps(vec![step_write(
                id,
                idx,
                step,
                RunStatus::Queued,
                now_ms(),
                None,
                attempt,
            )]),
        };
        self.record(op).await;
    }

    /// Waits `pause` before another attempt. The wait's end is stored first, with `attempt`
    /// (the attempts spent) and the agent's error that caused it, if any (`lastError`), so
    /// that a restart waits out the rest, and a crash between the two cannot leave a wait in
    /// the logs that the store knows nothing of; then the line goes to the logs under
    /// `logged_as`. False when canceled or stopping.
    async fn wait_to_retry(
        &self,
        slot: Slot<'_>,
        attempt: u32,
        logged_as: u32,
        pause: Duration,
        (error, line): (Option<String>, String),
        token: &CancellationToken,
    ) -> bool {
        let retry_at = now_ms() + pause.as_millis() as i64;
        if !self
            .record_start(slot, attempt, now_ms(), Some(retry_at), error)
            .await
        {
            return false;
        }
        self.log(slot, logged_as, line);
        self.sleep_until(retry_at, token).await
    }

    /// Says in the run's logs that a restart cut an attempt short, before the next begins.
    fn log_interrupted(&self, slot: Slot<'_>, attempt: u32) {
        if attempt > 0 {
            self.log(
                slot,
                attempt,
                format!("attempt {attempt} {INTERRUPTED}; retrying"),
            );
        }
    }

    fn log(&self, slot: Slot<'_>, attempt: u32, line: String) {
        self.store.write_later(Op::Logs(vec![NewLog {
            run_id: slot.run_id().to_string(),
            at: now_ms(),
            step: slot.step(),
            attempt: Some(attempt),
            line,
        }]));
    }

    /// Writes and waits for the commit; false when the run has already ended (canceled), and
    /// the driver must stop. A failed write (the database locked by another program past the
    /// busy timeout, a full disk) is retried with back-off until it commits or the engine
    /// stops: giving up would leave the run `running` with nothing driving it until a restart.
    async fn record(&self, op: Op) -> bool {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.store.write(op.clone()).await {
                Ok(applied) => return applied,
                Err(e) => {
                    tracing::error!("{e:#}; retrying in {}", humantime::format_duration(pause));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        // What was not written is redone from the store at the next start.
                        _ = self.stopping.cancelled() => return false,
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn finish(&self, id: &str, result: Result<Value, String>, steps: Vec<StepWrite>) {
        self.record(end_of(id, result, steps)).await;
    }
}

/// Why a run cannot resume under the workflow as it is now configured: a step it has begun or
/// finished is no longer the same step (the config was edited while it slept, or between a
/// crash and the restart). Going on would run a finished step again, or feed one step's output
/// to another; like Temporal's non-determinism error, the run fails instead. A sleep may change
/// its length (the stored wake-up time stands), and steps may be added after those begun.
fn changed_under(wf: &WorkflowDef, stored: &[StepWrite]) -> Option<String> {
    stored.iter().find_map(|s| {
        let was = s.step.as_deref()?;
        let now = wf.steps.get(s.idx);
        (!now.is_some_and(|def| def.is_still(was))).then(|| {
            format!(
                "workflow `{}` changed while this run was under way: its step {} was `{was}` and is now {}; the run stops rather than redo or skip work (schedule a new run)",
                wf.name,
                s.idx + 1,
                now.map_or("gone".to_string(), |d| format!("`{}`", d.describe()))
            )
        })
    })
}

/// The write that ends a run, with its output or why it failed.
fn end_of(id: &str, result: Result<Value, String>, steps: Vec<StepWrite>) -> Op {
    let (status, output, error) = match result {
        Ok(v) => (RunStatus::Completed, Some(v.to_string()), None),
        Err(e) => (RunStatus::Failed, None, Some(e)),
    };
    Op::Finish {
        id: id.to_string(),
        status,
        output,
        error,
        at: now_ms(),
        canceled: false,
        steps,
    }
}

fn step_write(
    run_id: &str,
    idx: usize,
    step: &str,
    status: RunStatus,
    started_at: i64,
    wake_at: Option<i64>,
    attempt: u32,
) -> StepWrite {
    StepWrite {
        run_id: run_id.to_string(),
        idx,
        step: Some(step.to_string()),
        status,
        output: None,
        error: None,
        started_at: Some(started_at),
        completed_at: None,
        wake_at,
        attempt,
    }
}

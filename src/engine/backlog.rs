//! How many of a command agent's or a workflow's runs the executor holds in memory. A run
//! waiting for a concurrency slot costs a task of a few KiB, so a backlog of a million runs of a
//! slow agent (or of workflows that call it) would be gigabytes, and after a crash the next
//! start would load it all again. Past a limit (see [`limit`], [`WORKFLOWS_IN_MEMORY`]) the queued
//! runs wait only in the store, where they already are (a 200 means committed), and the
//! executor reads the oldest of them back as its drivers finish. A workflow asleep (a sleep
//! step, or a step that calls the `sleep` agent) gives its place up (see `timers`); woken, it
//! waits here for a place again, ahead of the queue. Only bookkeeping lives here; the executor does the reading and the driving.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use super::catalog::Catalog;
use crate::api::Kind;

/// The fewest runs of one command agent held by drivers at once (running, backing off before a
/// retry, or waiting for a slot): a few MiB.
pub const RESIDENT_AT_LEAST: usize = 256;

/// How many runs of an agent drivers hold: four times as many as may run at once, so that the
/// slots stay busy while the store is read, and never fewer than [`RESIDENT_AT_LEAST`].
pub fn limit(at_once: usize) -> usize {
    at_once.saturating_mul(4).max(RESIDENT_AT_LEAST)
}

/// How many runs of one workflow drivers hold by default, started or not (about 14 MiB of
/// tasks; `[serve] workflows_in_memory`): how many of one workflow may be under way at once,
/// not counting those asleep. The next start as those end or fall asleep.
pub const WORKFLOWS_IN_MEMORY: usize = 4096;

/// The queues by name, apart for each kind: an agent and a workflow may share a name.
#[derive(Default)]
pub struct Backlog {
    agents: Mutex<HashMap<String, Queue>>,
    workflows: Mutex<HashMap<String, Queue>>,
}

struct Queue {
    limit: usize,
    /// Runs handed to a driver and not finished yet.
    resident: HashSet<String>,
    /// Some queued runs of this agent are only in the store.
    behind: bool,
    /// Runs asleep or woken without a place yet: started, so not for [`Backlog::admit`] to
    /// hand to a driver as if queued (a read of the queue can be stale by then).
    asleep: HashSet<String>,
    /// Those of them woken that found no room: they get the next places, before the queue.
    woken: VecDeque<String>,
    /// A failed read of the queue is to be tried again on a timer (one timer, however many
    /// reads failed).
    retrying: bool,
}

impl Queue {
    fn new(limit: usize) -> Queue {
        Queue {
            limit,
            resident: HashSet::new(),
            behind: false,
            asleep: HashSet::new(),
            woken: VecDeque::new(),
            retrying: false,
        }
    }

    fn wants_refill(&self) -> bool {
        self.behind && self.resident.len() <= self.limit / 2
    }
}

impl Backlog {
    /// Each command agent of the catalog gets the limit its concurrency asks for (at most
    /// `max_concurrency` agent processes run at once in all); each workflow `workflows`.
    pub fn for_catalog(catalog: &Catalog, max_concurrency: usize, workflows: usize) -> Backlog {
        let agents = catalog.agents.values().filter(|a| a.is_command()).map(|a| {
            let at_once = a
                .concurrency
                .unwrap_or(max_concurrency)
                .min(max_concurrency);
            (a.name.clone(), Queue::new(limit(at_once)))
        });
        let workflows = catalog
            .workflows
            .keys()
            .map(|name| (name.clone(), Queue::new(workflows)));
        Backlog {
            agents: Mutex::new(agents.collect()),
            workflows: Mutex::new(workflows.collect()),
        }
    }

    /// Runs `f` on the queue of `kind` `name`, under the lock.
    fn with<T>(&self, kind: Kind, name: &str, f: impl FnOnce(&mut Queue) -> T) -> T {
        let queues = match kind {
            Kind::Agent => &self.agents,
            Kind::Workflow => &self.workflows,
        };
        let mut queues = queues.lock().unwrap_or_else(|e| e.into_inner());
        match queues.get_mut(name) {
            Some(q) => f(q),
            None => f(queues
                .entry(name.to_string())
                .or_insert_with(|| Queue::new(RESIDENT_AT_LEAST))),
        }
    }

    /// Whether a driver may take run `id` now. When not, the run stays queued in the store,
    /// and [`Backlog::wants_refill`] tells when to read it back. While some runs wait in the
    /// store (or woken ones wait for room) a new one waits behind them, so runs keep roughly
    /// the order they were scheduled in.
    /// (A run read back just as its driver finished can get a second driver; that one stops
    /// at its first write, which finds the run ended. One that fell asleep instead is in
    /// `asleep` before it leaves `resident`, so it gets none.)
    pub fn admit(&self, kind: Kind, name: &str, id: &str) -> bool {
        self.with(kind, name, |q| {
            if q.resident.contains(id) || q.asleep.contains(id) {
                return false;
            }
            if q.behind || !q.woken.is_empty() || q.resident.len() >= q.limit {
                q.behind = true;
                return false;
            }
            q.resident.insert(id.to_string());
            true
        })
    }

    /// Marks that some of the queued runs are only in the store.
    pub fn fall_behind(&self, kind: Kind, name: &str) {
        self.with(kind, name, |q| q.behind = true);
    }

    /// Whether some of the queued runs are only in the store.
    pub fn is_behind(&self, kind: Kind, name: &str) -> bool {
        self.with(kind, name, |q| q.behind)
    }

    /// A driver is done with run `id`: it ended or stopped.
    pub fn release(&self, kind: Kind, name: &str, id: &str) {
        self.with(kind, name, |q| q.resident.remove(id));
    }

    /// Run `id` fell asleep: its driver gives its place up, in one step with marking it
    /// asleep, so no stale read of the queue can hand it to a second driver in between.
    pub fn fall_asleep(&self, kind: Kind, name: &str, id: &str) {
        self.with(kind, name, |q| {
            q.resident.remove(id);
            q.asleep.insert(id.to_string());
        });
    }

    /// Run `id` is asleep no more and was never woken (canceled).
    pub fn forget(&self, kind: Kind, name: &str, id: &str) {
        self.with(kind, name, |q| q.asleep.remove(id));
    }

    /// Run `id`, started before, is to be driven again (woken, or found running at start-up):
    /// true when a driver may take it now, else it waits for [`Backlog::next_woken`] (a run ID
    /// each: it is not in the store's queue). False too when a driver holds it already.
    pub fn admit_woken(&self, kind: Kind, name: &str, id: &str) -> bool {
        self.with(kind, name, |q| {
            if q.resident.contains(id) {
                return false;
            }
            if q.woken.is_empty() && q.resident.len() < q.limit {
                q.asleep.remove(id);
                q.resident.insert(id.to_string());
                return true;
            }
            q.asleep.insert(id.to_string());
            q.woken.push_back(id.to_string());
            false
        })
    }

    /// The next woken run that waited for room, now held for its driver, if there is room.
    pub fn next_woken(&self, kind: Kind, name: &str) -> Option<String> {
        self.with(kind, name, |q| {
            if q.resident.len() >= q.limit {
                return None;
            }
            let id = q.woken.pop_front()?;
            q.asleep.remove(&id);
            q.resident.insert(id.clone());
            Some(id)
        })
    }

    /// Whether some queued runs are only in the store and half the room is free: the queue is
    /// read back in batches rather than one run per finished run.
    pub fn wants_refill(&self, kind: Kind, name: &str) -> bool {
        self.with(kind, name, |q| q.wants_refill())
    }

    /// Starts reading the queue back: `None` when another reader got there first (or
    /// nothing waits), else how many queued runs to read (the resident ones not yet started
    /// are among the oldest). New runs admitted from here on are found either by this read or
    /// by [`Backlog::admit`], so none is left in the store unseen.
    pub fn begin_refill(&self, kind: Kind, name: &str) -> Option<usize> {
        self.with(kind, name, |q| {
            if !q.behind {
                return None;
            }
            q.behind = false;
            Some(q.limit)
        })
    }

    /// After a failed read: true when no retry timer is pending yet (the caller starts one).
    pub fn start_retry(&self, kind: Kind, name: &str) -> bool {
        self.with(kind, name, |q| !std::mem::replace(&mut q.retrying, true))
    }

    /// The retry timer fired.
    pub fn end_retry(&self, kind: Kind, name: &str) {
        self.with(kind, name, |q| q.retrying = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Kind = Kind::Agent;

    #[test]
    fn past_the_limit_runs_wait_in_the_store_and_are_read_back_in_batches() {
        let b = Backlog::default();
        for i in 0..RESIDENT_AT_LEAST {
            assert!(b.admit(A, "a", &format!("r{i}")));
        }
        assert!(!b.admit(A, "a", "late"), "over the limit");
        assert!(b.admit(A, "other", "x"), "each agent has its own room");
        assert!(
            b.admit(Kind::Workflow, "a", "y"),
            "a workflow of the same name too"
        );
        // Not read back after every finished run: only once half the room is free.
        b.release(A, "a", "r0");
        assert!(!b.wants_refill(A, "a"));
        assert!(
            !b.admit(A, "a", "later"),
            "no overtaking while runs wait in the store"
        );
        for i in 1..=RESIDENT_AT_LEAST / 2 {
            b.release(A, "a", &format!("r{i}"));
        }
        assert!(b.wants_refill(A, "a"));
        assert_eq!(b.begin_refill(A, "a"), Some(RESIDENT_AT_LEAST));
        assert_eq!(b.begin_refill(A, "a"), None, "one reader at a time");
        assert!(b.admit(A, "a", "late"));
        assert!(!b.admit(A, "a", "late"), "never two drivers for one run");
        assert!(
            b.start_retry(A, "a") && !b.start_retry(A, "a"),
            "one retry timer"
        );
        b.end_retry(A, "a");
        assert!(b.start_retry(A, "a"));
    }

    #[test]
    fn woken_runs_take_the_places_that_free_up_in_turn_before_the_queue() {
        const W: Kind = Kind::Workflow;
        let b = Backlog::default();
        b.with(W, "nap", |q| q.limit = 2);
        assert!(b.admit_woken(W, "nap", "w1"), "room for it");
        assert!(b.admit(W, "nap", "q1"));
        assert!(!b.admit_woken(W, "nap", "w2"), "full: it waits");
        assert!(!b.admit_woken(W, "nap", "w3"));
        assert!(
            !b.admit_woken(W, "nap", "w1"),
            "already driven: not queued twice"
        );
        assert_eq!(b.next_woken(W, "nap"), None, "still full");
        b.release(W, "nap", "q1");
        assert!(
            !b.admit(W, "nap", "q2"),
            "the freed place goes to a woken run"
        );
        assert_eq!(b.next_woken(W, "nap").as_deref(), Some("w2"));
        assert_eq!(b.next_woken(W, "nap"), None);
        b.release(W, "nap", "w1");
        b.release(W, "nap", "w2");
        assert_eq!(b.next_woken(W, "nap").as_deref(), Some("w3"));
        assert_eq!(b.next_woken(W, "nap"), None, "none left");
    }

    #[test]
    fn a_run_asleep_is_never_handed_out_as_queued() {
        const W: Kind = Kind::Workflow;
        let b = Backlog::default();
        assert!(b.admit(W, "nap", "x"));
        b.fall_asleep(W, "nap", "x");
        // A read of the queue from before it started still lists it.
        assert!(!b.admit(W, "nap", "x"), "asleep: not queued");
        assert!(
            b.admit_woken(W, "nap", "x"),
            "woken, it gets its place back"
        );
        b.release(W, "nap", "x");
        assert!(b.admit(W, "nap", "y"));
        b.fall_asleep(W, "nap", "y");
        b.forget(W, "nap", "y");
        assert!(b.with(W, "nap", |q| q.asleep.is_empty() && q.resident.is_empty()));
    }

    #[test]
    fn an_agent_that_may_run_many_at_once_holds_more() {
        assert_eq!(limit(1), RESIDENT_AT_LEAST);
        assert_eq!(limit(100), 400);
        let b = Backlog::default();
        b.with(A, "wide", |q| q.limit = 400);
        for i in 0..400 {
            assert!(b.admit(A, "wide", &format!("r{i}")));
        }
        assert!(!b.admit(A, "wide", "over"));
    }
}

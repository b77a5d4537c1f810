//! How many of a command agent's runs the executor holds in memory. A run waiting for a
//! concurrency slot costs a task of a few KiB, so a backlog of a million runs of a slow agent
//! would be gigabytes, and after a crash the next start would load it all again. Past a limit
//! (see [`limit`]) an agent's queued runs wait only in the store, where they already are (a 200
//! means committed), and the executor reads the oldest of them back as its drivers finish.
//! Only bookkeeping lives here; the executor does the reading and the driving.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// The fewest runs of one command agent held by drivers at once (running, backing off before a
/// retry, or waiting for a slot): a few MiB.
pub const RESIDENT_AT_LEAST: usize = 256;

/// How many runs of an agent drivers hold: four times as many as may run at once, so that the
/// slots stay busy while the store is read, and never fewer than [`RESIDENT_AT_LEAST`].
pub fn limit(concurrency: usize) -> usize {
    concurrency.saturating_mul(4).max(RESIDENT_AT_LEAST)
}

#[derive(Default)]
pub struct Backlog {
    agents: Mutex<HashMap<String, Queue>>,
}

struct Queue {
    limit: usize,
    /// Runs handed to a driver and not finished yet.
    resident: HashSet<String>,
    /// Some queued runs of this agent are only in the store.
    behind: bool,
}

impl Backlog {
    /// Sets an agent's limit (else [`RESIDENT_AT_LEAST`]).
    pub fn with_limit(self, agent: &str, limit: usize) -> Backlog {
        self.queue(agent).get().limit = limit;
        self
    }

    fn queue(&self, agent: &str) -> MappedQueue<'_> {
        MappedQueue {
            map: self.agents.lock().unwrap_or_else(|e| e.into_inner()),
            agent: agent.to_string(),
        }
    }

    /// Whether a driver may take run `id` now. When not, the run stays queued in the store,
    /// and [`Backlog::release`] tells when to read it back. Runs do not overtake: while some
    /// wait in the store, a new one waits behind them.
    pub fn admit(&self, agent: &str, id: &str) -> bool {
        let mut q = self.queue(agent);
        let q = q.get();
        if q.resident.contains(id) {
            return false;
        }
        if q.behind || q.resident.len() >= q.limit {
            q.behind = true;
            return false;
        }
        q.resident.insert(id.to_string());
        true
    }

    /// A run that must be driven whatever the count: one found running at start-up.
    pub fn hold(&self, agent: &str, id: &str) {
        self.queue(agent).get().resident.insert(id.to_string());
    }

    /// Marks that some of the agent's queued runs are only in the store.
    pub fn fall_behind(&self, agent: &str) {
        self.queue(agent).get().behind = true;
    }

    /// Whether some of the agent's queued runs are only in the store.
    pub fn is_behind(&self, agent: &str) -> bool {
        self.queue(agent).get().behind
    }

    /// A driver is done with run `id`. True when the agent's queue should be read back from
    /// the store (see [`Backlog::wants_refill`]).
    pub fn release(&self, agent: &str, id: &str) -> bool {
        let mut q = self.queue(agent);
        let q = q.get();
        q.resident.remove(id);
        q.wants_refill()
    }

    /// Whether some queued runs are only in the store and half the room is free: the queue is
    /// read back in batches rather than one run per finished run.
    pub fn wants_refill(&self, agent: &str) -> bool {
        self.queue(agent).get().wants_refill()
    }

    /// Starts reading the agent's queue back: `None` when another reader got there first (or
    /// nothing waits), else how many queued runs to read (the resident ones not yet started
    /// are among the oldest). New runs admitted from here on are found either by this read or
    /// by [`Backlog::admit`], so none is left in the store unseen.
    pub fn begin_refill(&self, agent: &str) -> Option<usize> {
        let mut q = self.queue(agent);
        let q = q.get();
        if !q.behind {
            return None;
        }
        q.behind = false;
        Some(q.limit)
    }
}

impl Queue {
    fn wants_refill(&self) -> bool {
        self.behind && self.resident.len() <= self.limit / 2
    }
}

/// The lock on the map plus the agent whose entry a call works on.
struct MappedQueue<'a> {
    map: MutexGuard<'a, HashMap<String, Queue>>,
    agent: String,
}

impl MappedQueue<'_> {
    fn get(&mut self) -> &mut Queue {
        self.map
            .entry(std::mem::take(&mut self.agent))
            .or_insert_with(|| Queue {
                limit: RESIDENT_AT_LEAST,
                resident: HashSet::new(),
                behind: false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_runs_wait_in_the_store_and_are_read_back_in_batches() {
        let b = Backlog::default();
        for i in 0..RESIDENT_AT_LEAST {
            assert!(b.admit("a", &format!("r{i}")));
        }
        assert!(!b.admit("a", "late"), "over the limit");
        assert!(b.admit("other", "x"), "each agent has its own room");
        // Not read back after every finished run: only once half the room is free.
        assert!(!b.release("a", "r0"));
        assert!(
            !b.admit("a", "later"),
            "no overtaking while runs wait in the store"
        );
        let mut asked = false;
        for i in 1..=RESIDENT_AT_LEAST / 2 {
            asked |= b.release("a", &format!("r{i}"));
        }
        assert!(asked);
        assert_eq!(b.begin_refill("a"), Some(RESIDENT_AT_LEAST));
        assert_eq!(b.begin_refill("a"), None, "one reader at a time");
        assert!(b.admit("a", "late"));
        assert!(!b.admit("a", "late"), "never two drivers for one run");
    }

    #[test]
    fn an_agent_that_may_run_many_at_once_holds_more() {
        assert_eq!(limit(1), RESIDENT_AT_LEAST);
        assert_eq!(limit(100), 400);
        let b = Backlog::default().with_limit("wide", 400);
        for i in 0..400 {
            assert!(b.admit("wide", &format!("r{i}")));
        }
        assert!(!b.admit("wide", "over"));
    }
}

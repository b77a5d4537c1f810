//! How many of a command agent's runs the executor holds in memory. A run waiting for a
//! concurrency slot costs a task of a few KiB, so a backlog of a million runs of a slow agent
//! would be gigabytes, and after a crash the next start would load it all again. Past
//! [`RESIDENT_PER_AGENT`] an agent's queued runs wait only in the store, where they already are
//! (a 200 means committed), and the executor reads the oldest of them back as its drivers
//! finish. Only bookkeeping lives here; the executor does the reading and the driving.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

/// Runs of one command agent held by drivers at once: running, or waiting for a slot. Far more
/// than any agent's concurrency needs to stay busy, few enough to be a few MiB.
pub const RESIDENT_PER_AGENT: usize = 256;

#[derive(Default)]
pub struct Backlog {
    agents: Mutex<HashMap<String, Queue>>,
}

#[derive(Default)]
struct Queue {
    /// Runs handed to a driver and not finished yet.
    resident: HashSet<String>,
    /// Some queued runs of this agent are only in the store.
    behind: bool,
}

impl Backlog {
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
        if q.behind || q.resident.len() >= RESIDENT_PER_AGENT {
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
    /// the store (it is behind, and half its room is free), in batches rather than one run
    /// per finished run.
    pub fn release(&self, agent: &str, id: &str) -> bool {
        let mut q = self.queue(agent);
        let q = q.get();
        q.resident.remove(id);
        q.behind && q.resident.len() <= RESIDENT_PER_AGENT / 2
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
        Some(RESIDENT_PER_AGENT)
    }
}

/// The lock on the map plus the agent whose entry a call works on.
struct MappedQueue<'a> {
    map: MutexGuard<'a, HashMap<String, Queue>>,
    agent: String,
}

impl MappedQueue<'_> {
    fn get(&mut self) -> &mut Queue {
        self.map.entry(std::mem::take(&mut self.agent)).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_limit_runs_wait_in_the_store_and_are_read_back_in_batches() {
        let b = Backlog::default();
        for i in 0..RESIDENT_PER_AGENT {
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
        for i in 1..=RESIDENT_PER_AGENT / 2 {
            asked |= b.release("a", &format!("r{i}"));
        }
        assert!(asked);
        assert_eq!(b.begin_refill("a"), Some(RESIDENT_PER_AGENT));
        assert_eq!(b.begin_refill("a"), None, "one reader at a time");
        assert!(b.admit("a", "late"));
        assert!(!b.admit("a", "late"), "never two drivers for one run");
    }
}

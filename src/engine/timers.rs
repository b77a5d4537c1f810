//! Runs asleep for more than a second: a run of the built-in `sleep` agent, a workflow at a
//! sleep step or at a step that calls that agent. Their wake-up time is already stored, so
//! while they sleep no driver holds them: a workflow asleep gives its place among the
//! `workflows_in_memory` to the next one, instead of keeping new runs queued for as long as
//! it sleeps. An entry here costs about what a sleeping task did (a few hundred bytes
//! resident, measured with `bench/waiting-runs.sh`); when it falls due the executor drives the
//! run again from the store, as it does at start-up. Only the bookkeeping lives here; the
//! executor does the waiting and waking.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::api::Kind;

/// A run to wake: its kind, name and ID.
pub type Sleeper = (Kind, String, String);

#[derive(Default)]
pub struct Timers {
    state: Mutex<State>,
    /// Told when an entry is added that falls due before every other, so the waiting ends
    /// sooner. (A permit is kept when nobody waits, so an entry added between a look at
    /// [`Timers::next`] and the wait is not missed.)
    sooner: Notify,
}

#[derive(Default)]
struct State {
    /// By wake-up time (ms since the epoch), then run ID.
    due: BTreeMap<(i64, String), (Kind, String)>,
    /// Each run's wake-up time, to find its entry when it is canceled.
    at: HashMap<String, i64>,
}

impl Timers {
    /// Wakes run `id` at `wake_at`. A run set twice keeps the later setting only.
    pub fn set(&self, wake_at: i64, kind: Kind, name: &str, id: &str) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = s.at.insert(id.to_string(), wake_at) {
            s.due.remove(&(old, id.to_string()));
        }
        let first = s.due.keys().next().is_none_or(|(at, _)| wake_at < *at);
        s.due
            .insert((wake_at, id.to_string()), (kind, name.to_string()));
        drop(s);
        if first {
            self.sooner.notify_one();
        }
    }

    /// Forgets run `id` (canceled: nothing is left to wake); true when it was here.
    pub fn remove(&self, id: &str) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = s.at.remove(id) else {
            return false;
        };
        s.due.remove(&(at, id.to_string()));
        true
    }

    /// Takes every entry due at `now`, the earliest first.
    pub fn take_due(&self, now: i64) -> Vec<Sleeper> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let later = s.due.split_off(&(now.saturating_add(1), String::new()));
        let due = std::mem::replace(&mut s.due, later);
        due.into_iter()
            .map(|((_, id), (kind, name))| {
                s.at.remove(&id);
                (kind, name, id)
            })
            .collect()
    }

    /// When the earliest entry falls due.
    pub fn next(&self) -> Option<i64> {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.due.keys().next().map(|(at, _)| *at)
    }

    /// Resolves once an entry has been added that falls due before the others.
    pub async fn sooner(&self) {
        self.sooner.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Kind = Kind::Workflow;

    #[test]
    fn entries_fall_due_in_time_order_and_a_cancel_removes_one() {
        let t = Timers::default();
        t.set(300, W, "nap", "c");
        t.set(100, W, "nap", "a");
        t.set(200, Kind::Agent, "sleep", "b");
        t.set(250, W, "nap", "gone");
        assert_eq!(t.next(), Some(100));
        assert!(t.remove("gone"));
        assert!(!t.remove("never set"));
        assert!(t.take_due(99).is_empty());
        let due = t.take_due(200);
        assert_eq!(
            due,
            vec![
                (W, "nap".to_string(), "a".to_string()),
                (Kind::Agent, "sleep".to_string(), "b".to_string())
            ]
        );
        assert_eq!(t.next(), Some(300));
        // Set again: the later setting replaces the earlier.
        t.set(400, W, "nap", "c");
        assert_eq!(t.next(), Some(400));
        assert_eq!(t.take_due(i64::MAX).len(), 1);
        assert_eq!(t.next(), None);
        assert!(t.state.lock().unwrap().at.is_empty(), "nothing left behind");
    }
}

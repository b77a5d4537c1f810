//! Wake-ups for long-polls: the writer calls [`Notifier::notify`] after a commit that touched a
//! run, and every `?wait=` request parked on that run re-reads it. Keyed by run so that a busy
//! engine does not wake every waiter on every write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;

#[derive(Default)]
pub struct Notifier {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Lets the writer skip the lock entirely when nobody waits (the common case under load).
    count: AtomicUsize,
}

impl Notifier {
    /// Registers interest in `run_id`; the receiver fires on the next committed change.
    pub fn subscribe(&self, run_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(run_id.to_string()).or_default().push(tx);
        self.count.fetch_add(1, Ordering::Relaxed);
        rx
    }

    pub fn notify(&self, run_id: &str) {
        if self.count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let senders = {
            let mut map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
            map.remove(run_id)
        };
        if let Some(senders) = senders {
            self.count.fetch_sub(senders.len(), Ordering::Relaxed);
            for s in senders {
                let _ = s.send(());
            }
        }
    }

    /// Drops waiters whose request has gone away, so the map does not grow with abandoned polls.
    pub fn prune(&self, run_id: &str) {
        let mut map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(run_id) {
            let before = list.len();
            list.retain(|s| !s.is_closed());
            self.count.fetch_sub(before - list.len(), Ordering::Relaxed);
            if list.is_empty() {
                map.remove(run_id);
            }
        }
    }
}

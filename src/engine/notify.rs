//! Wake-ups for long-polls: the writer calls [`Notifier::notify`] after a commit that touched a
//! run, and every `?wait=` request parked on that run re-reads it. Keyed by run so that a busy
//! engine does not wake every waiter on every write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

use tokio::sync::oneshot;

#[derive(Default)]
pub struct Notifier {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Lets the writer skip the lock entirely when nobody waits (the common case under load).
    count: AtomicUsize,
}

impl Notifier {
    /// Registers interest in `run_id`'s next committed change. Subscribe before reading the run:
    /// a change committed after the read then still wakes the subscription.
    pub fn subscribe<'a>(&'a self, run_id: &'a str) -> Subscription<'a> {
        Subscription {
            notifier: self,
            run_id,
            rx: Some(self.register(run_id)),
        }
    }

    fn register(&self, run_id: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(run_id.to_string()).or_default().push(tx);
        // SeqCst, paired with the fence in `notify`: the writer must not read a stale zero
        // while this request reads the run from before the commit (store, then load, on both
        // sides).
        self.count.fetch_add(1, Ordering::SeqCst);
        rx
    }

    pub fn notify(&self, run_id: &str) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 {
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

    /// Drops the run's waiters whose receiver is gone.
    fn prune(&self, run_id: &str) {
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

    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        let map = self.waiters.lock().unwrap_or_else(|e| e.into_inner());
        (map.len(), self.count.load(Ordering::SeqCst))
    }
}

/// One long-poll's interest in a run. Dropping it takes its entry out of the map on every way
/// out: an answer, an error (a poll on an unknown run ID is never notified), or a client that
/// hangs up mid-wait. Otherwise the map would grow with every such request, and a non-zero
/// count would make the writer take the lock after every commit.
pub struct Subscription<'a> {
    notifier: &'a Notifier,
    run_id: &'a str,
    rx: Option<oneshot::Receiver<()>>,
}

impl Subscription<'_> {
    /// Waits for the next committed change, then subscribes again before returning, so that a
    /// change after the caller's next read is not missed either.
    pub async fn changed(&mut self) {
        if let Some(rx) = self.rx.as_mut() {
            let _ = rx.await;
        }
        self.rx = Some(self.notifier.register(self.run_id));
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        // `prune` drops closed senders only, so the receiver goes first.
        self.rx = None;
        self.notifier.prune(self.run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscription_leaves_nothing_behind_however_it_ends() {
        let n = Notifier::default();
        // Dropped unused, as a poll on an unknown run or a hang-up drops it.
        drop(n.subscribe("a"));
        assert_eq!(n.waiting(), (0, 0));
        // Woken, subscribed again, then dropped.
        let mut s = n.subscribe("b");
        let other = n.subscribe("b");
        n.notify("b");
        s.changed().await;
        assert_eq!(n.waiting(), (1, 1));
        drop(s);
        drop(other);
        assert_eq!(n.waiting(), (0, 0));
        // A change after `changed` returned is seen by the next wait.
        let mut s = n.subscribe("c");
        n.notify("c");
        s.changed().await;
        n.notify("c");
        tokio::time::timeout(std::time::Duration::from_secs(5), s.changed())
            .await
            .expect("the second change wakes the renewed subscription");
    }
}

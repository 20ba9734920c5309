//! One change at a time per port request within this instance.
//!
//! Changes of one request that arrive together would otherwise all read one revision and race
//! for it: on a cluster they race for its turn (`couch/turn.rs`), everywhere for the write,
//! and every loser reads again and waits before trying again. Queued here, in arrival order,
//! each change starts from the revision the one before it wrote, and only changes made through
//! other instances can still meet a conflict. The queue is only a courtesy: correctness rests
//! on CouchDB (turns, revisions), so a change that waited too long goes ahead without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Slot = Arc<AsyncMutex<()>>;

#[derive(Default)]
pub struct WriteQueue {
    slots: Mutex<HashMap<String, Slot>>,
}

/// A change's place at the head of its request's queue; the next change goes when it drops.
pub struct Place<'a> {
    queue: &'a WriteQueue,
    id: String,
    slot: Slot,
    guard: Option<OwnedMutexGuard<()>>,
    waited: bool,
}

impl Place<'_> {
    /// Did changes made before this one (maybe) change the request meanwhile?
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl WriteQueue {
    /// Waits (at most `patience`) until the changes of request `id` that came before are made.
    pub async fn enter(&self, id: &str, patience: Duration) -> Place<'_> {
        let slot = self.slots.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_owned()).or_default().clone();
        let (guard, waited) = match slot.clone().try_lock_owned() {
            Ok(guard) => (Some(guard), false),
            Err(_) => (tokio::time::timeout(patience, slot.clone().lock_owned()).await.ok(), true),
        };
        if guard.is_none() {
            tracing::info!(id, "the changes queued before this one take long: going ahead");
        }
        Place { queue: self, id: id.to_owned(), slot, guard, waited }
    }

    /// How many requests have changes queued or under way (for tests).
    pub fn busy(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut slots = self.queue.slots.lock().unwrap_or_else(|p| p.into_inner());
        // nobody else holds or waits for the slot (clones are made only under this lock)
        if Arc::strong_count(&self.slot) == 2 {
            slots.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn changes_of_one_request_go_one_at_a_time_in_order() {
        let queue = Arc::new(WriteQueue::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = queue.enter("r", Duration::from_secs(5)).await;
        let mut waiting = Vec::new();
        for i in 0..4 {
            let (queue, inside, order) = (queue.clone(), inside.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _place = queue.enter("r", Duration::from_secs(5)).await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "one change at a time");
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
            // each is queued before the next arrives
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let other = queue.enter("another request", Duration::from_millis(10)).await;
        assert!(other.guard.is_some(), "another request does not wait");
        drop(other);
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3], "in arrival order");
        assert_eq!(queue.busy(), 0, "nothing is kept once the changes are made");
    }

    #[tokio::test]
    async fn a_change_that_waited_too_long_goes_ahead() {
        let queue = WriteQueue::default();
        let _stuck = queue.enter("r", Duration::from_secs(1)).await;
        let late = queue.enter("r", Duration::from_millis(20)).await;
        assert!(late.guard.is_none());
        drop(late);
        assert_eq!(queue.busy(), 1, "the stuck change still holds its place");
    }
}

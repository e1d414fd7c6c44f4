//! Group commit: hits that arrive while one batch is being written to Redis are written
//! together in the next, by whichever waiting worker gets there first.
//!
//! There is no committer thread: a worker that finds no batch in flight leads one, taking
//! every queued item (its own included) and committing them in one round trip; the others
//! wait until their batch is done. With one worker busy this is the plain path; under load,
//! batches grow by themselves while the leader waits on Redis.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

/// A queue of items committed in batches; `R` is each item's outcome.
pub(crate) struct GroupCommit<T, R> {
    state: Mutex<State<T, R>>,
    done: Condvar,
}

struct State<T, R> {
    /// Items waiting for the next batch, which will be number `open_batch`.
    queued: Vec<T>,
    open_batch: u64,
    leading: bool,
    /// Outcomes of finished batches, with how many of their items have yet to collect theirs.
    finished: HashMap<u64, (Vec<Option<R>>, usize)>,
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queued: Vec::new(),
                open_batch: 0,
                leading: false,
                finished: HashMap::new(),
            }),
            done: Condvar::new(),
        }
    }
}

impl<T, R> GroupCommit<T, R> {
    /// Queues `item` and returns its outcome once its batch is committed. `commit` is called
    /// (by this thread, if it leads) with a whole batch and must return one outcome per item,
    /// in order; `on_panic` stands in for every outcome if it panics.
    pub(crate) fn submit(
        &self,
        item: T,
        commit: impl FnOnce(Vec<T>) -> Vec<R>,
        on_panic: impl Fn() -> R,
    ) -> R {
        let mut state = self.lock();
        let (batch, index) = (state.open_batch, state.queued.len());
        state.queued.push(item);
        let mut commit = Some(commit);
        loop {
            if let Some(outcome) = Self::collect(&mut state, batch, index) {
                return outcome;
            }
            if state.leading {
                state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Lead the open batch, which holds this thread's own item.
            let items = std::mem::take(&mut state.queued);
            let leading = state.open_batch;
            state.open_batch += 1;
            state.leading = true;
            drop(state);
            let count = items.len();
            let commit = commit
                .take()
                .expect("a thread leads at most once: its item is in that batch");
            let outcomes = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(items)))
                .ok()
                .filter(|outcomes| outcomes.len() == count)
                .unwrap_or_else(|| (0..count).map(|_| on_panic()).collect());
            state = self.lock();
            state
                .finished
                .insert(leading, (outcomes.into_iter().map(Some).collect(), count));
            state.leading = false;
            self.done.notify_all();
        }
    }

    fn collect(state: &mut State<T, R>, batch: u64, index: usize) -> Option<R> {
        let (outcomes, uncollected) = state.finished.get_mut(&batch)?;
        let outcome = outcomes[index].take();
        *uncollected -= 1;
        if *uncollected == 0 {
            state.finished.remove(&batch);
        }
        outcome
    }

    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn alone_an_item_is_its_own_batch() {
        let group = GroupCommit::default();
        let out = group.submit(5, |items| items.iter().map(|i| i * 2).collect(), || -1);
        assert_eq!(out, 10);
        assert!(group.lock().finished.is_empty());
    }

    #[test]
    fn concurrent_items_are_batched_and_each_gets_its_own_outcome() {
        let group = Arc::new(GroupCommit::default());
        let batches = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (group, batches) = (group.clone(), batches.clone());
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let item = t * 1000 + i;
                        let out = group.submit(
                            item,
                            |items| {
                                batches.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                items.iter().map(|i| i + 1).collect()
                            },
                            || 0,
                        );
                        assert_eq!(out, item + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let batches = batches.load(Ordering::Relaxed);
        assert!(batches < 16 * 200, "{batches} batches: nothing was grouped");
        assert!(
            group.lock().finished.is_empty(),
            "every outcome was collected"
        );
    }

    #[test]
    fn a_panicking_commit_fails_its_batch_only() {
        let group = GroupCommit::default();
        let out = group.submit(1, |_| panic!("boom"), || "failed");
        assert_eq!(out, "failed");
        assert_eq!(
            group.submit(2, |items| items.iter().map(|_| "ok").collect(), || "failed"),
            "ok"
        );
    }
}

//! The read pool: threads of their own for the commands that can be slow (`GET /hits`, a
//! `/top` whose ranking must be read), so that hit workers never run a scan nor wait on one.
//! The workers pull every request off tiny_http's queue and hand these over; a read then
//! waits its turn in a bounded queue, and is refused at once when the queue is full.

use std::time::Duration;

use threadpool::ThreadPool;

/// Reads that may wait per read thread before more are refused at once.
pub(crate) const QUEUED_PER_THREAD: usize = 32;

pub(crate) struct ReadPool {
    pool: ThreadPool,
    max_queued: usize,
    /// How long a read may wait for a thread (`--read-queue-ms`).
    pub max_wait: Duration,
}

impl ReadPool {
    pub(crate) fn new(threads: usize, max_wait: Duration) -> ReadPool {
        let threads = threads.max(1);
        ReadPool {
            pool: ThreadPool::with_name("hitme-reader".into(), threads),
            max_queued: threads * QUEUED_PER_THREAD,
            max_wait,
        }
    }

    /// How many reads may wait at once.
    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued
    }

    /// Whether another read may wait: fewer than `max_queued` do. (Workers hand reads over
    /// concurrently, so the queue may briefly hold one more per worker.)
    pub(crate) fn has_room(&self) -> bool {
        self.pool.queued_count() < self.max_queued
    }

    /// Runs `read` on a read thread once one is free.
    pub(crate) fn run<F: FnOnce() + Send + 'static>(&self, read: F) {
        self.pool.execute(read);
    }

    /// Waits for every read handed over to be answered.
    pub(crate) fn join(&self) {
        self.pool.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn the_queue_has_room_for_a_bounded_number_of_reads() {
        let reads = ReadPool::new(1, Duration::from_secs(1));
        let (release, held) = channel::<()>();
        let held = std::sync::Mutex::new(held);
        // The one thread is held; the queue then takes QUEUED_PER_THREAD reads, no more.
        reads.run(move || {
            let _ = held.lock().unwrap().recv();
        });
        while reads.pool.active_count() == 0 {
            std::thread::yield_now();
        }
        for _ in 0..QUEUED_PER_THREAD {
            assert!(reads.has_room());
            reads.run(|| {});
        }
        assert!(!reads.has_room());
        release.send(()).unwrap();
        reads.join();
        assert!(reads.has_room());
    }
}

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

enum Control<T> {
    Elem(T),
    Unblock,
}

pub struct MessagesQueue<T>
where
    T: Send,
{
    queue: Mutex<Queue<T>>,
    condvar: Condvar,
}

/// HitMe: the queue and how many threads wait for it. A `Condvar` notification is a system
/// call (`futex`) even when no thread waits, and under load every worker is usually busy when
/// a request is pushed; it is made only when a thread waits.
struct Queue<T> {
    items: VecDeque<Control<T>>,
    waiting: usize,
}

impl<T> Queue<T> {
    fn pop_front(&mut self) -> Option<Control<T>> {
        self.items.pop_front()
    }
}

impl<T> MessagesQueue<T>
where
    T: Send,
{
    pub fn with_capacity(capacity: usize) -> Arc<MessagesQueue<T>> {
        Arc::new(MessagesQueue {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(capacity),
                waiting: 0,
            }),
            condvar: Condvar::new(),
        })
    }

    /// Pushes an element to the queue.
    pub fn push(&self, value: T) {
        let mut queue = self.queue.lock().unwrap();
        queue.items.push_back(Control::Elem(value));
        if queue.waiting > 0 {
            self.condvar.notify_one();
        }
    }

    /// Unblock one thread stuck in pop loop.
    pub fn unblock(&self) {
        let mut queue = self.queue.lock().unwrap();
        queue.items.push_back(Control::Unblock);
        if queue.waiting > 0 {
            self.condvar.notify_one();
        }
    }

    /// Pops an element. Blocks until one is available.
    /// Returns None in case unblock() was issued.
    pub fn pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();

        loop {
            match queue.pop_front() {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }

            queue.waiting += 1;
            queue = self.condvar.wait(queue).unwrap();
            queue.waiting -= 1;
        }
    }

    /// Tries to pop an element without blocking.
    pub fn try_pop(&self) -> Option<T> {
        let mut queue = self.queue.lock().unwrap();
        match queue.pop_front() {
            Some(Control::Elem(value)) => Some(value),
            Some(Control::Unblock) | None => None,
        }
    }

    /// Tries to pop an element without blocking
    /// more than the specified timeout duration
    /// or unblock() was issued
    pub fn pop_timeout(&self, timeout: Duration) -> Option<T> {
        // HitMe: an element pushed as the wait times out is taken, not left for the next pop.
        let deadline = Instant::now() + timeout;
        let mut queue = self.queue.lock().unwrap();
        loop {
            match queue.pop_front() {
                Some(Control::Elem(value)) => return Some(value),
                Some(Control::Unblock) => return None,
                None => (),
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            queue.waiting += 1;
            queue = self.condvar.wait_timeout(queue, deadline - now).unwrap().0;
            queue.waiting -= 1;
        }
    }
}

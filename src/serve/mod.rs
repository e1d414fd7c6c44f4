//! Serving: a tiny_http listener ([`acceptor`], on the socket of [`listener`]) drained by a
//! fixed pool of worker threads ([`worker`]), the reads that scan handed to [`read_pool`], and
//! a graceful stop when the acceptor is told to stop.
//!
//! One `POST /hit`, from the socket to Redis and back:
//! 1. tiny_http's accept thread reads the request line, the headers and a small body, and
//!    queues the request; an idle worker takes it ([`worker`]'s `serve_next`).
//! 2. The worker parses it ([`crate::http::parse`], which reads the request and the flags,
//!    never Redis) into [`crate::http::Command::RecordHit`], then holds it to its client's
//!    `--rate-limit`, as it does every command that counts.
//! 3. Hits already queued behind it are taken too (never waited for), up to a batch, each
//!    parsed and limited alike; the first request that is not a hit ends the batch.
//! 4. The hits are applied together (`RecordHit::apply_all`): with `--visits` each is given
//!    its visitor (the day's salt comes from Redis once a day), then the store writes them in
//!    one round trip, equal hits merged, one `MULTI`/`EXEC` of `HINCRBY`s.
//! 5. Each request is answered in the order taken, `{"status":"OK"}` or its error, counted in
//!    the metrics on the way out.

pub mod acceptor;
pub mod listener;
pub(crate) mod read_pool;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use threadpool::ThreadPool;

use self::acceptor::Acceptor;
use self::read_pool::ReadPool;
use self::worker::Worker;
use crate::http::App;

/// How many threads serve, and how long a read may wait for one.
#[derive(Debug, Clone, Copy)]
pub struct Threads {
    /// Worker threads (`--threads`).
    pub workers: usize,
    /// Threads for the reads that scan (`--read-threads`).
    pub reads: usize,
    /// How long a read may wait for a read thread (`--read-queue-ms`).
    pub read_queue: Duration,
}

/// Serves `acceptor`'s connections with `app` until the acceptor is told to stop, then
/// returns once the requests in flight are answered. Fails only when a thread cannot start.
pub fn run(app: Arc<App>, acceptor: Arc<Acceptor>, threads: Threads) -> std::io::Result<()> {
    let worker = Worker {
        app,
        acceptor: acceptor.clone(),
        reads: Arc::new(ReadPool::new(threads.reads, threads.read_queue)),
    };
    {
        let worker = worker.clone();
        std::thread::Builder::new()
            .name("hitme-watchdog".into())
            .spawn(move || watch_accept_loop(worker))?;
    }
    let workers = ThreadPool::with_name("hitme-worker".into(), threads.workers);
    for _ in 0..threads.workers {
        let worker = worker.clone();
        workers.execute(move || worker.run());
    }
    workers.join();
    acceptor.join_retired();
    worker.reads.join();
    Ok(())
}

/// How often the watchdog checks that the accept thread is alive.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(200);

/// Checks the accept loop until HitMe stops, restoring it when it has died silently.
fn watch_accept_loop(worker: Worker) {
    while !worker.acceptor.is_stopping() {
        if let Some(dead) = worker.acceptor.dead_accept_loop() {
            worker.restore_accepting(&dead, "its thread ended");
        }
        std::thread::sleep(WATCHDOG_PERIOD);
    }
}

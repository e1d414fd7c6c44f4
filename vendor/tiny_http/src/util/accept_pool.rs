//! HitMe: connection threads that accept their own connections.
//!
//! Upstream ran one accept thread that handed each connection to a pool thread through a
//! mutex, a condition variable and a boxed task: two wake-ups and their lock traffic per
//! connection (with the read timeout's `setsockopt`, half the system calls of a one-request
//! connection). Here every
//! idle connection thread waits in `accept()` itself (the kernel wakes exactly one waiter per
//! connection), reads that connection's requests, and goes back to `accept()`. The thread
//! that takes the last waiting place starts another, so a new connection never waits for a
//! busy one.
//!
//! The listening socket's `SO_RCVTIMEO` is the client read timeout, inherited by every
//! accepted socket (no `setsockopt` per connection), and it is also how long an idle thread
//! waits in `accept()`: then it exits if more than `MIN_ACCEPTING` threads wait, the threads
//! leaving `EXIT_SPACING` apart, so that the thousands of threads a burst left behind leave
//! one at a time instead of all at once.

use std::io::{Error as IoError, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::connection::{Connection, Listener};

/// Threads kept waiting in `accept()` however long they idle.
const MIN_ACCEPTING: usize = 4;

/// The shortest time between two idle threads exiting.
const EXIT_SPACING: Duration = Duration::from_millis(2);

/// How long an idle thread waits in `accept()` when connections have no read timeout.
pub(crate) const IDLE_WAIT: Duration = Duration::from_secs(5);

struct Shared<S, F> {
    listener: Listener,
    /// Threads in `accept()`, or on their way back to it.
    accepting: AtomicUsize,
    /// When the next idle thread may exit, in microseconds since `epoch`.
    next_exit_us: AtomicU64,
    epoch: Instant,
    /// Set when the server is dropped.
    close: Arc<AtomicBool>,
    /// Set by the first accept error that is not transient: the threads stop accepting.
    failed: AtomicBool,
    serve: S,
    fail: F,
}

/// Starts `MIN_ACCEPTING` threads accepting on `listener`; each connection is given to
/// `serve` on the thread that accepted it. The first accept error that is not transient is
/// given to `fail`, and then the threads stop accepting.
pub(crate) fn start<S, F>(listener: Listener, close: Arc<AtomicBool>, serve: S, fail: F)
where
    S: Fn(Connection, Option<SocketAddr>) + Send + Sync + 'static,
    F: Fn(IoError) + Send + Sync + 'static,
{
    let shared = Arc::new(Shared {
        listener,
        accepting: AtomicUsize::new(0),
        next_exit_us: AtomicU64::new(0),
        epoch: Instant::now(),
        close,
        failed: AtomicBool::new(false),
        serve,
        fail,
    });
    for _ in 0..MIN_ACCEPTING {
        if let Err(e) = spawn(&shared) {
            (shared.fail)(e);
            return;
        }
    }
}

fn spawn<S, F>(shared: &Arc<Shared<S, F>>) -> std::io::Result<()>
where
    S: Fn(Connection, Option<SocketAddr>) + Send + Sync + 'static,
    F: Fn(IoError) + Send + Sync + 'static,
{
    shared.accepting.fetch_add(1, Ordering::AcqRel);
    let for_thread = shared.clone();
    thread::Builder::new()
        .spawn(move || accept_and_serve(for_thread))
        .map(drop)
        .map_err(|e| {
            shared.accepting.fetch_sub(1, Ordering::AcqRel);
            e
        })
}

fn accept_and_serve<S, F>(shared: Arc<Shared<S, F>>)
where
    S: Fn(Connection, Option<SocketAddr>) + Send + Sync + 'static,
    F: Fn(IoError) + Send + Sync + 'static,
{
    loop {
        if shared.close.load(Ordering::Relaxed) || shared.failed.load(Ordering::Relaxed) {
            shared.accepting.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        match shared.listener.accept() {
            Ok((connection, peer)) => {
                if shared.accepting.fetch_sub(1, Ordering::AcqRel) == 1 {
                    // The last waiting thread: one more waits while this one serves. If no
                    // thread can be started, connections wait in the backlog until this one
                    // is back.
                    if let Err(e) = spawn(&shared) {
                        log::error!("cannot start a connection thread: {}", e);
                    }
                }
                (shared.serve)(connection, peer);
                shared.accepting.fetch_add(1, Ordering::AcqRel);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                if exits_when_idle(&shared) {
                    return;
                }
            }
            Err(e) if is_transient(&e) => {}
            Err(e) => {
                shared.accepting.fetch_sub(1, Ordering::AcqRel);
                if !shared.failed.swap(true, Ordering::AcqRel) {
                    (shared.fail)(e);
                }
                return;
            }
        }
    }
}

/// Whether an idle thread exits: when more than `MIN_ACCEPTING` wait, it stops accepting and
/// exits at its turn, `EXIT_SPACING` after the previous thread's, so that a burst's threads
/// leave one at a time, in one round.
fn exits_when_idle<S, F>(shared: &Shared<S, F>) -> bool {
    let excess = shared
        .accepting
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n > MIN_ACCEPTING).then(|| n - 1)
        })
        .is_ok();
    if !excess {
        return false;
    }
    let now = shared.epoch.elapsed().as_micros() as u64;
    let spacing = EXIT_SPACING.as_micros() as u64;
    let turn = shared
        .next_exit_us
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
            Some(next.max(now) + spacing)
        })
        .map_or(now, |next| next.max(now));
    thread::sleep(Duration::from_micros(turn - now));
    true
}

/// Errors of one connection, or of a signal, after which accepting goes on.
fn is_transient(e: &IoError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) || e.raw_os_error() == Some(71) // EPROTO: the connection failed before it was accepted
}

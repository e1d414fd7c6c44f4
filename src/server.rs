//! The server: a tiny_http listener drained by a fixed pool of worker threads, each answering
//! requests with a pooled Redis connection, and a graceful stop on SIGINT or SIGTERM.

use std::net::{Shutdown, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use threadpool::ThreadPool;
use tiny_http::Request;

use crate::config::Config;
use crate::error::ApiError;
use crate::http::{self, Reply};
use crate::listener;
use crate::store::{self, Store};

/// How often an idle worker looks up to see whether HitMe is stopping.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Stack of a thread that answers a request whose oversized body was left unread.
const DRAIN_STACK_BYTES: usize = 64 * 1024;

/// Why HitMe stopped other than by a signal.
#[derive(Debug)]
pub struct Fatal(pub String);

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Fatal {}

/// Runs HitMe until SIGINT or SIGTERM (then returns `Ok` once in-flight requests are answered)
/// or until it cannot go on (then `Err` with what to do).
pub fn run(config: Config) -> Result<(), Fatal> {
    match listener::raise_open_file_limit() {
        Ok(limit) => log::debug!("open-file limit: {limit}"),
        Err(e) => {
            log::warn!("could not raise the open-file limit ({e}); many clients may exhaust it")
        }
    }
    let listener = listener::bind(&config.listen).map_err(Fatal)?;
    let store = Store::new(config.store_config()).map_err(Fatal)?;
    let addr = listener.local_addr().map_err(|e| Fatal(e.to_string()))?;
    let stopper = listener.try_clone().map_err(|e| Fatal(e.to_string()))?;
    let server = Arc::new(
        tiny_http::Server::from_listener(listener, None).map_err(|e| Fatal(e.to_string()))?,
    );

    let stopping = Arc::new(AtomicBool::new(false));
    {
        let stopping = stopping.clone();
        ctrlc::set_handler(move || {
            log::info!("stopping: no new connections; finishing requests in flight");
            stop_accepting(&stopping, &stopper);
        })
        .map_err(|e| Fatal(format!("cannot install the SIGINT/SIGTERM handler: {e}")))?;
    }

    log::info!(
        "hitme listening on http://{addr} (threads {}, redis pool {}, redis {})",
        config.threads,
        config.pool_size(),
        store::redact(&config.redis_url)
    );

    let accept_failed = Arc::new(AtomicBool::new(false));
    let workers = ThreadPool::with_name("hitme-worker".into(), config.threads as usize);
    for _ in 0..config.threads {
        let worker = Worker {
            server: server.clone(),
            store: store.clone(),
            stopping: stopping.clone(),
            accept_failed: accept_failed.clone(),
        };
        workers.execute(move || worker.run());
    }
    workers.join();

    if accept_failed.load(Ordering::SeqCst) {
        return Err(Fatal(
            "the accept loop stopped (see the error above); restart HitMe, and raise `ulimit -n` if it said 'Too many open files'".into(),
        ));
    }
    log::info!("stopped");
    Ok(())
}

/// Marks HitMe as stopping and shuts the listening socket, which wakes tiny_http's accept loop
/// with an error and refuses new connections.
fn stop_accepting(stopping: &AtomicBool, listener: &TcpListener) {
    stopping.store(true, Ordering::SeqCst);
    let _ = socket2::SockRef::from(listener).shutdown(Shutdown::Both);
}

/// One worker thread's loop and everything it needs.
struct Worker {
    server: Arc<tiny_http::Server>,
    store: Store,
    stopping: Arc<AtomicBool>,
    accept_failed: Arc<AtomicBool>,
}

impl Worker {
    fn run(self) {
        loop {
            match self.server.recv_timeout(IDLE_POLL) {
                Ok(Some(request)) => self.answer(request),
                Ok(None) if self.stopping.load(Ordering::SeqCst) => return,
                Ok(None) => {}
                Err(_) if self.stopping.load(Ordering::SeqCst) => {}
                Err(e) => {
                    log::error!("accepting connections failed: {e}; stopping");
                    self.accept_failed.store(true, Ordering::SeqCst);
                    self.stopping.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    fn answer(&self, mut request: Request) {
        let reply = guarded(|| http::handle(&mut request, &self.store)).unwrap_or_else(|panic| {
            log::error!(
                "bug: handler panicked on {} {}: {panic}",
                request.method(),
                request.url()
            );
            Reply::error(&ApiError::internal(
                "internal error; it has been logged, please report it",
            ))
        });
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("{} {} -> {}", request.method(), request.url(), reply.status);
        }
        if reply.body_unread {
            respond_and_drain_elsewhere(request, reply);
        } else {
            respond(request, reply);
        }
    }
}

/// tiny_http reads an unread body to its end when the request is dropped, which never ends if
/// the client declared a huge body and stalls. The answer goes out at once from a thread of its
/// own, which then waits out the client; the thread ends when the connection does.
fn respond_and_drain_elsewhere(request: Request, reply: Reply) {
    let spawned = std::thread::Builder::new()
        .name("hitme-drain".into())
        .stack_size(DRAIN_STACK_BYTES)
        .spawn(move || respond(request, reply));
    if let Err(e) = spawned {
        log::warn!("cannot start a thread to answer an oversized request ({e}); dropping it");
    }
}

/// Runs a handler, catching a panic (returned as its message) so the worker lives on.
fn guarded(handler: impl FnOnce() -> Reply) -> Result<Reply, String> {
    catch_unwind(AssertUnwindSafe(handler)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

fn respond(request: Request, reply: Reply) {
    if let Err(e) = request.respond(reply.into_response()) {
        log::debug!("could not send a response: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_is_caught_with_its_message() {
        let caught = guarded(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(caught, "boom 7");
        assert_eq!(guarded(|| panic!("static")).unwrap_err(), "static");
    }
}

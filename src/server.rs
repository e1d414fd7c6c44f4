//! The server: a tiny_http listener drained by a fixed pool of worker threads, each answering
//! requests with a pooled Redis connection; the accept loop kept alive; a graceful stop on
//! SIGINT or SIGTERM.

use std::net::{Shutdown, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use threadpool::ThreadPool;
use tiny_http::{Request, Server};

use crate::config::Config;
use crate::error::ApiError;
use crate::http::{self, App, Reply};
use crate::listener;
use crate::metrics::Metrics;
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
    let app = Arc::new(App {
        store: Store::new(config.store_config()).map_err(Fatal)?,
        metrics: Metrics::new(),
    });
    let addr = listener.local_addr().map_err(|e| Fatal(e.to_string()))?;
    let acceptor = Arc::new(Acceptor::new(listener).map_err(Fatal)?);

    {
        let acceptor = acceptor.clone();
        ctrlc::set_handler(move || {
            log::info!("stopping: no new connections; finishing requests in flight");
            acceptor.stop();
        })
        .map_err(|e| Fatal(format!("cannot install the SIGINT/SIGTERM handler: {e}")))?;
    }

    log::info!(
        "hitme listening on http://{addr} (threads {}, redis pool {}, redis {})",
        config.threads,
        config.pool_size(),
        store::redact(&config.redis_url)
    );

    let workers = ThreadPool::with_name("hitme-worker".into(), config.threads as usize);
    for _ in 0..config.threads {
        let worker = Worker {
            app: app.clone(),
            acceptor: acceptor.clone(),
        };
        workers.execute(move || worker.run());
    }
    workers.join();
    acceptor.join_retired();
    log::info!("stopped");
    Ok(())
}

/// The tiny_http server that accepts connections, replaced with a new one on the same socket
/// if its accept loop dies: tiny_http ends that loop for good on the first accept error (for
/// example EMFILE, out of file descriptors).
struct Acceptor {
    listener: TcpListener,
    current: RwLock<Arc<Server>>,
    stopping: AtomicBool,
    /// Threads answering the requests of keep-alive connections of replaced servers.
    retired: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Acceptor {
    fn new(listener: TcpListener) -> Result<Acceptor, String> {
        let server = Self::serve_on(&listener)?;
        Ok(Acceptor {
            listener,
            current: RwLock::new(Arc::new(server)),
            stopping: AtomicBool::new(false),
            retired: Default::default(),
        })
    }

    fn serve_on(listener: &TcpListener) -> Result<Server, String> {
        let socket = listener
            .try_clone()
            .map_err(|e| format!("cannot share the listening socket: {e}"))?;
        Server::from_listener(socket, None).map_err(|e| e.to_string())
    }

    fn current(&self) -> Arc<Server> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops accepting: shutting the listening socket wakes tiny_http's accept loop with an
    /// error and refuses new connections. Workers finish what is queued, then exit.
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
    }

    /// Called by a worker that saw `failed` report an accept error: waits until a file
    /// descriptor is free again, then accepts with a new server on the same socket. Returns
    /// the replaced server, whose open connections still need answers; `None` if another
    /// worker already replaced it or HitMe is stopping.
    fn replace(&self, failed: &Arc<Server>, error: &std::io::Error) -> Option<Arc<Server>> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current, failed) || self.is_stopping() {
            return None;
        }
        log::error!("the accept loop stopped: {error}; restoring it");
        let mut wait = Duration::from_millis(10);
        let replacement = loop {
            if self.is_stopping() {
                return None;
            }
            match Self::serve_on(&self.listener) {
                Ok(server) => break server,
                Err(e) => {
                    log::warn!("cannot accept yet ({e}); retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        };
        log::warn!("accept loop restored");
        Some(std::mem::replace(&mut *current, Arc::new(replacement)))
    }

    fn join_retired(&self) {
        let handles = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// One worker thread's loop and everything it needs.
struct Worker {
    app: Arc<App>,
    acceptor: Arc<Acceptor>,
}

impl Worker {
    fn run(self) {
        loop {
            let server = self.acceptor.current();
            if !self.serve_next(&server) {
                return;
            }
        }
    }

    /// Answers the next request `server` has, if any within `IDLE_POLL`; false when HitMe is
    /// stopping and nothing is left.
    fn serve_next(&self, server: &Arc<Server>) -> bool {
        match server.recv_timeout(IDLE_POLL) {
            Ok(Some(request)) => self.answer(request),
            Ok(None) => return !self.acceptor.is_stopping(),
            Err(_) if self.acceptor.is_stopping() => {}
            Err(e) => self.restore_accepting(server, &e),
        }
        true
    }

    fn restore_accepting(&self, failed: &Arc<Server>, error: &std::io::Error) {
        let Some(retired) = self.acceptor.replace(failed, error) else {
            return;
        };
        self.app.metrics.accept_loop_restarted();
        let worker = Worker {
            app: self.app.clone(),
            acceptor: self.acceptor.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("hitme-retired".into())
            .spawn(move || while worker.serve_next(&retired) {});
        match spawned {
            Ok(handle) => self
                .acceptor
                .retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(handle),
            Err(e) => log::warn!("cannot answer the old server's open connections ({e})"),
        }
    }

    fn answer(&self, mut request: Request) {
        let started = Instant::now();
        let _in_flight = self.app.metrics.in_flight();
        let reply = guarded(|| http::handle(&mut request, &self.app)).unwrap_or_else(|panic| {
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
        let (route, status) = (reply.route, reply.status);
        if reply.body_unread {
            respond_and_drain_elsewhere(request, reply);
        } else {
            respond(request, reply);
        }
        self.app.metrics.observe(route, status, started.elapsed());
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

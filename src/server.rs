//! The server: a tiny_http listener drained by a fixed pool of worker threads, each answering
//! requests with a pooled Redis connection; the accept loop kept alive; a graceful stop on
//! SIGINT or SIGTERM.

use std::net::{Shutdown, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use threadpool::ThreadPool;
use tiny_http::{Request, Server};

use crate::cluster::ClusterStore;
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
    let listener = listener::bind(&config.listen, config.reuse_port).map_err(Fatal)?;
    let app = Arc::new(App {
        store: match &config.redis_cluster {
            Some(nodes) => {
                Box::new(ClusterStore::new(&config.store_config(), nodes).map_err(Fatal)?)
            }
            None => Box::new(Store::new(config.store_config()).map_err(Fatal)?),
        },
        metrics: Metrics::new(),
    });
    let addr = listener.local_addr().map_err(|e| Fatal(e.to_string()))?;
    let acceptor = Arc::new(Acceptor::new(listener, config.client_timeout()).map_err(Fatal)?);

    {
        let acceptor = acceptor.clone();
        ctrlc::set_handler(move || {
            log::info!("stopping: no new connections; finishing requests in flight");
            acceptor.stop();
        })
        .map_err(|e| Fatal(format!("cannot install the SIGINT/SIGTERM handler: {e}")))?;
    }

    let redis = match &config.redis_cluster {
        Some(nodes) => {
            let nodes: Vec<String> = nodes.iter().map(|n| store::redact(n)).collect();
            format!("cluster {}", nodes.join(","))
        }
        None => store::redact(&config.redis_url),
    };
    log::info!(
        "hitme listening on http://{addr} (threads {}, redis pool {}, redis {redis})",
        config.threads,
        config.pool_size(),
    );

    {
        let (app, acceptor) = (app.clone(), acceptor.clone());
        std::thread::Builder::new()
            .name("hitme-watchdog".into())
            .spawn(move || watch_accept_loop(app, acceptor))
            .map_err(|e| Fatal(format!("cannot start the accept-loop watchdog: {e}")))?;
    }
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

/// A tiny_http server and the listening-socket descriptor its accept thread owns.
struct Accepting {
    server: Arc<Server>,
    /// tiny_http's accept thread owns this duplicate of the listening socket, so it is closed
    /// when that thread ends, even by a panic tiny_http never reports (it unwraps a failed
    /// `dup` of each accepted connection).
    fd: RawFd,
}

/// The tiny_http server that accepts connections, replaced with a new one on the same socket
/// if its accept loop dies: tiny_http ends that loop for good on the first accept error (for
/// example EMFILE, out of file descriptors).
struct Acceptor {
    listener: TcpListener,
    /// Read timeout of every accepted connection.
    client_timeout: Option<Duration>,
    current: RwLock<Accepting>,
    stopping: AtomicBool,
    /// Threads answering the requests of keep-alive connections of replaced servers.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

/// Descriptors that must be free before a new accept loop starts; it needs two per connection,
/// and starting it with fewer would only see it die again.
const FREE_FDS_TO_RESTORE: usize = 16;

impl Acceptor {
    fn new(listener: TcpListener, client_timeout: Option<Duration>) -> Result<Acceptor, String> {
        let accepting = Self::accept_on(&listener, client_timeout)?;
        Ok(Acceptor {
            listener,
            client_timeout,
            current: RwLock::new(accepting),
            stopping: AtomicBool::new(false),
            retired: Default::default(),
        })
    }

    fn accept_on(
        listener: &TcpListener,
        client_timeout: Option<Duration>,
    ) -> Result<Accepting, String> {
        let socket = listener
            .try_clone()
            .map_err(|e| format!("cannot share the listening socket: {e}"))?;
        let fd = socket.as_raw_fd();
        let server = Server::from_listener_with_read_timeout(socket, None, client_timeout)
            .map_err(|e| e.to_string())?;
        Ok(Accepting {
            server: Arc::new(server),
            fd,
        })
    }

    fn current(&self) -> Arc<Server> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .server
            .clone()
    }

    /// The current server, if its accept thread has died (its socket descriptor is closed or
    /// now names something else).
    fn dead_accept_loop(&self) -> Option<Arc<Server>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let alive = same_open_file(current.fd, self.listener.as_raw_fd());
        (!alive).then(|| current.server.clone())
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

    /// Replaces `failed`, whose accept loop died, with a new server on the same socket once
    /// enough file descriptors are free. Returns the replaced server, whose open connections
    /// still need answers; `None` if another thread already replaced it or HitMe is stopping.
    fn replace(&self, failed: &Arc<Server>, why: &str) -> Option<Arc<Server>> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&current.server, failed) || self.is_stopping() {
            return None;
        }
        log::error!("the accept loop stopped ({why}); restoring it");
        let mut wait = Duration::from_millis(10);
        let replacement = loop {
            if self.is_stopping() {
                return None;
            }
            match self
                .free_descriptors()
                .and_then(|()| Self::accept_on(&self.listener, self.client_timeout))
            {
                Ok(accepting) => break accepting,
                Err(e) => {
                    log::warn!("cannot accept yet ({e}); retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        };
        log::warn!("accept loop restored");
        Some(std::mem::replace(&mut *current, replacement).server)
    }

    fn free_descriptors(&self) -> Result<(), String> {
        let probes: Result<Vec<_>, _> = (0..FREE_FDS_TO_RESTORE)
            .map(|_| self.listener.try_clone())
            .collect();
        probes
            .map(drop)
            .map_err(|e| format!("fewer than {FREE_FDS_TO_RESTORE} file descriptors free: {e}"))
    }

    fn join_retired(&self) {
        let handles = std::mem::take(&mut *self.retired.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// Whether two descriptors are open on the same file (here: the same listening socket).
fn same_open_file(a: RawFd, b: RawFd) -> bool {
    fn identity(fd: RawFd) -> Option<(u64, u64)> {
        // SAFETY: fstat only writes the struct it is given; a closed fd makes it fail.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some((stat.st_dev, stat.st_ino))
    }
    matches!((identity(a), identity(b)), (Some(x), Some(y)) if x == y)
}

/// Restores accepting after `failed`'s accept loop died, and keeps answering `failed`'s open
/// connections on a thread of its own.
fn restore_accepting(app: &Arc<App>, acceptor: &Arc<Acceptor>, failed: &Arc<Server>, why: &str) {
    let Some(retired) = acceptor.replace(failed, why) else {
        return;
    };
    app.metrics.accept_loop_restarted();
    let worker = Worker {
        app: app.clone(),
        acceptor: acceptor.clone(),
    };
    let spawned = std::thread::Builder::new()
        .name("hitme-retired".into())
        .spawn(move || while worker.serve_next(&retired) {});
    match spawned {
        Ok(handle) => acceptor
            .retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle),
        Err(e) => log::warn!("cannot answer the old server's open connections ({e})"),
    }
}

/// How often the watchdog checks that the accept thread is alive.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(200);

/// Checks the accept loop until HitMe stops, restoring it when it has died silently.
fn watch_accept_loop(app: Arc<App>, acceptor: Arc<Acceptor>) {
    while !acceptor.is_stopping() {
        if let Some(dead) = acceptor.dead_accept_loop() {
            restore_accepting(&app, &acceptor, &dead, "its thread ended");
        }
        std::thread::sleep(WATCHDOG_PERIOD);
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
            Err(e) => restore_accepting(&self.app, &self.acceptor, server, &e.to_string()),
        }
        true
    }

    fn answer(&self, mut request: Request) {
        let reply = {
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
            // Counted before the response goes out, so a client that reads /metrics after an
            // answer always finds that answer counted.
            self.app
                .metrics
                .observe(reply.route, reply.status, started.elapsed());
            reply
        };
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

//! Accepting connections: the tiny_http server that does it, and its replacement on the same
//! socket when its accept loop dies (tiny_http ends that loop for good on the first accept
//! error that is not one connection's, such as EMFILE).

use std::net::{Shutdown, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::Server;

/// A tiny_http server and the listening-socket descriptor its accept loop owns.
struct Accepting {
    server: Arc<Server>,
    /// tiny_http's connection threads share this duplicate of the listening socket, so it is
    /// closed when the last of them ends, even by a panic tiny_http does not report.
    fd: RawFd,
}

/// The tiny_http server that accepts connections, replaced with a new one on the same socket
/// if its accept loop dies: tiny_http ends that loop for good on the first accept error (for
/// example EMFILE, out of file descriptors).
pub struct Acceptor {
    listener: TcpListener,
    /// Read timeout of every accepted connection.
    client_timeout: Option<Duration>,
    current: RwLock<Accepting>,
    stopping: AtomicBool,
    /// Threads answering the requests of keep-alive connections of replaced servers.
    retired: Mutex<Vec<JoinHandle<()>>>,
}

/// Descriptors that must be free before a new accept loop starts; it needs one per connection,
/// and starting it with fewer would only see it die again.
const FREE_FDS_TO_RESTORE: usize = 16;

impl Acceptor {
    pub fn new(
        listener: TcpListener,
        client_timeout: Option<Duration>,
    ) -> Result<Acceptor, String> {
        let accepting = Self::accept_on(&listener, client_timeout)?;
        Ok(Acceptor {
            listener,
            client_timeout,
            current: RwLock::new(accepting),
            stopping: AtomicBool::new(false),
            retired: Default::default(),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
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

    pub fn current(&self) -> Arc<Server> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .server
            .clone()
    }

    /// The current server, if its accept loop has died (its socket descriptor is closed or
    /// now names something else).
    pub(crate) fn dead_accept_loop(&self) -> Option<Arc<Server>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let alive = same_open_file(current.fd, self.listener.as_raw_fd());
        (!alive).then(|| current.server.clone())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Stops accepting: shutting the listening socket wakes tiny_http's accept loop with an
    /// error and refuses new connections. Workers finish what is queued, then exit.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
    }

    /// Replaces `failed`, whose accept loop died, with a new server on the same socket once
    /// enough file descriptors are free. Returns the replaced server, whose open connections
    /// still need answers; `None` if another thread already replaced it or HitMe is stopping.
    pub fn replace(&self, failed: &Arc<Server>, why: &str) -> Option<Arc<Server>> {
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

    /// Keeps `handle` (a thread answering a replaced server's connections) to join at the end.
    pub(crate) fn add_retired(&self, handle: JoinHandle<()>) {
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(handle);
    }

    pub(crate) fn join_retired(&self) {
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

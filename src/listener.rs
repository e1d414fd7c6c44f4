//! The listening socket: a deep accept backlog and enough file descriptors for thousands of
//! concurrent clients.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may queue (capped by `net.core.somaxconn`). tiny_http's own
/// `Server::http` asks for 128, which makes bursts of clients wait seconds for SYN retries.
const BACKLOG: i32 = 65_535;

/// How long a write may wait for a client that takes nothing: past it the write fails and
/// the answer is cut short (a client reading a long `GET /hits` slowly or not at all cannot
/// hold a thread for ever). Set on the listening socket, whose connections inherit it, so it
/// costs no system call per connection. Only an answer larger than the socket's buffers can
/// ever wait.
pub(crate) const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds `addr` (host:port) with a large backlog and `SO_REUSEADDR`, and `SO_REUSEPORT` when
/// asked so that several processes can share the address.
pub fn bind(addr: &str, reuse_port: bool) -> Result<TcpListener, String> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            format!("cannot resolve --listen {addr} ({e}); use host:port such as 127.0.0.1:8080")
        })?
        .collect();
    let mut last_error = None;
    for sock_addr in &addrs {
        match bind_one(*sock_addr, reuse_port) {
            Ok(listener) => return Ok(listener),
            Err(e) => last_error = Some(e),
        }
    }
    let why = last_error.map_or_else(|| "no address".to_string(), |e| e.to_string());
    Err(format!(
        "cannot listen on {addr} ({why}); is another process using the port? Choose another with --listen (or start every instance with --reuse-port to share it)"
    ))
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(reuse_port)?;
    // Accepted connections inherit it (Linux copies the listener's socket options); never a
    // read timeout here, which would end tiny_http's accept loop.
    socket.set_write_timeout(Some(WRITE_STALL))?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Raises the soft open-file limit to the hard limit. Each client holds a descriptor, and one
/// failed accept (EMFILE) stops tiny_http's accept loop for good. Returns the limit in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

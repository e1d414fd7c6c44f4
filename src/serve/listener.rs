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
    // Accepted connections inherit it (Linux copies the listener's socket options), as they
    // inherit the read timeout tiny_http sets here (the client timeout).
    socket.set_write_timeout(Some(WRITE_STALL))?;
    defer_accept(&socket)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Seconds a connection that has sent nothing waits in the kernel before it is accepted anyway
/// (Linux rounds it up to the next SYN-ACK retransmission, about a second).
const DEFER_ACCEPT_S: libc::c_int = 1;

/// `TCP_DEFER_ACCEPT`: the kernel hands a connection to `accept()` once its first bytes have
/// arrived, so that the connection thread that accepts it reads its request at once instead
/// of sleeping on an empty socket and being woken again (under `ab`, where a client connects,
/// then writes, a third of the floor's context switches). A client that connects and sends
/// nothing is still accepted, after about `DEFER_ACCEPT_S`, and then has the client timeout
/// like any other.
fn defer_accept(socket: &Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setsockopt reads one c_int from a live local for a socket this function borrows.
    let status = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&DEFER_ACCEPT_S as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raises the soft open-file limit to the hard limit. Each client holds a descriptor, and a
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

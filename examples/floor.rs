//! The design floor: HitMe's server without its work. The same listening socket (deep
//! backlog, raised file limit), the same vendored tiny_http and accept loop, the same pool of
//! worker threads pulling requests, each reading the request body and answering
//! `{"status":"OK"}` with HitMe's headers, but no parsing, no Redis and no metrics. What
//! HitMe does on top of this is HitMe's cost; this is what the design itself costs.
//! `scripts/bench` builds it and runs it as the target `floor`.
//!
//!     cargo run --release --example floor -- --listen 127.0.0.1:8081 --threads 2

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hitme::http::{Response, MAX_BODY_BYTES};
use hitme::serve::acceptor::Acceptor;
use hitme::serve::listener;

/// HitMe's threads and socket answering without Redis.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// Worker threads, as HitMe's --threads (and its default).
    #[arg(long, default_value_t = hitme::config::default_threads() as usize)]
    threads: usize,
    /// As HitMe's --client-timeout-ms.
    #[arg(long, default_value_t = 15_000)]
    client_timeout_ms: u64,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let _ = listener::raise_open_file_limit();
    let socket = listener::bind(&args.listen, false)?;
    let addr = socket.local_addr().map_err(|e| e.to_string())?;
    let timeout =
        (args.client_timeout_ms > 0).then(|| Duration::from_millis(args.client_timeout_ms));
    let acceptor = Arc::new(Acceptor::new(socket, timeout)?);
    eprintln!(
        "floor listening on http://{addr} (threads {})",
        args.threads
    );
    let workers = threadpool::ThreadPool::new(args.threads);
    for _ in 0..args.threads {
        let acceptor = acceptor.clone();
        workers.execute(move || {
            let mut body = Vec::with_capacity(1024);
            loop {
                let Ok(mut request) = acceptor.current().recv() else {
                    return;
                };
                body.clear();
                let _ = request
                    .as_reader()
                    .take(MAX_BODY_BYTES as u64)
                    .read_to_end(&mut body);
                let response = Response::ok();
                let _ = request.respond(response.into_tiny(Vec::new()));
            }
        });
    }
    workers.join();
    Ok(())
}

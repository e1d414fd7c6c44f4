//! One worker thread: takes requests off the listener, parses and limits each, applies what
//! it can itself (a batch of hits together) and hands the reads that scan to the read pool;
//! every answer is counted and sent from here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Server};

use super::acceptor::Acceptor;
use super::read_pool::ReadPool;
use crate::http::error::ApiError;
use crate::http::{self, App, Body, Command, Placed, RecordHit, Response};
use crate::metrics::Metrics;
use crate::store::StoreError;

/// How often an idle worker looks up to see whether HitMe is stopping.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The most hits a worker takes at once: those queued when it takes one, up to this (and
/// after them at most one request that is not a hit).
const MAX_BATCH: usize = 16;

/// Stack of a thread that answers a request whose oversized body was left unread.
const DRAIN_STACK_BYTES: usize = 64 * 1024;

/// One worker thread's loop and everything it needs.
#[derive(Clone)]
pub(super) struct Worker {
    pub app: Arc<App>,
    pub acceptor: Arc<Acceptor>,
    pub reads: Arc<ReadPool>,
}

/// A request taken off the listener, before its command is applied.
struct Taken {
    request: Request,
    started: Instant,
}

impl Worker {
    pub(super) fn run(self) {
        loop {
            let server = self.acceptor.current();
            if !self.serve_next(&server) {
                return;
            }
        }
    }

    /// Answers the next request `server` has, if any within `IDLE_POLL`, with those queued
    /// behind it; false when HitMe is stopping and nothing is left.
    fn serve_next(&self, server: &Arc<Server>) -> bool {
        match server.recv_timeout(IDLE_POLL) {
            Ok(Some(request)) => self.serve(request, server),
            Ok(None) => return !self.acceptor.is_stopping(),
            Err(_) if self.acceptor.is_stopping() => {}
            Err(e) => self.restore_accepting(server, &e.to_string()),
        }
        true
    }

    /// Restores accepting after `failed`'s accept loop died, and keeps answering `failed`'s
    /// open connections on a thread of its own.
    pub(super) fn restore_accepting(&self, failed: &Arc<Server>, why: &str) {
        let Some(retired) = self.acceptor.replace(failed, why) else {
            return;
        };
        self.app.metrics.accept_loop_restarted();
        let worker = self.clone();
        let spawned = std::thread::Builder::new()
            .name("hitme-retired".into())
            .spawn(move || while worker.serve_next(&retired) {});
        match spawned {
            Ok(handle) => self.acceptor.add_retired(handle),
            Err(e) => log::warn!("cannot answer the old server's open connections ({e})"),
        }
    }

    /// Answers `request`. Behind a hit, the hits already waiting are taken too (never waited
    /// for), so that they are applied together in one round trip to Redis (in cluster mode,
    /// those for the same URL). Taking stops at the first request that is not a hit with its
    /// body in memory: whatever a worker has taken no other worker can answer, so it comes
    /// last.
    fn serve(&self, mut request: Request, server: &Server) {
        let started = Instant::now();
        // Queued hits are taken only behind a hit whose body was already in memory; one whose
        // body came as its client sent it is recorded alone.
        let body_was_in_memory = http::body_in_memory(&request);
        let command = match self.take(&mut request) {
            Ok(command) => command,
            Err(refused) => return send(&self.app, request, refused, started),
        };
        let Command::RecordHit(hit) = command else {
            return self.place(Taken { request, started }, command);
        };
        let next = match body_was_in_memory {
            true => server.try_recv().ok().flatten(),
            false => None,
        };
        let Some(mut next) = next else {
            // Alone (the common case when idle), it is applied without a batch.
            let response = apply(&self.app, Command::RecordHit(hit), &request);
            return send(&self.app, request, response, started);
        };
        let mut hits = Vec::with_capacity(MAX_BATCH);
        // Each request taken, with its answer when it was refused (a hit over its client's
        // rate limit, a request in error); the others are answered as their hits are applied.
        let mut taken = Vec::with_capacity(MAX_BATCH);
        hits.push(hit);
        taken.push((Taken { request, started }, None));
        let last = loop {
            let started = Instant::now();
            if !http::body_in_memory(&next) {
                break Some((
                    Taken {
                        request: next,
                        started,
                    },
                    None,
                ));
            }
            match self.take(&mut next) {
                Ok(Command::RecordHit(hit)) => {
                    hits.push(hit);
                    taken.push((
                        Taken {
                            request: next,
                            started,
                        },
                        None,
                    ));
                }
                Ok(command) => {
                    break Some((
                        Taken {
                            request: next,
                            started,
                        },
                        Some(command),
                    ))
                }
                Err(refused) => taken.push((
                    Taken {
                        request: next,
                        started,
                    },
                    Some(refused),
                )),
            }
            if taken.len() == MAX_BATCH {
                break None;
            }
            match server.try_recv() {
                Ok(Some(request)) => next = request,
                _ => break None,
            }
        };
        // The order matters: tiny_http sends a connection's answers in the order of its
        // requests, so an answer sent ahead of an earlier request of the same (pipelining)
        // connection held in this batch would wait for it for ever.
        let mut recorded = self.apply_hits(hits).into_iter();
        for (Taken { request, started }, refused) in taken {
            let response = refused
                .or_else(|| recorded.next())
                .unwrap_or_else(Response::ok);
            send(&self.app, request, response, started);
        }
        if let Some((mut taken, command)) = last {
            let command = match command {
                Some(command) => command,
                None => match self.take(&mut taken.request) {
                    Ok(command) => command,
                    Err(refused) => return send(&self.app, taken.request, refused, taken.started),
                },
            };
            self.place(taken, command);
        }
    }

    /// Parses `request` and holds what it counts to its client's `--rate-limit`: the command
    /// to apply, or the answer when it is refused. A panic is a 500, and the bug logged.
    fn take(&self, request: &mut Request) -> Result<Command, Response> {
        let parsed = guarded(|| http::parse(request, &self.app))
            .unwrap_or_else(|panic| Err(handler_bug(request, &panic)));
        let command = parsed.map_err(|err| Response::error(&err))?;
        match self.over_limit(request, command.counts()) {
            None => Ok(command),
            Some((refused, headers)) => Err(command.refused(&refused).with_headers(headers)),
        }
    }

    /// Applies `command` here, or hands it to the read pool.
    fn place(&self, taken: Taken, command: Command) {
        let Taken { request, started } = taken;
        match command.place(&self.app) {
            Placed::Worker(command) => {
                let response = apply(&self.app, command, &request);
                send(&self.app, request, response, started);
            }
            Placed::Reads(command) => self.hand_to_reads(request, command, started),
        }
    }

    /// Queues a read for the read pool; it is refused when too many wait already, or when it
    /// has waited past `--read-queue-ms` by the time a read thread takes it.
    fn hand_to_reads(&self, request: Request, command: Command, started: Instant) {
        if !self.reads.has_room() {
            self.app.metrics.read_refused("queue_full");
            let refused = ApiError::reads_queue_full(self.reads.max_queued());
            return send(&self.app, request, Response::error(&refused), started);
        }
        let (app, max_wait) = (self.app.clone(), self.reads.max_wait);
        let read = move || {
            let waited = started.elapsed();
            let response = if waited > max_wait {
                app.metrics.read_refused("waited");
                Response::error(&ApiError::read_waited(waited))
            } else {
                apply(&app, command, &request)
            };
            send(&app, request, response, started);
        };
        self.reads.run(read);
    }

    /// The refusal (its error and headers) of a request that `counts` a hit over its
    /// client's `--rate-limit`; `None` when it may go on, or counts nothing, or there is no
    /// limit.
    fn over_limit(&self, request: &Request, counts: bool) -> Option<(ApiError, Vec<Header>)> {
        let limiter = self.app.limiter.as_ref().filter(|_| counts)?;
        let quota = limiter.take(self.app.proxies.client_of(request)?);
        if quota.allowed {
            return None;
        }
        let rate = limiter.rate();
        let rate = format!("{}/{}", rate.requests, humantime::format_duration(rate.per));
        let refused = ApiError::too_many_requests(&rate, quota.retry_after_secs);
        Some((refused, limiter.headers(&quota)))
    }

    /// Applies hits taken together; one answer per hit, in order. A panic is a 500 for each,
    /// and the bug logged.
    fn apply_hits(&self, hits: Vec<RecordHit>) -> Vec<Response> {
        let n = hits.len();
        let _in_flight = self.app.metrics.in_flight();
        guarded(|| RecordHit::apply_all(&self.app, hits)).unwrap_or_else(|panic| {
            let err = ApiError::from(store_bug(&panic));
            (0..n).map(|_| Response::error(&err)).collect()
        })
    }
}

/// Applies `command`; a panic is a 500, and the bug logged.
fn apply(app: &App, command: Command, request: &Request) -> Response {
    let _in_flight = app.metrics.in_flight();
    guarded(|| command.apply(app))
        .unwrap_or_else(|panic| Response::error(&handler_bug(request, &panic)))
}

/// Counts `response` and sends it.
fn send(app: &App, request: Request, response: Response, started: Instant) {
    // Counted before the response goes out, so a client that reads /metrics after an
    // answer always finds that answer counted.
    app.metrics.observe(
        http::route_label(&request),
        response.status,
        started.elapsed(),
    );
    if log::log_enabled!(log::Level::Debug) {
        log::debug!(
            "{} {} -> {}",
            request.method(),
            path_of(&request),
            response.status
        );
    }
    let headers = http::edge_headers(&request, &response, app);
    if response.body_unread {
        respond_and_drain_elsewhere(request, response, headers);
    } else {
        respond(request, response, headers, &app.metrics);
    }
}

/// The error for a request whose handler panicked: a 500, and the bug logged.
fn handler_bug(request: &Request, panic: &str) -> ApiError {
    log::error!(
        "bug: handler panicked on {} {}: {panic}",
        request.method(),
        path_of(request)
    );
    ApiError::internal("internal error; it has been logged, please report it")
}

/// The error for hits whose recording panicked.
fn store_bug(panic: &str) -> StoreError {
    log::error!("bug: recording hits panicked: {panic}");
    StoreError::Internal("internal error; it has been logged, please report it".into())
}

/// The request's path without its query: a query's `url=` may carry what a visitor's browser
/// sent, which HitMe never logs.
fn path_of(request: &Request) -> &str {
    request.url().split('?').next().unwrap_or("")
}

/// tiny_http reads an unread body to its end when the request is dropped, which never ends if
/// the client declared a huge body and stalls. The answer goes out at once from a thread of its
/// own, which then waits out the client; the thread ends when the connection does.
fn respond_and_drain_elsewhere(request: Request, response: Response, headers: Vec<Header>) {
    let spawned = std::thread::Builder::new()
        .name("hitme-drain".into())
        .stack_size(DRAIN_STACK_BYTES)
        .spawn(move || {
            let _ = request.respond(response.into_tiny(headers));
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread to answer an oversized request ({e}); dropping it");
    }
}

/// Runs a handler, catching a panic (returned as its message) so the worker lives on.
fn guarded<T>(handler: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(handler)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default()
    })
}

fn respond(request: Request, response: Response, headers: Vec<Header>, metrics: &Metrics) {
    let streamed = matches!(response.body, Body::Stream(_));
    let path = streamed.then(|| path_of(&request).to_string());
    match request.respond(response.into_tiny(headers)) {
        Ok(()) => {}
        // tiny_http then sends no last chunk and closes the connection, so the client sees
        // the answer is incomplete.
        Err(e) if streamed => {
            let slow = matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            );
            metrics.response_cut(if slow { "slow_client" } else { "failed" });
            let path = path.unwrap_or_default();
            match slow {
                true => log::info!(
                    "cut short the answer to GET {path}: the client took it too slowly ({e})"
                ),
                false => log::warn!("cut short the answer to GET {path}: {e}"),
            }
        }
        Err(e) => log::debug!("could not send a response: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_is_caught_with_its_message() {
        let caught = guarded(|| -> () { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(caught, "boom 7");
        assert_eq!(
            guarded(|| -> () { panic!("static") }).unwrap_err(),
            "static"
        );
    }
}

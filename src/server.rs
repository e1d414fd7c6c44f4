//! The server: a tiny_http listener drained by a fixed pool of worker threads, each answering
//! requests with a pooled Redis connection; the watchdog that keeps the accept loop alive
//! (`crate::acceptor`); a graceful stop on SIGINT or SIGTERM.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use threadpool::ThreadPool;
use tiny_http::{Header, Request, Server};

use crate::acceptor::Acceptor;
use crate::config::Config;
use crate::http::access::{AdminAccess, ReadAccess};
use crate::http::bots::Bots;
use crate::http::canonical::UrlRules;
use crate::http::error::ApiError;
use crate::http::rate_limit::RateLimiter;
use crate::http::{self, App, Body, Command, Lane, Response};
use crate::listener;
use crate::metrics::Metrics;
use crate::read_pool::ReadPool;
use crate::store::settings::{self, Refusal};
use crate::store::{self, Hit, HitStore, StoreError};
use crate::top::Rankings;
use crate::visits::Visits;

/// How often an idle worker looks up to see whether HitMe is stopping.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The most hits a worker takes at once: those queued when it takes one, up to this (and
/// after them at most one request that is not a hit).
const MAX_BATCH: usize = 16;

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

/// How often the recorded settings are asked for again while Redis does not answer.
const SETTINGS_RETRY: Duration = Duration::from_millis(500);

/// Checks this HitMe's calendar against the one recorded under its key prefix (recording it
/// on a first start): a mismatch stops HitMe before it counts anything. With Redis down at
/// startup, a thread checks once it answers and stops HitMe then on a mismatch.
pub(crate) fn check_calendar(store: &Arc<dyn HitStore>, config: &Config) -> Result<(), Fatal> {
    let calendar = config.calendar();
    let settings = [
        ("time_zone", calendar.zone_name().to_string()),
        ("week_start", calendar.week_start.name().to_string()),
    ];
    let prefix = config.key_prefix.clone();
    let check = {
        let store = store.clone();
        move || {
            let settings: Vec<(&str, &str)> =
                settings.iter().map(|(n, v)| (*n, v.as_str())).collect();
            settings::check(&prefix, &settings, |s| store.claim_settings(s))
        }
    };
    match check() {
        Ok(()) => Ok(()),
        Err(Refusal::Mismatch(message)) => Err(Fatal(message)),
        Err(Refusal::Unavailable(e)) => {
            log::warn!(
                "cannot check the calendar recorded under --key-prefix {} yet ({}); checking again once Redis answers",
                config.key_prefix,
                e.message()
            );
            std::thread::Builder::new()
                .name("hitme-settings".into())
                .spawn(move || loop {
                    std::thread::sleep(SETTINGS_RETRY);
                    match check() {
                        Ok(()) => return,
                        Err(Refusal::Unavailable(_)) => continue,
                        Err(Refusal::Mismatch(message)) => {
                            log::error!("{message}");
                            std::process::exit(2);
                        }
                    }
                })
                .map(drop)
                .map_err(|e| Fatal(format!("cannot start a thread: {e}")))
        }
    }
}

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
    let metrics = Metrics::new();
    let opened = store::open(&config.store_config(), metrics.store_counters()).map_err(Fatal)?;
    let store: Arc<dyn HitStore> = opened.store.into();
    check_calendar(&store, &config)?;
    let app = Arc::new(App {
        store,
        rankings: Rankings::new(),
        pool: opened.pool,
        calendar: config.calendar(),
        url_rules: UrlRules::dropping(&config.drop_query_params),
        cors: config.cors_origins.clone(),
        metrics,
        keep_alive: http::keep_alive_header(config.client_timeout()),
        sites: config.sites.clone(),
        proxies: config.trusted_proxies.clone(),
        limiter: config.rate_limit.map(RateLimiter::new),
        bots: Bots::new(config.count_bots),
        access: ReadAccess::new(config.read_token().map_err(Fatal)?, config.public_counts),
        visits: config.visits.then(Visits::default),
        admin: AdminAccess::new(config.admin_token().map_err(Fatal)?),
    });
    let addr = listener.local_addr().map_err(|e| Fatal(e.to_string()))?;
    if !addr.ip().is_loopback() && config.sites.all() {
        log::warn!(
            "listening on {addr}, beyond this machine, and counting every host's URLs: anyone can fill Redis with junk; name your sites with --sites (see the README, \"Running HitMe on the internet\")"
        );
    }
    let acceptor = Arc::new(Acceptor::new(listener, config.client_timeout()).map_err(Fatal)?);

    {
        let acceptor = acceptor.clone();
        ctrlc::set_handler(move || {
            // A Ctrl-C under scripts/run comes twice: from the terminal and from the script.
            if !acceptor.is_stopping() {
                log::info!("stopping: no new connections; finishing requests in flight");
            }
            acceptor.stop();
        })
        .map_err(|e| Fatal(format!("cannot install the SIGINT/SIGTERM handler: {e}")))?;
    }

    log::info!(
        "hitme listening on http://{addr} (threads {}, read threads {}, redis pool {}, redis {})",
        config.threads(),
        config.read_threads,
        config.pool_size(),
        config.redis_description(),
    );

    let worker = Worker {
        app,
        acceptor: acceptor.clone(),
        reads: Arc::new(ReadPool::new(
            config.read_threads as usize,
            Duration::from_millis(config.read_queue_ms),
        )),
    };
    {
        let worker = worker.clone();
        std::thread::Builder::new()
            .name("hitme-watchdog".into())
            .spawn(move || watch_accept_loop(worker))
            .map_err(|e| Fatal(format!("cannot start the accept-loop watchdog: {e}")))?;
    }
    let workers = ThreadPool::with_name("hitme-worker".into(), config.threads() as usize);
    for _ in 0..config.threads() {
        let worker = worker.clone();
        workers.execute(move || worker.run());
    }
    workers.join();
    acceptor.join_retired();
    worker.reads.join();
    log::info!("stopped");
    Ok(())
}

/// Restores accepting after `failed`'s accept loop died, and keeps answering `failed`'s open
/// connections on a thread of its own.
fn restore_accepting(worker: &Worker, failed: &Arc<Server>, why: &str) {
    let Some(retired) = worker.acceptor.replace(failed, why) else {
        return;
    };
    worker.app.metrics.accept_loop_restarted();
    let acceptor = worker.acceptor.clone();
    let worker = worker.clone();
    let spawned = std::thread::Builder::new()
        .name("hitme-retired".into())
        .spawn(move || while worker.serve_next(&retired) {});
    match spawned {
        Ok(handle) => acceptor.add_retired(handle),
        Err(e) => log::warn!("cannot answer the old server's open connections ({e})"),
    }
}

/// How often the watchdog checks that the accept thread is alive.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(200);

/// Checks the accept loop until HitMe stops, restoring it when it has died silently.
fn watch_accept_loop(worker: Worker) {
    while !worker.acceptor.is_stopping() {
        if let Some(dead) = worker.acceptor.dead_accept_loop() {
            restore_accepting(&worker, &dead, "its thread ended");
        }
        std::thread::sleep(WATCHDOG_PERIOD);
    }
}

/// One worker thread's loop and everything it needs.
#[derive(Clone)]
struct Worker {
    app: Arc<App>,
    acceptor: Arc<Acceptor>,
    reads: Arc<ReadPool>,
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

    /// Answers the next request `server` has, if any within `IDLE_POLL`, with those queued
    /// behind it; false when HitMe is stopping and nothing is left.
    fn serve_next(&self, server: &Arc<Server>) -> bool {
        match server.recv_timeout(IDLE_POLL) {
            Ok(Some(request)) => self.serve(request, server),
            Ok(None) => return !self.acceptor.is_stopping(),
            Err(_) if self.acceptor.is_stopping() => {}
            Err(e) => restore_accepting(self, server, &e.to_string()),
        }
        true
    }

    /// Answers `request`. Behind a hit, the hits already waiting are taken too (never waited
    /// for), so that they share one round trip to Redis (in cluster mode, those for the same
    /// URL). Taking stops at the first request that is not a hit with its body in memory:
    /// whatever a worker has taken no other worker can answer, so it comes last.
    fn serve(&self, mut request: Request, server: &Server) {
        let started = Instant::now();
        // Queued hits are taken only behind a hit whose body was already in memory; one whose
        // body came as its client sent it is recorded alone.
        let body_was_in_memory = http::body_in_memory(&request);
        let hit = match self.parse(&mut request) {
            Ok(Command::RecordHit(cmd)) => match self.over_limit(&request, true) {
                None => cmd.hit,
                Some((refused, headers)) => {
                    let response = Response::error(&refused).with_headers(headers);
                    return send(&self.app, request, response, started);
                }
            },
            parsed => return self.dispatch(request, parsed, started),
        };
        let next = match body_was_in_memory {
            true => server.try_recv().ok().flatten(),
            false => None,
        };
        let Some(mut next) = next else {
            // Alone (the common case when idle), it is recorded without a batch.
            let _in_flight = self.app.metrics.in_flight();
            let recorded = guarded(|| self.app.store.record_hit(hit))
                .unwrap_or_else(|panic| Err(store_bug(&panic)));
            let response =
                recorded.map_or_else(|err| Response::error(&err.into()), |()| Response::ok());
            return send(&self.app, request, response, started);
        };
        let mut hits = Vec::with_capacity(MAX_BATCH);
        // Each request taken, with its refusal when over its client's rate limit (hits are
        // limited one by one); the others are answered as their hits are recorded.
        let mut taken = Vec::with_capacity(MAX_BATCH);
        hits.push(hit);
        taken.push((request, started, None));
        let last = loop {
            let started = Instant::now();
            if !http::body_in_memory(&next) {
                break Some((next, None, started));
            }
            match self.parse(&mut next) {
                Ok(Command::RecordHit(cmd)) => match self.over_limit(&next, true) {
                    None => {
                        hits.push(cmd.hit);
                        taken.push((next, started, None));
                    }
                    Some((refused, headers)) => {
                        let response = Response::error(&refused).with_headers(headers);
                        taken.push((next, started, Some(response)));
                    }
                },
                parsed => break Some((next, Some(parsed), started)),
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
        let mut recorded = self.record(hits).into_iter();
        for (request, started, refused) in taken {
            let response = refused.unwrap_or_else(|| match recorded.next() {
                Some(Err(err)) => Response::error(&err.into()),
                _ => Response::ok(),
            });
            send(&self.app, request, response, started);
        }
        if let Some((mut request, parsed, started)) = last {
            let parsed = parsed.unwrap_or_else(|| self.parse(&mut request));
            self.dispatch(request, parsed, started);
        }
    }

    /// Parses `request`; a panic is a 500, and the bug logged.
    fn parse(&self, request: &mut Request) -> Result<Command, ApiError> {
        let parsed = guarded(|| http::parse(request, &self.app));
        parsed.unwrap_or_else(|panic| Err(handler_bug(request, &panic)))
    }

    /// Answers a parsed request here, or hands it to the read pool.
    fn dispatch(&self, request: Request, parsed: Result<Command, ApiError>, started: Instant) {
        let mut command = match parsed {
            Ok(command) => command,
            Err(err) => return send(&self.app, request, Response::error(&err), started),
        };
        if let Some((refused, headers)) = self.over_limit(&request, command.counts()) {
            let response = command.refused(&refused).with_headers(headers);
            return send(&self.app, request, response, started);
        }
        match command.lane(&self.app) {
            Lane::Worker => {
                let response = apply(&self.app, command, &request);
                send(&self.app, request, response, started);
            }
            Lane::Reads => self.hand_to_reads(request, command, started),
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

    /// Records hits taken together in one round trip; one outcome per hit, in order.
    fn record(&self, hits: Vec<Hit>) -> Vec<Result<(), StoreError>> {
        let n = hits.len();
        let _in_flight = self.app.metrics.in_flight();
        self.app.metrics.hits_batched(n);
        guarded(|| self.app.store.record_hits(hits))
            .unwrap_or_else(|panic| vec![Err(store_bug(&panic)); n])
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

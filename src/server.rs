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
use crate::http::canonical::UrlRules;
use crate::http::error::ApiError;
use crate::http::{self, Answer, App, Handled, Reply, StreamLimit};
use crate::listener;
use crate::metrics::Metrics;
use crate::store::settings::{self, Refusal};
use crate::store::{self, Hit, HitStore, StoreError};
use crate::top::Rankings;

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
fn check_settings(store: &Arc<dyn HitStore>, config: &Config) -> Result<(), Fatal> {
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
    check_settings(&store, &config)?;
    let app = Arc::new(App {
        store,
        rankings: Rankings::new(config.threads() as usize),
        hits_streams: StreamLimit::new(config.threads() as usize),
        pool: opened.pool,
        calendar: config.calendar(),
        url_rules: UrlRules::dropping(&config.drop_query_params),
        cors: config.cors_origins.clone(),
        metrics,
        keep_alive: http::keep_alive_header(config.client_timeout()),
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

    log::info!(
        "hitme listening on http://{addr} (threads {}, redis pool {}, redis {})",
        config.threads(),
        config.pool_size(),
        config.redis_description(),
    );

    {
        let (app, acceptor) = (app.clone(), acceptor.clone());
        std::thread::Builder::new()
            .name("hitme-watchdog".into())
            .spawn(move || watch_accept_loop(app, acceptor))
            .map_err(|e| Fatal(format!("cannot start the accept-loop watchdog: {e}")))?;
    }
    let workers = ThreadPool::with_name("hitme-worker".into(), config.threads() as usize);
    for _ in 0..config.threads() {
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
        Ok(handle) => acceptor.add_retired(handle),
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

    /// Answers the next request `server` has, if any within `IDLE_POLL`, with those queued
    /// behind it; false when HitMe is stopping and nothing is left.
    fn serve_next(&self, server: &Arc<Server>) -> bool {
        match server.recv_timeout(IDLE_POLL) {
            Ok(Some(request)) => {
                // Behind a hit, the hits already waiting are taken too (never waited for), so
                // that they share one round trip to Redis (in cluster mode, those for the same
                // URL). Taking stops at the first request that is not a hit with its body
                // read: it may be slow (GET /hits, a body still coming), and whatever a worker
                // has taken no other worker can answer, so it comes last.
                let next = match http::is_ready_hit(&request) {
                    true => server.try_recv().ok().flatten(),
                    false => None,
                };
                let Some(mut next) = next else {
                    // Alone (the common case when idle), it is answered without a batch.
                    self.answer(request);
                    return true;
                };
                let mut hits = Vec::with_capacity(MAX_BATCH);
                hits.push(request);
                let last = loop {
                    if !http::is_ready_hit(&next) {
                        break Some(next);
                    }
                    hits.push(next);
                    if hits.len() == MAX_BATCH {
                        break None;
                    }
                    match server.try_recv() {
                        Ok(Some(request)) => next = request,
                        _ => break None,
                    }
                };
                self.answer_batch(hits, last);
            }
            Ok(None) => return !self.acceptor.is_stopping(),
            Err(_) if self.acceptor.is_stopping() => {}
            Err(e) => restore_accepting(&self.app, &self.acceptor, server, &e.to_string()),
        }
        true
    }

    fn answer(&self, mut request: Request) {
        let started = Instant::now();
        let answer = {
            let _in_flight = self.app.metrics.in_flight();
            guarded(|| http::handle(&mut request, &self.app))
                .unwrap_or_else(|panic| panicked(&request, &panic))
        };
        self.send(request, answer, started);
    }

    /// Answers hits taken together, then `last`, in the order they came: the hits are
    /// recorded in one round trip (in one transaction with a standalone Redis), and each is
    /// answered once it has returned; a refused one waits its turn.
    ///
    /// The order matters: tiny_http sends a connection's answers in the order of its
    /// requests, so an answer sent ahead of an earlier request of the same (pipelining)
    /// connection held in this batch would wait for it for ever.
    fn answer_batch(&self, requests: Vec<Request>, last: Option<Request>) {
        let mut hits = Vec::with_capacity(requests.len());
        let mut waiting = Vec::with_capacity(requests.len());
        for mut request in requests {
            let started = Instant::now();
            let in_flight = self.app.metrics.in_flight();
            let handled = guarded(|| http::handle_deferring_hits(&mut request, &self.app, true))
                .unwrap_or_else(|panic| Handled::Answered(panicked(&request, &panic)));
            let (answer, records) = match handled {
                Handled::Hit(hit, answer) => {
                    hits.push(hit);
                    (answer, true)
                }
                Handled::Answered(answer) => (answer, false),
            };
            waiting.push((request, answer, started, in_flight, records));
        }
        let mut outcomes = self.record(hits).into_iter();
        for (request, mut answer, started, in_flight, records) in waiting {
            drop(in_flight);
            if records {
                if let Some(Err(err)) = outcomes.next() {
                    answer.reply = Reply::error(&ApiError::from(err));
                }
            }
            self.send(request, answer, started);
        }
        if let Some(request) = last {
            self.answer(request);
        }
    }

    /// Records hits taken together in one round trip; one outcome per hit, in order.
    fn record(&self, hits: Vec<Hit>) -> Vec<Result<(), StoreError>> {
        let n = hits.len();
        if n == 0 {
            return Vec::new();
        }
        self.app.metrics.hits_batched(n);
        guarded(|| self.app.store.record_hits(hits)).unwrap_or_else(|panic| {
            log::error!("bug: recording a batch of hits panicked: {panic}");
            let bug =
                StoreError::Internal("internal error; it has been logged, please report it".into());
            vec![Err(bug); n]
        })
    }

    /// Counts `answer` and sends it.
    fn send(&self, request: Request, answer: Answer, started: Instant) {
        // Counted before the response goes out, so a client that reads /metrics after an
        // answer always finds that answer counted.
        self.app
            .metrics
            .observe(answer.route, answer.reply.status, started.elapsed());
        if log::log_enabled!(log::Level::Debug) {
            log::debug!(
                "{} {} -> {}",
                request.method(),
                path_of(&request),
                answer.reply.status
            );
        }
        let headers = answer.headers(&self.app);
        if answer.body_unread {
            respond_and_drain_elsewhere(request, answer.reply, headers);
        } else {
            respond(request, answer.reply, headers);
        }
    }
}

/// The answer to a request whose handler panicked: a 500, and the bug logged.
fn panicked(request: &Request, panic: &str) -> Answer {
    log::error!(
        "bug: handler panicked on {} {}: {panic}",
        request.method(),
        path_of(request)
    );
    Answer {
        reply: Reply::error(&ApiError::internal(
            "internal error; it has been logged, please report it",
        )),
        route: "other",
        body_unread: false,
        keep_alive: false,
        cors: None,
        preflight: false,
    }
}

/// The request's path without its query: a query's `url=` may carry what a visitor's browser
/// sent, which HitMe never logs.
fn path_of(request: &Request) -> &str {
    request.url().split('?').next().unwrap_or("")
}

/// tiny_http reads an unread body to its end when the request is dropped, which never ends if
/// the client declared a huge body and stalls. The answer goes out at once from a thread of its
/// own, which then waits out the client; the thread ends when the connection does.
fn respond_and_drain_elsewhere(request: Request, reply: Reply, headers: Vec<Header>) {
    let spawned = std::thread::Builder::new()
        .name("hitme-drain".into())
        .stack_size(DRAIN_STACK_BYTES)
        .spawn(move || respond(request, reply, headers));
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

fn respond(request: Request, reply: Reply, headers: Vec<Header>) {
    if let Err(e) = request.respond(reply.into_response(headers)) {
        log::debug!("could not send a response: {e}");
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

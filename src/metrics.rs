//! Operational metrics, served at `GET /metrics` in the Prometheus text format.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request latency buckets, in seconds: sub-millisecond hits up to Redis timeouts.
const LATENCY_BUCKETS: [f64; 13] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every metric HitMe exports. Recording is a few atomic operations per request.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGauge,
    accept_restarts: IntCounter,
    hits_batched: IntCounter,
    redis_errors: IntCounter,
    unconfirmed_hits: IntCounter,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    reads_refused: IntCounterVec,
    responses_cut: IntCounterVec,
    breaker_open: IntGaugeVec,
    hits_ignored: IntCounterVec,
}

/// Pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PoolState {
    pub connections: u32,
    pub idle: u32,
}

/// The counters the store keeps itself, handed to it when it is opened.
#[derive(Clone)]
pub(crate) struct StoreCounters {
    redis_errors: IntCounter,
    unconfirmed_hits: IntCounter,
    breaker_open: IntGaugeVec,
}

impl StoreCounters {
    /// `n` Redis commands failed (connection, timeout, error reply).
    pub(crate) fn redis_failed(&self, n: u64) {
        self.redis_errors.inc_by(n);
    }

    /// The gauge of the breakers in front of Redis, by server.
    pub(crate) fn breaker_gauge(&self) -> IntGaugeVec {
        self.breaker_open.clone()
    }

    /// `n` hits were answered before enough replicas confirmed them (cluster mode).
    pub(crate) fn unconfirmed_hits(&self, n: usize) {
        self.unconfirmed_hits.inc_by(n as u64);
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let requests = IntCounterVec::new(
            Opts::new(
                "hitme_http_requests_total",
                "HTTP requests answered, by route and status.",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "hitme_http_request_duration_seconds",
                "Time from taking a request off the queue to having its response ready, by route.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(
            "hitme_http_requests_in_flight",
            "Requests a worker is handling now (until their response is ready).",
        )
        .expect("valid metric");
        let accept_restarts = IntCounter::new(
            "hitme_accept_loop_restarts_total",
            "Times the accept loop died (e.g. out of file descriptors) and was restored.",
        )
        .expect("valid metric");
        let hits_batched = IntCounter::new(
            "hitme_hits_batched_total",
            "Hits a worker recorded in one round trip with others it had taken together.",
        )
        .expect("valid metric");
        let redis_errors = IntCounter::new(
            "hitme_redis_errors_total",
            "Redis commands that failed: no connection, timeout or error reply.",
        )
        .expect("valid metric");
        let unconfirmed_hits = IntCounter::new(
            "hitme_redis_unconfirmed_hits_total",
            "Cluster mode: hits answered 200 that the master counted but no replica confirmed in time (see --wait-replicas).",
        )
        .expect("valid metric");
        let pool_connections = IntGauge::new(
            "hitme_redis_pool_connections",
            "Redis connections open in the pool, in use or idle.",
        )
        .expect("valid metric");
        let pool_idle = IntGauge::new(
            "hitme_redis_pool_idle_connections",
            "Redis connections idle in the pool.",
        )
        .expect("valid metric");
        let reads_refused = IntCounterVec::new(
            Opts::new(
                "hitme_reads_refused_total",
                "Reads (GET /hits, a /top whose ranking must be read) answered 503 because the read pool's queue was full or they waited past --read-queue-ms.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let responses_cut = IntCounterVec::new(
            Opts::new(
                "hitme_http_responses_cut_total",
                "Streamed answers (GET /hits) cut short: the client took them too slowly, or Redis failed midway.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let breaker_open = IntGaugeVec::new(
            Opts::new(
                "hitme_redis_breaker_open",
                "1 while the breaker in front of a Redis server (in cluster mode, a node, or the cluster as a whole) is open: requests to it fail at once.",
            ),
            &["server"],
        )
        .expect("valid metric");
        let hits_ignored = IntCounterVec::new(
            Opts::new(
                "hitme_hits_ignored_total",
                "Hits answered but not counted, by reason (bot: a crawler or headless browser's pixel, badge or hitme.js load).",
            ),
            &["reason"],
        )
        .expect("valid metric");

        let registry = Registry::new();
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(accept_restarts.clone()),
            Box::new(hits_batched.clone()),
            Box::new(redis_errors.clone()),
            Box::new(unconfirmed_hits.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_idle.clone()),
            Box::new(reads_refused.clone()),
            Box::new(responses_cut.clone()),
            Box::new(breaker_open.clone()),
            Box::new(hits_ignored.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            accept_restarts,
            hits_batched,
            redis_errors,
            unconfirmed_hits,
            pool_connections,
            pool_idle,
            reads_refused,
            responses_cut,
            breaker_open,
            hits_ignored,
        }
    }

    /// A hit was answered but not counted, for `reason`.
    pub(crate) fn hit_ignored(&self, reason: &'static str) {
        self.hits_ignored.with_label_values(&[reason]).inc();
    }

    /// A read was refused: `queue_full` or `waited`.
    pub(crate) fn read_refused(&self, reason: &'static str) {
        self.reads_refused.with_label_values(&[reason]).inc();
    }

    /// A streamed answer was cut short: `slow_client` or `failed`.
    pub(crate) fn response_cut(&self, reason: &'static str) {
        self.responses_cut.with_label_values(&[reason]).inc();
    }

    /// Counts a request as in flight until the guard is dropped.
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    pub(crate) fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, status_label(status)])
            .inc();
        self.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn accept_loop_restarted(&self) {
        self.accept_restarts.inc();
    }

    /// `n` hits went to Redis in one round trip.
    pub(crate) fn hits_batched(&self, n: usize) {
        if n > 1 {
            self.hits_batched.inc_by(n as u64);
        }
    }

    /// The counters for the store to keep.
    pub(crate) fn store_counters(&self) -> StoreCounters {
        StoreCounters {
            redis_errors: self.redis_errors.clone(),
            unconfirmed_hits: self.unconfirmed_hits.clone(),
            breaker_open: self.breaker_open.clone(),
        }
    }

    /// The metrics in the Prometheus text format, with the pool's state as of now.
    pub(crate) fn render(&self, pool: PoolState) -> Vec<u8> {
        self.pool_connections.set(pool.connections.into());
        self.pool_idle.set(pool.idle.into());
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding into memory cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the in-flight gauge when a request is done, however it ends.
pub(crate) struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Status codes as static labels, so counting a request allocates nothing.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        404 => "404",
        405 => "405",
        408 => "408",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

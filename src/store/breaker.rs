//! Redis's health as HitMe sees it, without asking: a circuit breaker per Redis server (in
//! cluster mode, per node, and one for the cluster as a whole), and whether Redis refuses
//! writes.
//!
//! After a failure to reach a server (no connection in time, a refused or dropped
//! connection, a timeout), its breaker opens: requests fail at once with the same 503 and
//! error text, and a thread of the breaker's own probes the server after 50 ms, then at an
//! interval that doubles while the probes fail (up to 1 s); the first success closes the
//! breaker. No request ever waits on a probe, and a server nobody asks for is still probed,
//! so `/healthz` turns 200 again by itself. A closed breaker costs a request one atomic load,
//! and its success another. Transitions are logged once each, not per request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prometheus::IntGaugeVec;

use super::StoreError;

/// The first interval before a failed server is probed.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest interval between two probes of a server that keeps failing.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Tries the server once (bounded by `--redis-timeout-ms`): `Err` with the 503's text when it
/// cannot be reached.
pub(crate) type Probe = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// One server's breaker.
pub(crate) struct Breaker(Arc<Shared>);

struct Shared {
    /// The server, as logs name it ("Redis", "Redis node 10.0.0.5:7001").
    server: String,
    /// The server, as `/metrics` labels it ("redis", "10.0.0.5:7001").
    label: String,
    open: AtomicBool,
    state: Mutex<Open>,
    gauge: Option<IntGaugeVec>,
    probe: Probe,
}

/// While open: since when, and why (the 503's text).
#[derive(Debug)]
struct Open {
    since: Instant,
    why: String,
}

impl Breaker {
    /// A closed breaker for `server`, shown in `gauge` (as `server="<label>"`) when given,
    /// and probed with `probe` while open.
    pub(crate) fn new(
        server: String,
        label: String,
        gauge: Option<IntGaugeVec>,
        probe: Probe,
    ) -> Breaker {
        if let Some(gauge) = &gauge {
            gauge.with_label_values(&[label.as_str()]).set(0);
        }
        Breaker(Arc::new(Shared {
            server,
            label,
            open: AtomicBool::new(false),
            state: Mutex::new(Open {
                since: Instant::now(),
                why: String::new(),
            }),
            gauge,
            probe,
        }))
    }

    /// Whether a request may go to the server now: `Err` with the failure's 503 while the
    /// breaker is open.
    pub(crate) fn pass(&self) -> Result<(), StoreError> {
        match self.open_because() {
            None => Ok(()),
            Some(why) => Err(StoreError::Unavailable(why)),
        }
    }

    /// The open breaker's failure, if it is open.
    pub(crate) fn open_because(&self) -> Option<String> {
        if !self.0.open.load(Ordering::Acquire) {
            return None;
        }
        let state = self.0.lock();
        self.0
            .open
            .load(Ordering::Acquire)
            .then(|| state.why.clone())
    }

    /// A request reached the server.
    pub(crate) fn succeeded(&self) {
        self.0.close();
    }

    /// The server could not be reached (`why`, the 503's text): a closed breaker opens, and
    /// its prober starts.
    pub(crate) fn failed(&self, why: &str) {
        let mut state = self.0.lock();
        if self.0.open.load(Ordering::Acquire) {
            return;
        }
        *state = Open {
            since: Instant::now(),
            why: why.to_string(),
        };
        self.0.open.store(true, Ordering::Release);
        drop(state);
        log::warn!(
            "{} cannot be reached ({why}); answering 503 at once while it is down, and trying it again every {} ms to {} s",
            self.0.server,
            FIRST_BACKOFF.as_millis(),
            MAX_BACKOFF.as_secs()
        );
        self.0.show(1);
        let shared = self.0.clone();
        let prober = std::thread::Builder::new()
            .name("hitme-prober".into())
            .spawn(move || shared.probe_until_closed());
        if let Err(e) = prober {
            // Without a prober, requests must find out for themselves.
            log::warn!("cannot start a thread to probe {} ({e})", self.0.server);
            self.0.close();
        }
    }
}

impl Shared {
    fn probe_until_closed(&self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            std::thread::sleep(backoff);
            if !self.open.load(Ordering::Acquire) {
                return;
            }
            match (self.probe)() {
                Ok(()) => return self.close(),
                Err(why) => self.lock().why = why,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn close(&self) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        let state = self.lock();
        if self.open.swap(false, Ordering::AcqRel) {
            log::info!(
                "{} answers again, after {:.1} s; requests go to it again",
                self.server,
                state.since.elapsed().as_secs_f64()
            );
            self.show(0);
        }
    }

    fn show(&self, open: i64) {
        if let Some(gauge) = &self.gauge {
            gauge.with_label_values(&[self.label.as_str()]).set(open);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether Redis refuses writes (out of memory with `noeviction`, a read-only replica, a
/// failed snapshot with `stop-writes-on-bgsave-error`): set by a write refused so, cleared by
/// the next write that succeeds.
#[derive(Debug, Default)]
pub(crate) struct WriteRefusal {
    refused: AtomicBool,
    why: Mutex<String>,
}

/// The error codes of a Redis that refuses writes.
const REFUSING_CODES: [&str; 3] = ["OOM", "READONLY", "MISCONF"];

impl WriteRefusal {
    /// Notes a write's outcome: refused for one of `REFUSING_CODES`, or succeeded.
    pub(crate) fn note(&self, refusal_code: Option<&str>, why: &str) {
        match refusal_code {
            Some(code) if REFUSING_CODES.contains(&code) => {
                let mut held = self.why.lock().unwrap_or_else(|e| e.into_inner());
                if !self.refused.swap(true, Ordering::AcqRel) {
                    log::warn!(
                        "Redis refuses writes ({why}); /healthz answers 503 until a write succeeds"
                    );
                }
                why.clone_into(&mut held);
            }
            _ => {}
        }
    }

    /// A write succeeded.
    pub(crate) fn cleared(&self) {
        if self.refused.load(Ordering::Acquire) && self.refused.swap(false, Ordering::AcqRel) {
            log::info!("Redis accepts writes again");
        }
    }

    /// Why writes are refused, if they are.
    pub(crate) fn refused_because(&self) -> Option<String> {
        if !self.refused.load(Ordering::Acquire) {
            return None;
        }
        Some(self.why.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Whether a command's failure means the server could not be reached (rather than an answer
/// HitMe did not like): what opens a breaker.
pub(crate) fn unreachable(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A breaker whose server is up when `up` says so.
    fn breaker(up: &Arc<AtomicBool>) -> Breaker {
        let up = up.clone();
        let probe: Probe = Box::new(move || match up.load(Ordering::SeqCst) {
            true => Ok(()),
            false => Err("still down".into()),
        });
        Breaker::new("Redis at test".into(), "test".into(), None, probe)
    }

    #[test]
    fn an_open_breaker_fails_at_once_until_a_probe_succeeds() {
        let up = Arc::new(AtomicBool::new(false));
        let breaker = breaker(&up);
        assert_eq!(breaker.pass(), Ok(()));
        breaker.failed("down");
        assert_eq!(breaker.open_because().as_deref(), Some("down"));
        assert_eq!(breaker.pass(), Err(StoreError::Unavailable("down".into())));
        // The probes fail and say why.
        std::thread::sleep(FIRST_BACKOFF * 4);
        assert_eq!(
            breaker.pass(),
            Err(StoreError::Unavailable("still down".into()))
        );
        up.store(true, Ordering::SeqCst);
        let began = Instant::now();
        while breaker.pass().is_err() {
            assert!(began.elapsed() < MAX_BACKOFF * 3, "never closed");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(breaker.open_because(), None);
    }

    #[test]
    fn a_request_that_gets_through_closes_it_and_failures_while_open_change_nothing() {
        let up = Arc::new(AtomicBool::new(false));
        let breaker = breaker(&up);
        breaker.failed("down");
        breaker.failed("down again");
        assert_eq!(breaker.open_because().as_deref(), Some("down"));
        breaker.succeeded();
        assert_eq!(breaker.pass(), Ok(()));
    }

    #[test]
    fn refused_writes_are_remembered_until_a_write_succeeds() {
        let refusal = WriteRefusal::default();
        refusal.note(Some("WRONGTYPE"), "not a refusal");
        assert_eq!(refusal.refused_because(), None);
        refusal.note(Some("OOM"), "OOM command not allowed");
        assert_eq!(
            refusal.refused_because().as_deref(),
            Some("OOM command not allowed")
        );
        refusal.cleared();
        assert_eq!(refusal.refused_because(), None);
    }
}

//! `--rate-limit N/DURATION`: at most N counting requests (`POST /hit`, `/pixel.gif`,
//! `/badge.svg?count=1`) per client in any DURATION, with bursts of up to N. A generic cell
//! rate algorithm: each client is one instant (when its quota is whole again), so memory is
//! one small entry per client, and a client whose quota is whole again is as good as gone.
//! IPv6 clients are limited per /64, the block one subscriber usually holds. The limit is
//! per HitMe process.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tiny_http::Header;

/// Clients tracked at once, at most: about 60 bytes each.
pub(crate) const MAX_CLIENTS: usize = 100_000;

/// Independent locks, so that workers limiting different clients rarely wait on each other.
const SHARDS: usize = 16;

/// A parsed `N/DURATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    pub requests: u32,
    pub per: Duration,
}

impl Rate {
    /// Parses `20/5s`, `100/1m`, `1000/1h`.
    pub(crate) fn parse(text: &str) -> Result<Rate, String> {
        let bad =
            || format!("{text:?} is not a rate; write requests/duration, such as 20/5s or 600/1h");
        let (requests, per) = text.split_once('/').ok_or_else(bad)?;
        let requests: u32 = requests.trim().parse().map_err(|_| bad())?;
        let per = humantime::parse_duration(per.trim()).map_err(|_| bad())?;
        if requests == 0 || per.is_zero() || per > Duration::from_secs(86_400) {
            return Err(format!(
                "{text:?}: the requests must be at least 1 and the duration from 1 ms to 24 h"
            ));
        }
        Ok(Rate { requests, per })
    }
}

/// Per-client quotas.
pub(crate) struct RateLimiter {
    rate: Rate,
    /// The time one request takes of the quota: `per / requests`.
    interval: Duration,
    shards: Vec<Mutex<HashMap<IpAddr, Instant>>>,
    hasher: std::collections::hash_map::RandomState,
}

/// How a client stands after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    pub allowed: bool,
    /// Requests still allowed now.
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_secs: u64,
    /// Seconds until the next request is allowed (0 when allowed now).
    pub retry_after_secs: u64,
}

impl RateLimiter {
    pub(crate) fn new(rate: Rate) -> RateLimiter {
        RateLimiter {
            rate,
            interval: rate.per / rate.requests,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: Default::default(),
        }
    }

    /// Takes one request of `client`'s quota, if there is one.
    pub(crate) fn take(&self, client: IpAddr) -> Quota {
        self.take_at(client, Instant::now())
    }

    fn take_at(&self, client: IpAddr, now: Instant) -> Quota {
        let client = per_subscriber(client);
        let shard = &self.shards[self.hasher.hash_one(client) as usize % SHARDS];
        let mut whole_at = shard.lock().unwrap_or_else(|e| e.into_inner());
        // A burst of `requests` fits in the time before `whole` moves `per` past now.
        let burst = self.rate.per - self.interval;
        let whole = whole_at.get(&client).copied().unwrap_or(now).max(now);
        let ahead = whole - now;
        if ahead > burst {
            return Quota {
                allowed: false,
                remaining: 0,
                reset_secs: ceil_secs(ahead),
                retry_after_secs: ceil_secs(ahead - burst).max(1),
            };
        }
        let whole = whole + self.interval;
        if !whole_at.contains_key(&client) && whole_at.len() >= MAX_CLIENTS / SHARDS {
            make_room(&mut whole_at, now);
        }
        whole_at.insert(client, whole);
        let ahead = whole - now;
        let room = self.rate.per.saturating_sub(ahead);
        Quota {
            allowed: true,
            remaining: (room.as_nanos() / self.interval.as_nanos().max(1)) as u32,
            reset_secs: ceil_secs(ahead),
            retry_after_secs: 0,
        }
    }

    /// The headers of a refused request: `Retry-After` and the IETF `RateLimit-*` fields.
    pub(crate) fn headers(&self, quota: &Quota) -> Vec<Header> {
        let header = |name: &str, value: String| {
            Header::from_bytes(name.as_bytes(), value.as_bytes())
                .expect("numbers are valid header values")
        };
        let mut headers = Vec::with_capacity(4);
        if !quota.allowed {
            headers.push(header("Retry-After", quota.retry_after_secs.to_string()));
        }
        headers.push(header("RateLimit-Limit", self.rate.requests.to_string()));
        headers.push(header("RateLimit-Remaining", quota.remaining.to_string()));
        headers.push(header("RateLimit-Reset", quota.reset_secs.to_string()));
        headers
    }

    pub(crate) fn rate(&self) -> Rate {
        self.rate
    }
}

/// Forgets the clients whose quota is whole again; if every one is still spending its quota,
/// the one closest to whole (which can only let it through a little sooner).
fn make_room(whole_at: &mut HashMap<IpAddr, Instant>, now: Instant) {
    whole_at.retain(|_, whole| *whole > now);
    if whole_at.len() >= MAX_CLIENTS / SHARDS {
        if let Some(soonest) = whole_at
            .iter()
            .min_by_key(|(_, whole)| **whole)
            .map(|(c, _)| *c)
        {
            whole_at.remove(&soonest);
        }
    }
}

/// The unit a quota belongs to: the address, or for IPv6 its /64.
fn per_subscriber(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn rates_parse_with_examples_in_their_errors() {
        assert_eq!(
            Rate::parse("20/5s").unwrap(),
            Rate {
                requests: 20,
                per: Duration::from_secs(5)
            }
        );
        assert_eq!(
            Rate::parse("600/1h").unwrap().per,
            Duration::from_secs(3600)
        );
        for bad in ["20", "x/5s", "0/5s", "20/0s", "20/2d", "20/fortnight"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
        assert!(Rate::parse("20").unwrap_err().contains("such as 20/5s"));
    }

    #[test]
    fn a_burst_of_the_limit_then_one_request_per_interval() {
        let limiter = RateLimiter::new(Rate::parse("20/5s").unwrap());
        let t0 = Instant::now();
        let client = ip("203.0.113.7");
        for i in 0..20 {
            let quota = limiter.take_at(client, t0);
            assert!(quota.allowed, "request {i}");
            assert_eq!(quota.remaining, 19 - i);
        }
        let refused = limiter.take_at(client, t0 + Duration::from_millis(50));
        assert_eq!(
            refused,
            Quota {
                allowed: false,
                remaining: 0,
                reset_secs: 5,
                retry_after_secs: 1
            }
        );
        // Another client has its own quota.
        assert!(limiter.take_at(ip("203.0.113.8"), t0).allowed);
        // One interval (250 ms) later, one more request.
        let later = t0 + Duration::from_millis(250);
        assert!(limiter.take_at(client, later).allowed);
        assert!(!limiter.take_at(client, later).allowed);
        // A whole period later, a whole burst again.
        let much_later = t0 + Duration::from_secs(6);
        assert_eq!(limiter.take_at(client, much_later).remaining, 19);
    }

    #[test]
    fn ipv6_clients_share_the_quota_of_their_64() {
        let limiter = RateLimiter::new(Rate::parse("1/1m").unwrap());
        let t0 = Instant::now();
        assert!(limiter.take_at(ip("2001:db8:1:2:aaaa::1"), t0).allowed);
        assert!(!limiter.take_at(ip("2001:db8:1:2:bbbb::2"), t0).allowed);
        assert!(limiter.take_at(ip("2001:db8:1:3::1"), t0).allowed);
    }

    #[test]
    fn memory_is_bounded_however_many_clients() {
        let limiter = RateLimiter::new(Rate::parse("5/1h").unwrap());
        let t0 = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 + 5_000) {
            limiter.take_at(IpAddr::from(i.to_be_bytes()), t0);
        }
        let tracked: usize = limiter.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= MAX_CLIENTS, "{tracked}");
    }

    #[test]
    fn refusals_carry_retry_after_and_ratelimit_headers() {
        let limiter = RateLimiter::new(Rate::parse("2/10s").unwrap());
        let quota = Quota {
            allowed: false,
            remaining: 0,
            reset_secs: 10,
            retry_after_secs: 5,
        };
        let headers: Vec<String> = limiter
            .headers(&quota)
            .iter()
            .map(|h| format!("{}: {}", h.field, h.value))
            .collect();
        assert_eq!(
            headers,
            [
                "Retry-After: 5",
                "RateLimit-Limit: 2",
                "RateLimit-Remaining: 0",
                "RateLimit-Reset: 10"
            ]
        );
    }
}

//! `GET /hits?timestamp=TS`: every URL's count in each period's bucket, streamed as the
//! buckets are read from Redis chunk by chunk, so neither HitMe nor Redis ever holds a whole
//! large bucket for it. A reader thread fetches the next chunks while the read pool's thread
//! writes the last ones out, at most `AHEAD` chunks ahead.
//!
//! A client that takes the answer too slowly is cut off, so that it cannot hold a read thread
//! for ever: a write the client takes nothing of for `listener::WRITE_STALL` fails, and so
//! does an answer that, over any `RATE_WINDOW` of time spent writing to the client, went out
//! slower than `MIN_RATE`.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::error::ApiError;
use crate::http::params::Fields;
use crate::http::response::{Body, Response, JSON};
use crate::http::App;
use crate::store::{Chunk, HitStore, Metric, ScanCursor, StoreError};
use crate::time::clock::now_ms;
use crate::time::PerPeriod;
use crate::time::Period;

/// Chunks read ahead of what is written: enough to keep Redis busy while the answer goes out.
const AHEAD: usize = 2;

/// The most of an answer read before it starts (see [`AllCountsStream::open`]).
const WHOLE_BEFORE_START: usize = 64 * 1024;

/// The slowest a client may take an answer, in bytes a second of time spent writing to it.
pub(crate) const MIN_RATE: u64 = 16 * 1024;

/// The span of writing time over which `MIN_RATE` is measured.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The reader's chunks, bucket by bucket, in order; each bucket's last chunk has no `next`.
type Chunks = Receiver<Result<(Period, i64, Chunk), StoreError>>;

pub(crate) struct AllUrlCounts {
    timestamp_ms: i64,
    metric: Metric,
}

impl AllUrlCounts {
    pub(crate) fn parse(fields: Fields, app: &App) -> Result<AllUrlCounts, ApiError> {
        Ok(AllUrlCounts {
            timestamp_ms: fields.timestamp_or(now_ms())?,
            metric: fields.metric(app.visits.is_some())?,
        })
    }

    /// Redis is asked for the first chunk before the answer starts, so an unavailable Redis
    /// is still a 503.
    pub(crate) fn apply(self, app: &App) -> Result<Response, ApiError> {
        let starts = app.calendar.starts(self.timestamp_ms);
        let stream = AllCountsStream::open(app.store.clone(), starts, self.metric)?;
        Ok(Response::with(JSON, Body::Stream(Box::new(stream))))
    }
}

/// How fast the client takes the answer, measured over the time spent writing to it (not the
/// time spent reading Redis).
struct Pace {
    /// When the last piece was handed over to be written, if one is being written.
    handed: Option<Instant>,
    /// Writing time and bytes handed over in the current window.
    writing: Duration,
    bytes: u64,
}

impl Pace {
    /// Called as the next piece is asked for: the last one has been written.
    fn written(&mut self) -> io::Result<()> {
        let Some(handed) = self.handed.take() else {
            return Ok(());
        };
        self.writing += handed.elapsed();
        if self.writing < RATE_WINDOW {
            return Ok(());
        }
        let least = MIN_RATE * self.writing.as_secs();
        if self.bytes < least {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client took {} bytes in {:?}, below the {MIN_RATE} bytes a second an answer must go out at",
                    self.bytes, self.writing
                ),
            ));
        }
        (self.writing, self.bytes) = (Duration::ZERO, 0);
        Ok(())
    }

    fn hand(&mut self, n: usize) {
        self.handed = Some(Instant::now());
        self.bytes += n as u64;
    }
}

/// The JSON text of `GET /hits`, produced as it is read.
struct AllCountsStream {
    chunks: Chunks,
    pace: Pace,
    /// The bucket being written, if one is open.
    current: Option<(Period, i64)>,
    /// Hashes of the URLs of the current bucket written so far: a chunked read may return one
    /// twice. Eight bytes a URL rather than the URL (two of a bucket's URLs sharing a 64-bit
    /// hash, about 1 in 10^7 at a million URLs, would lose one of them).
    written: HashSet<u64>,
    out: Vec<u8>,
    sent: usize,
    done: bool,
}

impl AllCountsStream {
    /// Starts the answer for the buckets starting at `starts`, reading its first part now so
    /// that an unavailable Redis is an error before anything is sent.
    fn open(
        store: Arc<dyn HitStore>,
        starts: PerPeriod<i64>,
        metric: Metric,
    ) -> Result<Self, StoreError> {
        let buckets: Vec<(Period, i64)> = starts.into_iter().collect();
        let (send, chunks) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("hitme-hits-reader".into())
            .spawn(move || {
                for (period, start) in buckets {
                    let mut cursor = Some(ScanCursor::START);
                    while let Some(at) = cursor {
                        let chunk = store.scan(period, start, at, metric);
                        cursor = chunk.as_ref().ok().and_then(|c| c.next);
                        let failed = chunk.is_err();
                        // Gone: the client left, and the stream with it.
                        if send.send(chunk.map(|c| (period, start, c))).is_err() || failed {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start a thread for /hits: {e}")))?;
        let mut stream = AllCountsStream {
            chunks,
            pace: Pace {
                handed: None,
                writing: Duration::ZERO,
                bytes: 0,
            },
            current: None,
            written: HashSet::new(),
            out: br#"{"status":"OK""#.to_vec(),
            sent: 0,
            done: false,
        };
        // An answer of up to `WHOLE_BEFORE_START` bytes is read whole before it starts, so
        // that a Redis failure while reading it is still a 503; a longer one is cut short.
        while !stream.done && stream.out.len() < WHOLE_BEFORE_START {
            stream.produce()?;
        }
        Ok(stream)
    }

    /// Appends the next piece of the answer to `out`: one chunk of a bucket's URLs (opening
    /// its object first, closing it after its last chunk), or the end.
    fn produce(&mut self) -> Result<(), StoreError> {
        let Ok(next) = self.chunks.recv() else {
            // Every bucket read.
            self.out.push(b'}');
            self.done = true;
            return Ok(());
        };
        let (period, start, chunk) = next?;
        if self.current != Some((period, start)) {
            self.out.extend_from_slice(b",\"");
            self.out.extend_from_slice(period.json_name().as_bytes());
            self.out.extend_from_slice(b"\":{");
            self.current = Some((period, start));
            self.written.clear();
        }
        for (url, count) in chunk.counts {
            let mut hasher = DefaultHasher::new();
            url.hash(&mut hasher);
            if !self.written.insert(hasher.finish()) {
                continue;
            }
            if self.written.len() > 1 {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut self.out, &url).expect("a string always serialises");
            self.out.push(b':');
            self.out
                .extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
        }
        if chunk.next.is_none() {
            self.out.push(b'}');
            self.current = None;
        }
        Ok(())
    }
}

impl Read for AllCountsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.pace.written()?;
        while self.sent == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.out.clear();
            self.sent = 0;
            // A failure now cuts the answer short: the client gets an incomplete response,
            // never a well-formed one with URLs missing.
            self.produce()
                .map_err(|e| io::Error::other(e.message().to_string()))?;
        }
        let rest = &self.out[self.sent..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.sent += n;
        self.pace.hand(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace() -> Pace {
        Pace {
            handed: None,
            writing: Duration::ZERO,
            bytes: 0,
        }
    }

    #[test]
    fn a_client_slower_than_the_least_rate_is_cut_off_after_a_window() {
        let mut slow = pace();
        slow.hand(1000);
        // As if writing the piece had taken a whole window.
        slow.handed = Some(Instant::now() - RATE_WINDOW);
        let err = slow.written().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("took 1000 bytes"), "{err}");

        let mut fast = pace();
        fast.hand(MIN_RATE as usize * 6);
        fast.handed = Some(Instant::now() - RATE_WINDOW);
        fast.written().unwrap();
        // A new window begins.
        assert_eq!((fast.writing, fast.bytes), (Duration::ZERO, 0));
        // Time not spent writing (reading Redis) is not counted.
        let mut waiting = pace();
        waiting.hand(10);
        waiting.written().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        waiting.written().unwrap();
        assert!(waiting.writing < Duration::from_millis(20));
    }
}

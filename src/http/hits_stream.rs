//! `GET /hits` as a stream: every URL's count in each period's bucket, written as the buckets
//! are read from Redis chunk by chunk, so neither HitMe nor Redis ever holds a whole large
//! bucket for it. A reader thread fetches the next chunks while the worker writes the last
//! ones out, at most `AHEAD` chunks ahead. A worker writes a stream to its end, so at most
//! half of them (`StreamLimit`) may be streaming at once; the others stay free for hits.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::buckets::Period;
use crate::period::PerPeriod;
use crate::store::{Chunk, HitStore, ScanCursor, StoreError};

/// Chunks read ahead of what is written: enough to keep Redis busy while the worker writes.
const AHEAD: usize = 2;

/// The reader's chunks, bucket by bucket, in order; each bucket's last chunk has no `next`.
type Chunks = Receiver<Result<(Period, i64, Chunk), StoreError>>;

/// How many `GET /hits` answers may be streaming at once.
pub struct StreamLimit {
    streaming: AtomicUsize,
    max: usize,
}

impl StreamLimit {
    /// At most half of `workers` (at least one) streaming at once.
    pub fn new(workers: usize) -> Arc<StreamLimit> {
        Arc::new(StreamLimit {
            streaming: AtomicUsize::new(0),
            max: (workers / 2).max(1),
        })
    }

    /// A place for one more stream, held until it is dropped; `None` when all are taken.
    pub fn take(self: &Arc<Self>) -> Option<StreamPermit> {
        self.streaming
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| StreamPermit(self.clone()))
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

/// One stream's place in its [`StreamLimit`], given back when the stream ends.
pub struct StreamPermit(Arc<StreamLimit>);

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.0.streaming.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The JSON text of `GET /hits`, produced as it is read.
pub struct AllCountsStream {
    /// Held for as long as the answer is being written.
    _permit: StreamPermit,
    chunks: Chunks,
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
    /// Starts the answer for the buckets starting at `starts`, reading the first chunk now so
    /// that an unavailable Redis is an error before anything is sent.
    pub fn open(
        store: Arc<dyn HitStore>,
        starts: PerPeriod<i64>,
        permit: StreamPermit,
    ) -> Result<Self, StoreError> {
        let buckets: Vec<(Period, i64)> = starts.into_iter().collect();
        let (send, chunks) = sync_channel(AHEAD);
        std::thread::Builder::new()
            .name("hitme-hits-reader".into())
            .spawn(move || {
                for (period, start) in buckets {
                    let mut cursor = Some(ScanCursor::START);
                    while let Some(at) = cursor {
                        let chunk = store.scan(period, start, at);
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
            _permit: permit,
            chunks,
            current: None,
            written: HashSet::new(),
            out: br#"{"status":"OK""#.to_vec(),
            sent: 0,
            done: false,
        };
        stream.produce()?;
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
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_the_workers_may_stream_and_a_place_comes_back_when_a_stream_ends() {
        let limit = StreamLimit::new(4);
        let (first, second) = (limit.take().unwrap(), limit.take().unwrap());
        assert!(limit.take().is_none());
        drop(first);
        let third = limit.take().unwrap();
        assert!(limit.take().is_none());
        drop((second, third));
        assert_eq!(limit.streaming.load(Ordering::Acquire), 0);
        // Even a single worker may stream.
        let single = StreamLimit::new(1);
        let only = single.take().unwrap();
        assert!(single.take().is_none());
        drop(only);
    }
}

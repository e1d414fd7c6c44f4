//! `GET /hits` as a stream: every URL's count in each period's bucket, written as the buckets
//! are read from Redis chunk by chunk, so neither HitMe nor Redis ever holds a whole large
//! bucket for it.

use std::collections::HashSet;
use std::io::{self, Read};
use std::sync::Arc;

use crate::buckets::Period;
use crate::period::PerPeriod;
use crate::store::{HitStore, ScanCursor, StoreError};

/// The JSON text of `GET /hits`, produced as it is read.
pub struct AllCountsStream {
    store: Arc<dyn HitStore>,
    /// The buckets still to write, all-time first.
    buckets: std::vec::IntoIter<(Period, i64)>,
    /// The bucket being written, and where its next chunk starts (`None`: it is complete).
    current: Option<(Period, i64, Option<ScanCursor>)>,
    /// The URLs of the current bucket written so far: a chunked read may return one twice.
    written: HashSet<String>,
    out: Vec<u8>,
    sent: usize,
    done: bool,
}

impl AllCountsStream {
    /// Starts the answer for the buckets starting at `starts`, reading the first chunk now so
    /// that an unavailable Redis is an error before anything is sent.
    pub fn open(store: Arc<dyn HitStore>, starts: PerPeriod<i64>) -> Result<Self, StoreError> {
        let buckets: Vec<(Period, i64)> = starts.into_iter().collect();
        let mut stream = AllCountsStream {
            store,
            buckets: buckets.into_iter(),
            current: None,
            written: HashSet::new(),
            out: br#"{"status":"OK""#.to_vec(),
            sent: 0,
            done: false,
        };
        stream.produce()?;
        stream.produce()?;
        Ok(stream)
    }

    /// Appends the next piece of the answer to `out`: an object's opening, one chunk of its
    /// URLs, its closing, or the end.
    fn produce(&mut self) -> Result<(), StoreError> {
        match self.current {
            None => match self.buckets.next() {
                Some((period, start)) => {
                    self.out.extend_from_slice(b",\"");
                    self.out.extend_from_slice(period.json_name().as_bytes());
                    self.out.extend_from_slice(b"\":{");
                    self.current = Some((period, start, Some(ScanCursor::START)));
                    self.written.clear();
                }
                None => {
                    self.out.push(b'}');
                    self.done = true;
                }
            },
            Some((period, start, Some(cursor))) => {
                let chunk = self.store.scan(period, start, cursor)?;
                for (url, count) in chunk.counts {
                    if self.written.contains(&url) {
                        continue;
                    }
                    if !self.written.is_empty() {
                        self.out.push(b',');
                    }
                    serde_json::to_writer(&mut self.out, &url).expect("a string always serialises");
                    self.out.push(b':');
                    self.out
                        .extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
                    self.written.insert(url);
                }
                self.current = Some((period, start, chunk.next));
            }
            Some((_, _, None)) => {
                self.out.push(b'}');
                self.current = None;
            }
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

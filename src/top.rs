//! Rankings: every URL of one bucket ordered by count, shared between requests. `GET /top`
//! pages through them; a ranking is read from Redis in chunks ([`HitStore::scan`]) once and
//! kept for at most [`MAX_AGE`], and concurrent requests for a bucket being read wait for
//! that one read (single flight), so ten dashboards cost about what one does.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::buckets::Period;
use crate::store::{HitStore, ScanCursor, StoreError};

/// How long a ranking is reused: a new hit shows in `/top` within this.
pub const MAX_AGE: Duration = Duration::from_secs(2);

/// Rankings kept at once: one per bucket asked for in the last `MAX_AGE`, bounded so that
/// requests for many old buckets cannot fill the memory.
const MAX_KEPT: usize = 12;

/// Every URL of a bucket with its count, most counted first, ties by URL.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ranking {
    pub entries: Vec<(String, i64)>,
    /// The sum of every count.
    pub total: i64,
}

impl Ranking {
    /// Ranks `counts`; a URL listed twice (a chunked read can return one twice) counts once.
    pub fn new(mut counts: Vec<(String, i64)>) -> Ranking {
        counts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        counts.dedup_by(|a, b| a.0 == b.0);
        counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let total = counts.iter().map(|(_, n)| n).sum();
        Ranking {
            entries: counts,
            total,
        }
    }

    /// Reads the bucket chunk by chunk and ranks it.
    pub fn read(store: &dyn HitStore, period: Period, start: i64) -> Result<Ranking, StoreError> {
        let mut counts = Vec::new();
        let mut cursor = Some(ScanCursor::START);
        while let Some(at) = cursor {
            let chunk = store.scan(period, start, at)?;
            counts.extend(chunk.counts);
            cursor = chunk.next;
        }
        Ok(Ranking::new(counts))
    }

    /// The URLs containing `filter` (ASCII case-insensitive; empty: all): how many, their
    /// total, and `limit` of them from `offset` on.
    pub fn page(&self, filter: &str, offset: usize, limit: usize) -> Page<'_> {
        if filter.is_empty() {
            return Page {
                urls: self.entries.len(),
                total: self.total,
                top: self.entries.iter().skip(offset).take(limit).collect(),
            };
        }
        let mut page = Page::default();
        for entry in self
            .entries
            .iter()
            .filter(|(url, _)| contains_ignore_case(url, filter))
        {
            if page.urls >= offset && page.top.len() < limit {
                page.top.push(entry);
            }
            page.urls += 1;
            page.total += entry.1;
        }
        page
    }
}

/// A page of a ranking.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page<'a> {
    /// URLs that matched, on this page or not.
    pub urls: usize,
    /// Their counts' sum.
    pub total: i64,
    pub top: Vec<&'a (String, i64)>,
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.len() <= haystack.len()
        && haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Rankings by bucket, each read once however many ask at once.
#[derive(Default)]
pub struct Rankings {
    slots: Mutex<HashMap<(Period, i64), Slot>>,
    read: Condvar,
}

enum Slot {
    /// A request is reading it; the others wait.
    Reading,
    Ready {
        at: Instant,
        ranking: Arc<Ranking>,
    },
}

impl Rankings {
    /// The ranking of `period`'s bucket starting at `start`: a fresh one kept, the one being
    /// read by another request once it is done, or read now by `read`.
    pub fn get(
        &self,
        period: Period,
        start: i64,
        read: impl FnOnce() -> Result<Ranking, StoreError>,
    ) -> Result<Arc<Ranking>, StoreError> {
        let key = (period, start);
        let mut slots = self.lock();
        loop {
            match slots.get(&key) {
                Some(Slot::Ready { at, ranking }) if at.elapsed() < MAX_AGE => {
                    return Ok(ranking.clone())
                }
                Some(Slot::Reading) => {
                    slots = self.read.wait(slots).unwrap_or_else(|e| e.into_inner());
                }
                _ => break,
            }
        }
        slots.insert(key, Slot::Reading);
        drop(slots);
        // Whatever happens to the read (an error, a panic), the waiters are let go.
        let mut reading = Reading {
            rankings: self,
            key,
            ranking: None,
        };
        let ranking = Arc::new(read()?);
        reading.ranking = Some(ranking.clone());
        Ok(ranking)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(Period, i64), Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A read in progress; when dropped, it stores what was read (or clears the slot, so the next
/// request reads again) and wakes the waiters.
struct Reading<'a> {
    rankings: &'a Rankings,
    key: (Period, i64),
    ranking: Option<Arc<Ranking>>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut slots = self.rankings.lock();
        match self.ranking.take() {
            Some(ranking) => {
                let at = Instant::now();
                slots.insert(self.key, Slot::Ready { at, ranking });
            }
            None => {
                slots.remove(&self.key);
            }
        }
        slots.retain(|_, slot| match slot {
            Slot::Reading => true,
            Slot::Ready { at, .. } => at.elapsed() < MAX_AGE,
        });
        while slots.len() > MAX_KEPT {
            let oldest = slots
                .iter()
                .filter_map(|(key, slot)| match slot {
                    Slot::Ready { at, .. } => Some((*at, *key)),
                    Slot::Reading => None,
                })
                .min();
            match oldest {
                Some((_, key)) => slots.remove(&key),
                None => break,
            };
        }
        self.rankings.read.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ranking(counts: &[(&str, i64)]) -> Ranking {
        Ranking::new(counts.iter().map(|(u, n)| (u.to_string(), *n)).collect())
    }

    #[test]
    fn ranked_by_count_then_url_and_duplicates_count_once() {
        let r = ranking(&[
            ("http://b/", 5),
            ("http://a/", 5),
            ("http://c/", 9),
            ("http://b/", 5),
        ]);
        let urls: Vec<&str> = r.entries.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(urls, ["http://c/", "http://a/", "http://b/"]);
        assert_eq!(r.total, 19);
    }

    #[test]
    fn pages_and_filters_count_every_match() {
        let r = ranking(&[
            ("http://x/Shoes", 10),
            ("http://x/hats", 7),
            ("http://x/shoelaces", 3),
            ("http://y/", 1),
        ]);
        let page = r.page("", 1, 2);
        assert_eq!((page.urls, page.total), (4, 21));
        let urls: Vec<&str> = page.top.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(urls, ["http://x/hats", "http://x/shoelaces"]);
        let page = r.page("SHOE", 1, 5);
        assert_eq!((page.urls, page.total), (2, 13));
        assert_eq!(page.top, [&("http://x/shoelaces".to_string(), 3)]);
        assert_eq!(r.page("nothing", 0, 5), Page::default());
        assert_eq!(r.page("", 10, 5).top.len(), 0);
    }

    #[test]
    fn concurrent_requests_share_one_read() {
        let rankings = Arc::new(Rankings::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (rankings, reads) = (rankings.clone(), reads.clone());
                std::thread::spawn(move || {
                    rankings
                        .get(Period::Day, 0, || {
                            reads.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            Ok(ranking(&[("http://a/", 1)]))
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().total, 1);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Another bucket is read on its own.
        let other = rankings.get(Period::Day, 86_400_000, || Ok(Ranking::default()));
        assert_eq!(other.unwrap().total, 0);
    }

    #[test]
    fn a_failed_read_is_not_kept() {
        let rankings = Rankings::default();
        let failed = rankings.get(Period::All, 0, || {
            Err(StoreError::Unavailable("down".into()))
        });
        assert!(failed.is_err());
        let read = rankings.get(Period::All, 0, || Ok(ranking(&[("http://a/", 2)])));
        assert_eq!(read.unwrap().total, 2);
    }
}

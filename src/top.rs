//! Rankings: every URL of one bucket ordered by count, shared between requests. `GET /top`
//! pages through them; a ranking is read from Redis in chunks ([`HitStore::scan`]) once and
//! kept for at most [`MAX_AGE`], and concurrent requests for a bucket being read wait for
//! that one read (single flight), so ten dashboards cost about what one does. A ranking in
//! use is read again before it expires ([`REFRESH_AFTER`]) by one request while the others
//! go on with the kept one, so steady readers never queue behind a read. Reads run on the
//! read pool (`serve::read_pool`); a request whose ranking is [`Rankings::fresh`] is answered
//! where it was taken.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::host::host_of;
use crate::store::{HitStore, Metric, ScanCursor, StoreError};
use crate::time::Period;

/// How long a ranking is reused: a new hit shows in `/top` within this.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(2);

/// From this age on, the next request for a ranking reads it again while the others keep
/// using it; the read has until `MAX_AGE` before anyone waits for it.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_millis(1500);

/// Rankings kept at once: one per bucket asked for in the last `MAX_AGE`, bounded so that
/// requests for many old buckets cannot fill the memory.
const MAX_KEPT: usize = 12;

/// How many of the top URLs are put in order when a ranking is read: every unfiltered page
/// within them (the dashboard's are) is a slice. Deeper or filtered pages order only what
/// they need, per request.
const PRESORTED: usize = 1000;

/// Every URL of a bucket with its count, each once.
#[derive(Debug, Default)]
pub(crate) struct Ranking {
    /// The first `sorted` are the top URLs, in rank order; the rest follow in no order.
    entries: Vec<(String, i64)>,
    sorted: usize,
    /// The sum of every count.
    pub total: i64,
    /// The bucket's sites, added up the first time `/sites` asks ([`Ranking::sites`]).
    sites: OnceLock<Vec<SiteTotal>>,
}

/// What a page keeps of a ranking: the URLs containing `q` (ASCII case-insensitive) whose
/// host is `site`; empty: every URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub q: String,
    pub site: String,
}

impl Filter {
    /// URLs containing `q`, on any site.
    #[cfg(test)]
    fn q(q: &str) -> Filter {
        Filter {
            q: q.to_string(),
            site: String::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty() && self.site.is_empty()
    }

    fn matches(&self, url: &str) -> bool {
        (self.site.is_empty() || host_of(url) == self.site)
            && (self.q.is_empty() || contains_ignore_case(url, &self.q))
    }
}

/// One site of a bucket: its host, the sum of its URLs' counts and how many URLs it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SiteTotal {
    pub site: String,
    pub count: i64,
    pub urls: usize,
}

/// Rank order: most counted first, ties by URL.
fn by_rank(a: &(String, i64), b: &(String, i64)) -> Ordering {
    b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

/// Puts the first `n` of `items` (by `by_rank`) in order at the front; the rest are left
/// after them in no order. Sorting every URL would cost more than the whole read.
fn order_top<T>(items: &mut [T], n: usize, rank: impl Fn(&T, &T) -> Ordering) {
    let n = n.min(items.len());
    if n < items.len() {
        items.select_nth_unstable_by(n, &rank);
    }
    items[..n].sort_unstable_by(&rank);
}

impl Ranking {
    /// Ranks `counts`; a URL listed twice (a chunked read can return one twice) counts once.
    pub(crate) fn new(mut counts: Vec<(String, i64)>) -> Ranking {
        let mut seen = HashSet::with_capacity(counts.len());
        let twice: HashSet<usize> = counts
            .iter()
            .enumerate()
            .filter(|(_, (url, _))| !seen.insert(url.as_str()))
            .map(|(i, _)| i)
            .collect();
        drop(seen);
        if !twice.is_empty() {
            let mut i = 0;
            counts.retain(|_| {
                i += 1;
                !twice.contains(&(i - 1))
            });
        }
        let sorted = PRESORTED.min(counts.len());
        order_top(&mut counts, sorted, by_rank);
        let total = counts.iter().map(|(_, n)| n).sum();
        Ranking {
            entries: counts,
            sorted,
            total,
            sites: OnceLock::new(),
        }
    }

    /// The bucket's sites, most counted first, ties by host: one pass over its URLs the first
    /// time, kept with the ranking after (so at most once per read of the bucket).
    pub(crate) fn sites(&self) -> &[SiteTotal] {
        self.sites.get_or_init(|| {
            let mut by_host: HashMap<&str, (i64, usize)> = HashMap::new();
            for (url, count) in &self.entries {
                let site = by_host.entry(host_of(url)).or_default();
                site.0 += count;
                site.1 += 1;
            }
            let mut sites: Vec<SiteTotal> = by_host
                .into_iter()
                .map(|(site, (count, urls))| SiteTotal {
                    site: site.to_string(),
                    count,
                    urls,
                })
                .collect();
            sites.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.site.cmp(&b.site)));
            sites
        })
    }

    /// Reads the bucket chunk by chunk and ranks it.
    pub(crate) fn read(
        store: &dyn HitStore,
        period: Period,
        start: i64,
        metric: Metric,
    ) -> Result<Ranking, StoreError> {
        let mut counts = Vec::new();
        let mut cursor = Some(ScanCursor::START);
        while let Some(at) = cursor {
            let chunk = store.scan(period, start, at, metric)?;
            counts.extend(chunk.counts);
            cursor = chunk.next;
        }
        Ok(Ranking::new(counts))
    }

    /// Whether [`Ranking::page`] of these costs next to nothing: a slice of the URLs put in
    /// order when it was read, or a ranking too small for filtering and ordering to matter.
    pub(crate) fn page_is_cheap(&self, filter: &Filter, offset: usize, limit: usize) -> bool {
        self.entries.len() <= PRESORTED
            || (filter.is_empty() && offset.saturating_add(limit) <= self.sorted)
    }

    /// The URLs `filter` keeps: how many, their total, and `limit` of them from `offset` on,
    /// in rank order.
    pub(crate) fn page(&self, filter: &Filter, offset: usize, limit: usize) -> Page<'_> {
        let end = offset.saturating_add(limit);
        if filter.is_empty() && end <= self.sorted {
            return Page {
                urls: self.entries.len(),
                total: self.total,
                top: self.entries[offset..end].iter().collect(),
            };
        }
        let mut matching: Vec<&(String, i64)> = self
            .entries
            .iter()
            .filter(|(url, _)| filter.matches(url))
            .collect();
        let (urls, total) = (matching.len(), matching.iter().map(|(_, n)| n).sum());
        order_top(&mut matching, end, |a, b| by_rank(a, b));
        matching.truncate(end);
        Page {
            urls,
            total,
            top: matching.into_iter().skip(offset).collect(),
        }
    }
}

/// A page of a ranking.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Page<'a> {
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
pub(crate) struct Rankings {
    state: Mutex<HashMap<(Period, i64, Metric), Slot>>,
    read: Condvar,
}

/// One bucket's ranking: the one kept, if any, how long reading it took, and whether a
/// request is reading it again.
#[derive(Default)]
struct Slot {
    kept: Option<(Instant, Arc<Ranking>)>,
    took: Duration,
    reading: bool,
}

impl Slot {
    /// The kept ranking, if it may be served while another request reads the bucket again:
    /// within `MAX_AGE`; or, for a bucket whose read takes longer than the time a refresh
    /// has (`MAX_AGE - REFRESH_AFTER`), within `MAX_AGE` and two reads, as fresh as reading
    /// allows.
    fn servable(&self) -> Option<(Duration, Arc<Ranking>)> {
        let limit = match self.took > MAX_AGE - REFRESH_AFTER {
            true => MAX_AGE + 2 * self.took,
            false => MAX_AGE,
        };
        let (at, ranking) = self.kept.as_ref()?;
        (at.elapsed() < limit).then(|| (at.elapsed(), ranking.clone()))
    }
}

impl Rankings {
    pub(crate) fn new() -> Rankings {
        Rankings::default()
    }

    /// The kept ranking of a bucket if [`Rankings::get`] would serve it without reading or
    /// waiting: younger than `REFRESH_AFTER`, or being read again by another request.
    pub(crate) fn fresh(&self, period: Period, start: i64, metric: Metric) -> Option<Arc<Ranking>> {
        let slots = self.lock();
        let slot = slots.get(&(period, start, metric))?;
        match slot.servable()? {
            (age, ranking) if age < REFRESH_AFTER || slot.reading => Some(ranking),
            _ => None,
        }
    }

    /// The ranking of `period`'s bucket starting at `start`: a fresh one kept, the one being
    /// read by another request once it is done, or read now by `read`.
    pub(crate) fn get(
        &self,
        period: Period,
        start: i64,
        metric: Metric,
        read: impl FnOnce() -> Result<Ranking, StoreError>,
    ) -> Result<Arc<Ranking>, StoreError> {
        let key = (period, start, metric);
        let mut slots = self.lock();
        loop {
            let slot = slots.entry(key).or_default();
            match slot.servable() {
                // Ageing: this request reads it again, which the others need not wait for.
                Some((age, _)) if age >= REFRESH_AFTER && !slot.reading => break,
                Some((age, ranking)) if age < MAX_AGE || slot.reading => return Ok(ranking),
                Some(_) => break,
                None if slot.reading => {
                    slots = self.read.wait(slots).unwrap_or_else(|e| e.into_inner());
                }
                None => break,
            }
        }
        slots.entry(key).or_default().reading = true;
        drop(slots);
        // Whatever happens to the read (an error, a panic), the waiters are let go.
        let mut reading = Reading {
            rankings: self,
            key,
            began: Instant::now(),
            ranking: None,
        };
        let ranking = Arc::new(read()?);
        reading.ranking = Some(ranking.clone());
        Ok(ranking)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(Period, i64, Metric), Slot>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A read in progress; when dropped, it keeps what was read (a failed read leaves the slot
/// as it was, so the next request reads again once it has expired) and wakes the waiters.
struct Reading<'a> {
    rankings: &'a Rankings,
    key: (Period, i64, Metric),
    began: Instant,
    ranking: Option<Arc<Ranking>>,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut slots = self.rankings.lock();
        let slot = slots.entry(self.key).or_default();
        slot.reading = false;
        if let Some(ranking) = self.ranking.take() {
            slot.took = self.began.elapsed();
            slot.kept = Some((Instant::now(), ranking));
        }
        // Slow buckets' rankings are kept past MAX_AGE, to be served while they are read
        // again; the bound on how many are kept holds for them too.
        slots.retain(|_, slot| slot.reading || slot.servable().is_some());
        while slots.len() > MAX_KEPT {
            let oldest = slots
                .iter()
                .filter(|(_, slot)| !slot.reading)
                .filter_map(|(key, slot)| slot.kept.as_ref().map(|(at, _)| (*at, *key)))
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
        let urls: Vec<&str> = r
            .page(&Filter::default(), 0, 10)
            .top
            .iter()
            .map(|(u, _)| u.as_str())
            .collect();
        assert_eq!(urls, ["http://c/", "http://a/", "http://b/"]);
        assert_eq!(r.page(&Filter::default(), 0, 10).urls, 3);
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
        let page = r.page(&Filter::default(), 1, 2);
        assert_eq!((page.urls, page.total), (4, 21));
        let urls: Vec<&str> = page.top.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(urls, ["http://x/hats", "http://x/shoelaces"]);
        let page = r.page(&Filter::q("SHOE"), 1, 5);
        assert_eq!((page.urls, page.total), (2, 13));
        assert_eq!(page.top, [&("http://x/shoelaces".to_string(), 3)]);
        assert_eq!(r.page(&Filter::q("nothing"), 0, 5), Page::default());
        assert_eq!(r.page(&Filter::default(), 10, 5).top.len(), 0);
    }

    #[test]
    fn concurrent_requests_share_one_read() {
        let rankings = Arc::new(Rankings::new());
        let reads = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (rankings, reads) = (rankings.clone(), reads.clone());
                std::thread::spawn(move || {
                    rankings
                        .get(Period::Day, 0, Metric::Hits, || {
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
        let other = rankings.get(Period::Day, 86_400_000, Metric::Hits, || {
            Ok(Ranking::default())
        });
        assert_eq!(other.unwrap().total, 0);
    }

    #[test]
    fn a_failed_read_is_not_kept() {
        let rankings = Rankings::default();
        let failed = rankings.get(Period::All, 0, Metric::Hits, || {
            Err(StoreError::Unavailable("down".into()))
        });
        assert!(failed.is_err());
        let read = rankings.get(Period::All, 0, Metric::Hits, || {
            Ok(ranking(&[("http://a/", 2)]))
        });
        assert_eq!(read.unwrap().total, 2);
    }

    #[test]
    fn deep_and_filtered_pages_are_in_rank_order() {
        // More URLs than are put in order up front, with many tied counts.
        let counts: Vec<(String, i64)> = (0..3000)
            .map(|i| {
                (
                    format!("http://x/{}/{i}", if i % 3 == 0 { "a" } else { "b" }),
                    (i * 7919) % 97,
                )
            })
            .collect();
        let mut want = counts.clone();
        want.sort_by(by_rank);
        let r = Ranking::new(counts);
        for (offset, limit) in [(0, 50), (990, 20), (1500, 10), (2990, 50), (3000, 5)] {
            let page = r.page(&Filter::default(), offset, limit);
            let got: Vec<(String, i64)> = page.top.into_iter().cloned().collect();
            let end = (offset + limit).min(want.len());
            assert_eq!(
                got,
                want[offset.min(end)..end],
                "offset {offset}, limit {limit}"
            );
        }
        let filtered: Vec<&(String, i64)> =
            want.iter().filter(|(u, _)| u.contains("/a/")).collect();
        let page = r.page(&Filter::q("/A/"), 400, 30);
        assert_eq!(page.urls, 1000);
        assert_eq!(page.total, filtered.iter().map(|(_, n)| n).sum::<i64>());
        assert_eq!(page.top, filtered[400..430]);
    }

    #[test]
    fn an_ageing_ranking_is_read_again_by_one_request_while_the_others_use_it() {
        let rankings = Arc::new(Rankings::new());
        rankings
            .get(Period::Hour, 0, Metric::Hits, || {
                Ok(ranking(&[("http://a/", 1)]))
            })
            .unwrap();
        std::thread::sleep(REFRESH_AFTER);
        let reader = {
            let rankings = rankings.clone();
            std::thread::spawn(move || {
                rankings
                    .get(Period::Hour, 0, Metric::Hits, || {
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(ranking(&[("http://a/", 2)]))
                    })
                    .unwrap()
                    .total
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        // The read under way is not waited for, and not started twice.
        let kept = rankings.get(Period::Hour, 0, Metric::Hits, || panic!("a second read"));
        assert_eq!(kept.unwrap().total, 1);
        assert_eq!(reader.join().unwrap(), 2);
        let read = rankings.get(Period::Hour, 0, Metric::Hits, || {
            panic!("read again at once")
        });
        assert_eq!(read.unwrap().total, 2);
    }

    #[test]
    fn slow_buckets_are_served_while_read_and_fresh_ones_without_a_read() {
        let rankings = Arc::new(Rankings::new());
        assert!(rankings.fresh(Period::Day, 0, Metric::Hits).is_none());
        let slow = |total: i64| {
            move || {
                std::thread::sleep(Duration::from_millis(600));
                Ok(ranking(&[("http://a/", total)]))
            }
        };
        assert_eq!(
            rankings
                .get(Period::Day, 0, Metric::Hits, slow(1))
                .unwrap()
                .total,
            1
        );
        assert_eq!(
            rankings.fresh(Period::Day, 0, Metric::Hits).unwrap().total,
            1
        );
        // Bucket 0 took longer than a refresh may: past MAX_AGE, its ranking is still served
        // while one request reads it again, but it is no longer fresh until then.
        std::thread::sleep(MAX_AGE);
        assert!(rankings.fresh(Period::Day, 0, Metric::Hits).is_none());
        let refresh = {
            let rankings = rankings.clone();
            std::thread::spawn(move || {
                rankings
                    .get(Period::Day, 0, Metric::Hits, slow(2))
                    .unwrap()
                    .total
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            rankings.fresh(Period::Day, 0, Metric::Hits).unwrap().total,
            1
        );
        let kept = rankings.get(Period::Day, 0, Metric::Hits, || panic!("read twice"));
        assert_eq!(kept.unwrap().total, 1);
        assert_eq!(refresh.join().unwrap(), 2);
    }
}

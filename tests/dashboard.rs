//! The dashboard end to end in a real browser: a real Redis and hitme, Debian's headless
//! chromium loading the page, and assertions on the DOM it rendered: exact counts from the
//! seeded hits, and at 100,000 URLs the server's ranking, paging (`#rows=`) and filter (`#q=`),
//! what a refresh costs, and that the page never reads `/hits`. Also writes the screenshot in
//! docs/dashboard.png.
//!
//! Each view is loaded with `--dump-dom` under a virtual-time budget: chromium runs the page's
//! timers as fast as it can but waits for every network request, so the DOM is dumped after
//! the first load and two auto-refreshes, however slow the machine, with no sleeps here.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::browser::{chromium, TempDir};
use common::{encode, now_ms, HitMe, Redis};

/// The page at `hash` as chromium rendered it.
fn load(hitme: &HitMe, hash: &str) -> Dom {
    let url = format!("http://{}/{hash}", hitme.addr);
    let html = chromium(&["--dump-dom".to_string()], &url);
    Dom::new(String::from_utf8(html).expect("the DOM is UTF-8"), &url)
}

// ---- Reading the dumped DOM -----------------------------------------------------------------

/// One start tag: its name, attributes (entities decoded) and where it ends in the HTML.
#[derive(Debug, Clone)]
struct Element {
    tag: String,
    attrs: BTreeMap<String, String>,
    start: usize,
    end_of_start_tag: usize,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }

    fn hidden(&self) -> bool {
        self.attrs.contains_key("hidden")
    }

    fn int(&self, name: &str) -> i64 {
        let value = self
            .attr(name)
            .unwrap_or_else(|| panic!("<{}> has no {name}: {:?}", self.tag, self.attrs));
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
    }
}

/// The serialised DOM chromium dumps, with just enough parsing for the assertions: chromium
/// writes well-formed HTML with double-quoted attributes, which keeps this small.
struct Dom {
    html: String,
    elements: Vec<Element>,
    url: String,
}

impl Dom {
    fn new(html: String, url: &str) -> Dom {
        let elements = parse_start_tags(&html);
        Dom {
            html,
            elements,
            url: url.to_string(),
        }
    }

    fn id(&self, id: &str) -> &Element {
        self.elements
            .iter()
            .find(|e| e.attr("id") == Some(id))
            .unwrap_or_else(|| panic!("no #{id} in {}:\n{}", self.url, self.html))
    }

    /// Elements with `tag` and `class`, in document order.
    fn all(&self, tag: &str, class: &str) -> Vec<&Element> {
        self.elements
            .iter()
            .filter(|e| e.tag == tag && e.has_class(class))
            .collect()
    }

    /// The text inside `element` (tags dropped, entities decoded).
    fn text(&self, element: &Element) -> String {
        let inner = &self.html[element.end_of_start_tag..self.end_of(element)];
        let mut text = String::new();
        let mut in_tag = false;
        for c in inner.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ if !in_tag => text.push(c),
                _ => {}
            }
        }
        decode(&text)
    }

    fn text_of(&self, id: &str) -> String {
        self.text(self.id(id))
    }

    /// Where `element`'s end tag starts, counting nested elements of the same name.
    fn end_of(&self, element: &Element) -> usize {
        let (open, close) = (format!("<{}", element.tag), format!("</{}>", element.tag));
        let mut depth = 1;
        let mut at = element.end_of_start_tag;
        loop {
            let next_close = self.html[at..]
                .find(&close)
                .map(|i| i + at)
                .unwrap_or_else(|| panic!("<{}> is never closed", element.tag));
            let next_open = self.html[at..].find(&open).map(|i| i + at);
            match next_open {
                Some(o) if o < next_close && self.is_tag_start(o, &element.tag) => {
                    depth += 1;
                    at = o + open.len();
                }
                _ => {
                    depth -= 1;
                    if depth == 0 {
                        return next_close;
                    }
                    at = next_close + close.len();
                }
            }
        }
    }

    fn is_tag_start(&self, at: usize, tag: &str) -> bool {
        let after = self.html.as_bytes().get(at + 1 + tag.len()).copied();
        matches!(after, Some(b' ' | b'>' | b'/'))
    }

    /// The cells' texts of the table row for `url`.
    fn row_cells(&self, url: &str) -> Vec<String> {
        let row = self
            .all("tr", "url-row")
            .into_iter()
            .find(|r| r.attr("data-url") == Some(url))
            .unwrap_or_else(|| panic!("no row for {url}"));
        self.cells(row)
    }

    /// The Sources card's rows, as the text of their cells.
    fn source_rows(&self) -> Vec<Vec<String>> {
        self.all("tr", "source-row")
            .into_iter()
            .map(|row| self.cells(row))
            .collect()
    }

    /// The texts of a table row's cells.
    fn cells(&self, row: &Element) -> Vec<String> {
        let end = self.end_of(row);
        self.elements
            .iter()
            .filter(|e| e.tag == "td" && e.start > row.start && e.start < end)
            .map(|td| self.text(td))
            .collect()
    }
}

fn parse_start_tags(html: &str) -> Vec<Element> {
    let bytes = html.as_bytes();
    let mut elements = Vec::new();
    let mut i = 0;
    while let Some(offset) = html[i..].find('<') {
        let start = i + offset;
        i = start + 1;
        if !bytes.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
            continue; // an end tag, a comment or the doctype
        }
        let name_end = html[i..]
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .map_or(html.len(), |n| n + i);
        let tag = html[i..name_end].to_ascii_lowercase();
        let mut attrs = BTreeMap::new();
        let mut j = name_end;
        loop {
            while bytes[j].is_ascii_whitespace() || bytes[j] == b'/' {
                j += 1;
            }
            if bytes[j] == b'>' {
                j += 1;
                break;
            }
            let name_len = html[j..]
                .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>' || c == '/')
                .unwrap();
            let name = html[j..j + name_len].to_string();
            j += name_len;
            if bytes[j] == b'=' {
                assert_eq!(bytes[j + 1], b'"', "chromium quotes attribute values");
                let value_len = html[j + 2..].find('"').unwrap();
                attrs.insert(name, decode(&html[j + 2..j + 2 + value_len]));
                j += 2 + value_len + 1;
            } else {
                attrs.insert(name, String::new());
            }
        }
        elements.push(Element {
            tag,
            attrs,
            start,
            end_of_start_tag: j,
        });
        i = j;
    }
    elements
}

fn decode(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

// ---- Time buckets, worked out independently of hitme ----------------------------------------

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Unit {
    /// The first millisecond of the bucket holding `ts` (UTC; weeks start on Monday).
    fn start(self, ts: i64) -> i64 {
        match self {
            Unit::Minute => ts - ts.rem_euclid(MINUTE),
            Unit::Hour => ts - ts.rem_euclid(HOUR),
            Unit::Day => ts - ts.rem_euclid(DAY),
            // 1970-01-01 was a Thursday, three days after a Monday.
            Unit::Week => {
                let days = ts.div_euclid(DAY);
                (days - (days + 3).rem_euclid(7)) * DAY
            }
            Unit::Month => {
                let (year, month) = year_month(ts.div_euclid(DAY));
                days_from_civil(year, month) * DAY
            }
        }
    }

    /// The start of the bucket after the one starting at `start`.
    fn next(self, start: i64) -> i64 {
        match self {
            Unit::Minute => start + MINUTE,
            Unit::Hour => start + HOUR,
            Unit::Day => start + DAY,
            Unit::Week => start + 7 * DAY,
            Unit::Month => Unit::Month.start(start + 32 * DAY),
        }
    }

    /// The bucket's name in Redis keys: `hits:<name>:<start>`.
    fn key_name(self) -> &'static str {
        match self {
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
        }
    }

    /// The unit of a `range=` hash value (the /series period).
    fn of_range(range: &str) -> (Unit, usize) {
        match range {
            "minute" => (Unit::Minute, 60),
            "hour" => (Unit::Hour, 24),
            "day" => (Unit::Day, 30),
            "month" => (Unit::Month, 12),
            _ => panic!("no range {range}"),
        }
    }
}

/// Days since the epoch of the first of `month` in `year` (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// The year and month of a day counted from the epoch.
fn year_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month)
}

const PERIODS: [(&str, Option<Unit>); 6] = [
    ("all_time", None),
    ("last_month", Some(Unit::Month)),
    ("last_week", Some(Unit::Week)),
    ("last_day", Some(Unit::Day)),
    ("last_hour", Some(Unit::Hour)),
    ("last_minute", Some(Unit::Minute)),
];

fn unit_of_period(period: &str) -> Option<Unit> {
    PERIODS
        .iter()
        .find(|(name, _)| *name == period)
        .unwrap_or_else(|| panic!("no period {period}"))
        .1
}

/// The hits the test recorded, and what hitme should make of them.
struct Seeded(Vec<(&'static str, i64)>);

impl Seeded {
    fn record(hitme: &HitMe, hits: Vec<(&'static str, i64)>) -> Seeded {
        for (url, ts) in &hits {
            hitme.hit(url, *ts);
        }
        Seeded(hits)
    }

    /// Each URL's count in `period` as of `at`.
    fn counts(&self, period: &str, at: i64) -> BTreeMap<String, i64> {
        let unit = unit_of_period(period);
        let mut counts = BTreeMap::new();
        for (url, ts) in &self.0 {
            if unit.is_none_or(|u| u.start(*ts) == u.start(at)) {
                *counts.entry(url.to_string()).or_default() += 1;
            }
        }
        counts
    }

    /// Each URL of `period`'s bucket as of `at`, with its count.
    fn bucket(&self, period: &str, at: i64) -> Vec<(String, i64)> {
        self.counts(period, at).into_iter().collect()
    }

    /// `url`'s count in the `unit` bucket starting at `start`.
    fn in_bucket(&self, url: &str, unit: Unit, start: i64) -> i64 {
        let hits = self
            .0
            .iter()
            .filter(|(u, ts)| *u == url && unit.start(*ts) == start);
        hits.count() as i64
    }
}

/// `(url, count)` most hits first, ties in URL order: `/top`'s ranking, which the page shows.
fn ranked(counts: &BTreeMap<String, i64>) -> Vec<(String, i64)> {
    let mut entries: Vec<(String, i64)> = counts.iter().map(|(u, n)| (u.clone(), *n)).collect();
    rank(&mut entries);
    entries
}

fn rank(entries: &mut [(String, i64)]) {
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// Whether the filter `q` keeps `url`: it contains `q`, ignoring ASCII case, as `/top` has it.
fn matches(url: &str, q: &str) -> bool {
    url.to_ascii_lowercase().contains(&q.to_ascii_lowercase())
}

// ---- What every populated view must show ----------------------------------------------------

/// The table's rows at first and per "Show more", and the most it holds (static/app.js).
const PAGE_ROWS: usize = 50;
const MAX_ROWS: usize = 500;

/// What the URL hash asks for: a tab, a series range, how many table rows, a filter, and the
/// moment pinned.
struct View<'a> {
    period: &'a str,
    range: &'a str,
    rows: usize,
    q: &'a str,
    at: i64,
}

impl View<'_> {
    fn new<'a>(period: &'a str, range: &'a str, at: i64) -> View<'a> {
        View {
            period,
            range,
            rows: PAGE_ROWS,
            q: "",
            at,
        }
    }

    /// The hash as the page writes it back, without `at`.
    fn live_hash(&self) -> String {
        let mut hash = format!("#period={}&range={}", self.period, self.range);
        if self.rows != PAGE_ROWS {
            hash.push_str(&format!("&rows={}", self.rows));
        }
        if !self.q.is_empty() {
            hash.push_str(&format!("&q={}", encode(self.q)));
        }
        hash
    }

    fn hash(&self) -> String {
        format!("{}&at={}", self.live_hash(), self.at)
    }
}

/// What a view must show, worked out from what was seeded, independently of hitme.
struct Expect {
    /// Each period's total, of the URLs the filter keeps.
    tabs: BTreeMap<&'static str, i64>,
    /// The selected period's URLs the filter keeps, ranked.
    ranking: Vec<(String, i64)>,
    /// The series chart's URLs: the period's top 5, or all time's when it has none.
    series: Vec<String>,
    /// Each bucketed period's previous bucket's total, of the URLs the filter keeps, when
    /// the view checks them ([`Expect::with_previous`]).
    previous: BTreeMap<&'static str, i64>,
}

impl Expect {
    /// From `bucket(period)`, every URL of that period's bucket with its count.
    fn new(bucket: impl Fn(&str) -> Vec<(String, i64)>, view: &View) -> Expect {
        let kept = |period: &str| -> Vec<(String, i64)> {
            let mut entries: Vec<(String, i64)> = bucket(period)
                .into_iter()
                .filter(|(url, _)| matches(url, view.q))
                .collect();
            rank(&mut entries);
            entries
        };
        let tabs = PERIODS
            .iter()
            .map(|(name, _)| (*name, kept(name).iter().map(|(_, n)| n).sum()))
            .collect();
        let ranking = kept(view.period);
        let top = if ranking.is_empty() {
            kept("all_time")
        } else {
            ranking.clone()
        };
        let series = top.into_iter().take(5).map(|(url, _)| url).collect();
        Expect {
            tabs,
            ranking,
            series,
            previous: BTreeMap::new(),
        }
    }

    /// With the totals of the buckets before those holding `at`, which each tab shows.
    fn with_previous(mut self, seeded: &Seeded, view: &View) -> Expect {
        for (name, unit) in PERIODS {
            let Some(unit) = unit else { continue };
            let before = seeded.bucket(name, unit.start(view.at) - 1);
            let total = before
                .iter()
                .filter(|(url, _)| matches(url, view.q))
                .map(|(_, n)| n)
                .sum();
            self.previous.insert(name, total);
        }
        self
    }

    fn total(&self) -> i64 {
        self.ranking.iter().map(|(_, n)| n).sum()
    }
}

/// ` containing “q”`, as the page adds it to its sentences, or nothing without a filter.
fn containing(q: &str) -> String {
    if q.is_empty() {
        String::new()
    } else {
        format!(" containing “{q}”")
    }
}

/// `n one` or `n many`, `n` grouped: `1 hit`, `1,234 hits`.
fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// Checks the tabs, the summary, the table (rows in rank order, counts, shares, what is left
/// out), the bar chart and the series chart's URLs of a loaded view against `expect`; returns
/// the table's URLs in order.
fn check_view(dom: &Dom, expect: &Expect, view: &View) -> Vec<String> {
    let View {
        period, rows, q, ..
    } = *view;
    let url = &dom.url;
    assert_eq!(
        dom.id("dashboard").attr("data-state"),
        Some("ready"),
        "{url}"
    );
    assert!(dom.id("error").hidden(), "{url}: {}", dom.text_of("error"));
    assert!(dom.id("empty").hidden(), "{url}");
    let content = dom.id("content");
    assert!(!content.hidden(), "{url}");
    assert!(
        !content.has_class("pending") && content.attr("aria-busy").is_none(),
        "{url}: the data on screen is the view's own"
    );
    assert_eq!(dom.id("filter-note").hidden(), q.is_empty(), "{url}");

    // Tabs: exactly one selected, each showing its period's total.
    for (name, _) in PERIODS {
        let tab = dom.id(&format!("tab-{name}"));
        let selected = if name == period { "true" } else { "false" };
        assert_eq!(
            tab.attr("aria-selected"),
            Some(selected),
            "{url}: tab {name}"
        );
        assert_eq!(tab.attr("role"), Some("tab"));
        let total = grouped(expect.tabs[name]);
        assert!(
            dom.text(tab).contains(&format!(" {total}")),
            "{url}: tab {name} shows {:?}, expected total {total}",
            dom.text(tab)
        );
    }
    // Each bucketed tab beside the bucket before it ("last week 1,234").
    let befores = dom.all("span", "tab-prev");
    assert_eq!(befores.len(), 5, "{url}");
    for ((name, _), before) in PERIODS.iter().skip(1).zip(befores) {
        if let Some(want) = expect.previous.get(name) {
            assert_eq!(
                before.attr("data-previous"),
                Some(want.to_string().as_str()),
                "{url}: tab {name}'s previous bucket"
            );
        }
    }

    let ranking = &expect.ranking;
    let total = expect.total();
    let urls = ranking.len() as i64;
    assert_eq!(
        dom.text_of("summary"),
        format!(
            "{} on {}{}",
            plural(total, "hit", "hits"),
            plural(urls, "URL", "URLs"),
            containing(q)
        ),
        "{url}"
    );
    let table_rows = dom.all("tr", "url-row");
    if ranking.is_empty() {
        assert!(!dom.id("period-empty").hidden(), "{url}");
        let during = match period {
            "last_month" => " this month",
            "last_week" => " this week",
            "last_day" => " today",
            "last_hour" => " this hour",
            "last_minute" => " this minute",
            _ => "",
        };
        let text = if q.is_empty() {
            format!("No hits{during} yet.")
        } else {
            format!("No URL{} has hits{during}.", containing(q))
        };
        assert_eq!(dom.text_of("period-empty"), text, "{url}");
        assert!(dom.id("compare").hidden(), "{url}");
        return Vec::new();
    }
    assert!(dom.id("period-empty").hidden(), "{url}");

    // The table: the top `rows` URLs in rank order, each with its exact count and share.
    let shown = &ranking[..rows.min(ranking.len())];
    let order: Vec<(String, i64)> = table_rows
        .iter()
        .map(|r| (r.attr("data-url").unwrap().to_string(), r.int("data-count")))
        .collect();
    assert_eq!(order, shown, "{url}: table rows, in rank order");
    for (row_url, count) in shown {
        let cells = dom.row_cells(row_url);
        assert_eq!(cells.len(), 3, "{url}: {cells:?}");
        assert_eq!(cells[..2], [row_url.clone(), grouped(*count)], "{url}");
        assert!(
            shares(*count, total).contains(&cells[2]),
            "{url}: {row_url} has {count} of {total} hits, shown as {}",
            cells[2]
        );
    }
    assert_eq!(dom.text_of("total-count"), grouped(total), "{url}");
    let total_label = if q.is_empty() {
        "Total"
    } else {
        "Total matching"
    };
    assert_eq!(dom.text_of("total-label"), total_label, "{url}");
    let ranked_text = if shown.len() < ranking.len() {
        format!(
            "The top {} of {}",
            grouped(shown.len() as i64),
            plural(urls, "URL", "URLs")
        )
    } else if urls == 1 {
        "The one URL".to_string()
    } else {
        format!("All {} URLs", grouped(urls))
    };
    let shares_text = if q.is_empty() {
        String::new()
    } else {
        format!(
            "; shares are of the {} on URLs{}",
            plural(total, "hit", "hits"),
            containing(q)
        )
    };
    assert_eq!(
        dom.text_of("table-note"),
        format!(
            "{ranked_text}{}, most hits first{shares_text}.",
            containing(q)
        ),
        "{url}"
    );

    // What the table leaves out, and the control that shows more of it (up to MAX_ROWS).
    let rest = &ranking[shown.len()..];
    assert_eq!(dom.id("more-row").hidden(), rest.is_empty(), "{url}");
    if !rest.is_empty() {
        let rest_hits = rest.iter().map(|(_, n)| n).sum();
        assert_eq!(
            dom.text_of("more-text"),
            format!(
                "and {} with {}",
                plural(rest.len() as i64, "more URL", "more URLs"),
                plural(rest_hits, "hit", "hits")
            ),
            "{url}"
        );
        let capped = shown.len() >= MAX_ROWS;
        assert_eq!(dom.id("show-more").hidden(), capped, "{url}");
        assert_eq!(dom.id("rows-cap").hidden(), !capped, "{url}");
        if capped {
            assert_eq!(
                dom.text_of("rows-cap"),
                format!("The table stops at {MAX_ROWS} rows; the filter finds the others.")
            );
        } else {
            let more = PAGE_ROWS.min(MAX_ROWS - shown.len()).min(rest.len());
            assert_eq!(
                dom.text_of("show-more"),
                format!("Show {more} more"),
                "{url}"
            );
        }
    }

    // The bar chart: the top URLs, the rest grouped in one bar.
    let bars = dom.all("g", "bar");
    if ranking.len() <= 8 {
        let shown: Vec<(String, i64)> = bars
            .iter()
            .map(|b| (b.attr("data-url").unwrap().to_string(), b.int("data-count")))
            .collect();
        assert_eq!(&shown, ranking, "{url}: bars");
    } else {
        assert_eq!(bars.len(), 8, "{url}: bars");
        for (bar, (bar_url, count)) in bars.iter().zip(&ranking[..7]) {
            assert_eq!(bar.attr("data-url"), Some(bar_url.as_str()), "{url}");
            assert_eq!(bar.int("data-count"), *count, "{url}");
        }
        let others = &bars[7];
        let rest = &ranking[7..];
        assert!(others.has_class("other"), "{url}");
        assert_eq!(others.int("data-others"), rest.len() as i64, "{url}");
        assert_eq!(
            others.int("data-count"),
            rest.iter().map(|(_, n)| n).sum::<i64>()
        );
        assert!(
            dom.text(others)
                .contains(&format!("{} other URLs", grouped(rest.len() as i64))),
            "{url}"
        );
    }

    // The series chart follows the top URLs (check_series checks its points).
    let lines: Vec<&str> = dom
        .all("polyline", "line")
        .iter()
        .map(|l| l.attr("data-url").unwrap())
        .collect();
    assert_eq!(lines, expect.series, "{url}: series lines");

    shown.iter().map(|(u, _)| u.clone()).collect()
}

/// The series chart: one line per top URL (of the period, or of all time when the period has
/// none), one point per bucket of the range, ending at the bucket holding `at`, each with the
/// exact count of hits in its bucket.
fn check_series(dom: &Dom, seeded: &Seeded, period: &str, range: &str, at: i64) {
    let url = &dom.url;
    let (unit, buckets) = Unit::of_range(range);
    let mut top = ranked(&seeded.counts(period, at));
    if top.is_empty() {
        top = ranked(&seeded.counts("all_time", at));
    }
    let top: Vec<String> = top.into_iter().take(5).map(|(u, _)| u).collect();

    assert_eq!(
        dom.id("series-chart").attr("data-range"),
        Some(range),
        "{url}"
    );
    for button in dom
        .elements
        .iter()
        .filter(|e| e.attrs.contains_key("data-range"))
    {
        if button.tag == "button" {
            let pressed = if button.attr("data-range") == Some(range) {
                "true"
            } else {
                "false"
            };
            assert_eq!(button.attr("aria-pressed"), Some(pressed), "{url}");
        }
    }
    let lines: Vec<String> = dom
        .all("polyline", "line")
        .iter()
        .map(|l| l.attr("data-url").unwrap().to_string())
        .collect();
    assert_eq!(lines, top, "{url}: one line per top URL, in rank order");
    let legend: Vec<&str> = dom
        .all("li", "legend-item")
        .iter()
        .map(|li| li.attr("data-url").unwrap())
        .collect();
    assert_eq!(legend, top, "{url}: legend");

    for line_url in &top {
        let points: Vec<&Element> = dom
            .all("circle", "point")
            .into_iter()
            .filter(|p| p.attr("data-url") == Some(line_url.as_str()))
            .collect();
        assert_eq!(points.len(), buckets, "{url}: points of {line_url}");
        let starts: Vec<i64> = points.iter().map(|p| p.int("data-start")).collect();
        assert_eq!(
            *starts.last().unwrap(),
            unit.start(at),
            "{url}: the last point is the bucket holding {at}"
        );
        for pair in starts.windows(2) {
            assert_eq!(unit.next(pair[0]), pair[1], "{url}: consecutive buckets");
        }
        for point in points {
            let start = point.int("data-start");
            assert_eq!(
                point.int("data-count"),
                seeded.in_bucket(line_url, unit, start),
                "{url}: {line_url} in the {unit:?} bucket starting at {start}"
            );
        }
    }
}

/// The count the series point of `url` in the bucket starting at `start` shows.
fn point(dom: &Dom, url: &str, start: i64) -> i64 {
    dom.all("circle", "point")
        .into_iter()
        .find(|p| p.attr("data-url") == Some(url) && p.int("data-start") == start)
        .unwrap_or_else(|| panic!("{}: no point for {url} at {start}", dom.url))
        .int("data-count")
}

/// `n` as the page writes it: `1,234`.
fn grouped(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How the page may write `count`'s share of `total`, to one decimal: both roundings when the
/// share lies exactly halfway (JavaScript rounds those up, Rust's formatting to even).
fn shares(count: i64, total: i64) -> Vec<String> {
    if count > 0 && 1000 * count < total {
        return vec!["<0.1%".to_string()];
    }
    let twentieths = 2000 * count / total;
    let halfway = (2000 * count) % total == 0 && twentieths % 2 == 1;
    let tenths = if halfway {
        vec![twentieths / 2, twentieths / 2 + 1]
    } else {
        vec![(2000 * count + total) / (2 * total)]
    };
    tenths
        .into_iter()
        .map(|t| format!("{}.{}%", t / 10, t % 10))
        .collect()
}

fn table(dom: &Dom) -> BTreeMap<String, i64> {
    dom.all("tr", "url-row")
        .iter()
        .map(|r| (r.attr("data-url").unwrap().to_string(), r.int("data-count")))
        .collect()
}

fn map(entries: &[(&str, i64)]) -> BTreeMap<String, i64> {
    entries.iter().map(|(u, n)| (u.to_string(), *n)).collect()
}

// ---- The tests --------------------------------------------------------------------------------

const HOME: &str = "https://shop.example/";
const PRICING: &str = "https://shop.example/pricing";
const LAUNCH: &str = "https://shop.example/blog/launch";
const SIGNUP: &str = "https://shop.example/signup";
/// A query string with `&`, which must survive HTML escaping in the DOM.
const SEARCH: &str = "https://shop.example/search?q=shoes&size=42";
const ARCHIVE: [&str; 6] = [
    "https://shop.example/archive/2024/1",
    "https://shop.example/archive/2024/2",
    "https://shop.example/archive/2024/3",
    "https://shop.example/archive/2024/4",
    "https://shop.example/archive/2024/5",
    "https://shop.example/archive/2024/6",
];

#[test]
fn each_view_shows_the_exact_counts_of_its_period_and_range() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());

    // Hits around now, placed by bucket rather than by offset so that the assertions hold
    // whatever the time of day: "earlier this hour" is the minute before this one, or the
    // one after when this is the hour's first minute; likewise "earlier today".
    let at = now_ms();
    let (minute, hour, day) = (
        Unit::Minute.start(at),
        Unit::Hour.start(at),
        Unit::Day.start(at),
    );
    let this_hour_not_minute = if minute > hour {
        minute - 1
    } else {
        minute + MINUTE
    };
    let today_not_this_hour = if hour > day { hour - 1 } else { hour + HOUR };
    let long_ago = at - 400 * DAY; // in All Time only, and outside every series range
    let mut hits = Vec::new();
    hits.extend([(HOME, at); 7]);
    hits.extend([(PRICING, at); 4]);
    hits.extend([(PRICING, this_hour_not_minute); 2]);
    hits.extend([(SIGNUP, this_hour_not_minute); 3]);
    hits.extend([(LAUNCH, today_not_this_hour); 5]);
    hits.push((SEARCH, at));
    for (i, url) in ARCHIVE.iter().enumerate() {
        hits.extend(std::iter::repeat_n((*url, long_ago), i + 1));
    }
    let seeded = Seeded::record(&hitme, hits);

    // Every view is pinned to `at` (#at=) so that a minute or hour rolling over while the
    // browser runs cannot move the buckets under the assertions.
    let show = |view: View| {
        let dom = load(&hitme, &view.hash());
        let expect =
            Expect::new(|period| seeded.bucket(period, at), &view).with_previous(&seeded, &view);
        let rows = check_view(&dom, &expect, &view);
        if !view.q.is_empty() {
            return (dom, rows); // check_series knows no filter
        }
        check_series(&dom, &seeded, view.period, view.range, at);
        assert!(!dom.id("pinned").hidden());
        // The hash the page writes back: its "Go live" link is that hash without at.
        let go_live = dom.id("go-live").attr("href").unwrap();
        assert_eq!(go_live, view.live_hash());
        (dom, rows)
    };
    let view = |period, range| show(View::new(period, range, at));

    let (dom, rows) = view("last_minute", "minute");
    assert_eq!(table(&dom), map(&[(HOME, 7), (PRICING, 4), (SEARCH, 1)]));
    assert_eq!(rows, [HOME, PRICING, SEARCH], "most hits first");
    assert_eq!(point(&dom, HOME, minute), 7);
    assert_eq!(point(&dom, PRICING, minute), 4);
    assert_eq!(dom.row_cells(HOME), [HOME, "7", "58.3%"]);

    // The launch post was hit earlier today but not this hour: in Last Day, not Last Hour.
    let (dom, _) = view("last_hour", "hour");
    assert_eq!(
        table(&dom),
        map(&[(HOME, 7), (PRICING, 6), (SIGNUP, 3), (SEARCH, 1)])
    );
    assert_eq!(point(&dom, PRICING, hour), 6);
    assert_eq!(point(&dom, SIGNUP, hour), 3);

    let near_now = [HOME, PRICING, LAUNCH, SIGNUP, SEARCH];
    let (dom, rows) = view("last_day", "day");
    assert_eq!(rows, near_now);
    assert_eq!(point(&dom, LAUNCH, day), 5);
    assert_eq!(point(&dom, HOME, day), 7);

    let (dom, rows) = view("last_week", "month");
    assert_eq!(rows, near_now);
    assert_eq!(point(&dom, HOME, Unit::Month.start(at)), 7);

    let (_, rows) = view("last_month", "hour");
    assert_eq!(rows, near_now);

    // All Time: eleven URLs, so seven bars and "4 other URLs" (checked in check_view).
    // Ties (the sixth archive page and pricing both have 6) go in URL order.
    let (dom, rows) = view("all_time", "day");
    assert_eq!(rows.len(), 11);
    assert_eq!(rows[..3], [HOME, ARCHIVE[5], PRICING]);
    assert_eq!(dom.all("g", "bar").len(), 8);
    assert!(dom.id("more-row").hidden(), "all eleven are shown");

    // A filter (from the hash, as a link would give it), ignoring case: only pricing is under
    // "shop.example/p", so every tab counts pricing alone and its share is all of it.
    let filtered = View {
        q: "SHOP.EXAMPLE/P",
        ..View::new("last_hour", "hour", at)
    };
    let (dom, rows) = show(filtered);
    assert_eq!(rows, [PRICING]);
    assert_eq!(
        dom.text_of("summary"),
        "6 hits on 1 URL containing “SHOP.EXAMPLE/P”"
    );
    assert_eq!(dom.row_cells(PRICING), [PRICING, "6", "100.0%"]);
    assert_eq!(
        dom.id("go-live").attr("href"),
        Some("#period=last_hour&range=hour&q=SHOP.EXAMPLE%2FP")
    );

    // Live (no #at): what a rolling minute cannot change. All Time's counts are exact, and
    // every point of the hourly series matches the seeded hits in its bucket.
    let live_at = now_ms();
    let dom = load(&hitme, "#range=hour");
    assert!(dom.id("pinned").hidden());
    assert!(dom.text_of("mode").starts_with("Live"));
    assert_eq!(table(&dom), seeded.counts("all_time", at));
    let last = dom
        .all("circle", "point")
        .iter()
        .map(|p| p.int("data-start"))
        .max()
        .unwrap();
    assert!(
        last == Unit::Hour.start(live_at) || last == Unit::Hour.start(now_ms()),
        "the live series ends at the current hour"
    );
    check_series(&dom, &seeded, "all_time", "hour", last);
    assert_never_read_hits(&hitme);
}

/// The page reads `/top` and `/series`, never `/hits` (which is every URL's counts, tens of
/// megabytes on a big site): hitme's own request counters say so.
fn assert_never_read_hits(hitme: &HitMe) {
    let metrics = hitme.get("/metrics").text();
    assert!(
        !metrics.contains("route=\"/hits\""),
        "the dashboard requested /hits:\n{metrics}"
    );
    let tops = hitme.metric("hitme_http_requests_total{route=\"/top\",status=\"200\"}");
    assert!(
        tops.unwrap_or(0.0) > 0.0,
        "the dashboard reads /top:\n{metrics}"
    );
}

// ---- A site with many URLs --------------------------------------------------------------------

/// URLs seeded straight into Redis for the scale test: the size the dashboard is built for.
const MANY: usize = 100_000;
const SECTIONS: [&str; 5] = ["world", "sport", "tech", "culture", "money"];

/// The `i`th URL of the big site, about as long as real ones (70 bytes).
fn many_url(i: usize) -> String {
    let section = SECTIONS[i % SECTIONS.len()];
    format!("https://news.example.com/{section}/2025/story-{i:06}-read-all-about-it")
}

/// The URLs in each period's bucket (the first so many) with their counts: all time's spread
/// over 1 to 997 with many ties, each shorter period holding fewer URLs and about half the
/// hits of the one before.
fn many_buckets() -> Vec<(&'static str, Vec<(String, i64)>)> {
    let sizes = [MANY, 60_000, 25_000, 8_000, 1_500, 120];
    PERIODS
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(depth, ((period, _), size))| {
            let entries = (0..size)
                .map(|i| {
                    let mut count = 1 + (i as i64 * 7919) % 997;
                    for _ in 0..depth {
                        count = (count + 1) / 2;
                    }
                    (many_url(i), count)
                })
                .collect();
            (*period, entries)
        })
        .collect()
}

/// Writes `buckets` into Redis in the standalone layout, as the buckets holding `at`:
/// `hits:all` and `hits:<period>:<start>`, a thousand fields per HSET, pipelined.
fn seed_many(redis: &Redis, buckets: &[(&str, Vec<(String, i64)>)], at: i64) {
    let mut conn = redis.conn();
    for (period, entries) in buckets {
        let key = match unit_of_period(period) {
            None => "hits:all".to_string(),
            Some(unit) => format!("hits:{}:{}", unit.key_name(), unit.start(at)),
        };
        let mut pipe = redis::pipe();
        for chunk in entries.chunks(1000) {
            pipe.cmd("HSET").arg(&key);
            for (url, count) in chunk {
                pipe.arg(url).arg(count);
            }
            pipe.ignore();
        }
        let () = pipe.query(&mut conn).unwrap();
    }
}

/// The bound on what one refresh of the page may transfer, headers included.
const REFRESH_BUDGET: i64 = 100_000;

/// What the page's last refresh transferred, by its own count of requests and body bytes plus
/// each response's head as hitme writes it; asserted within `REFRESH_BUDGET`.
fn check_refresh_cost(dom: &Dom, hitme: &HitMe, at: i64) -> (i64, i64) {
    let dashboard = dom.id("dashboard");
    let requests = dashboard.int("data-refresh-requests");
    let bodies = dashboard.int("data-refresh-bytes");
    let resp = hitme.get(&format!("/top?period=all&limit=1&timestamp={at}"));
    let head = "HTTP/1.1 200 OK\r\n\r\n".len()
        + resp
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>();
    // A little more per response for what a keep-alive answer may add (Connection, Date).
    let transferred = bodies + requests * (head as i64 + 64);
    assert!(
        transferred <= REFRESH_BUDGET,
        "{}: one refresh transferred about {transferred} bytes in {requests} requests",
        dom.url
    );
    (requests, transferred)
}

#[test]
fn a_hundred_thousand_urls_are_ranked_paged_and_filtered_by_the_server() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let at = now_ms();
    let buckets = many_buckets();
    seed_many(&redis, &buckets, at);
    let bucket = |period: &str| {
        let (_, entries) = buckets.iter().find(|(p, _)| *p == period).unwrap();
        entries.clone()
    };
    let show = |view: &View, hash: &str| {
        let dom = load(&hitme, hash);
        let expect = Expect::new(bucket, view);
        let rows = check_view(&dom, &expect, view);
        assert_eq!(
            dom.id("go-live").attr("href"),
            Some(view.live_hash().as_str()),
            "{hash}"
        );
        (dom, expect, rows)
    };

    // The first view: the exact total of every tab (check_view), the top 50 of 100,000 URLs,
    // the top URL first, and "Show 50 more".
    let view = View::new("all_time", "hour", at);
    let (dom, expect, rows) = show(&view, &view.hash());
    assert_eq!(rows.len(), PAGE_ROWS);
    let (top_url, top_count) = &expect.ranking[0];
    assert_eq!(rows[0], *top_url);
    assert_eq!(*top_count, 997);
    assert_eq!(
        dom.text_of("summary"),
        format!("{} hits on 100,000 URLs", grouped(expect.tabs["all_time"]))
    );
    assert!(dom
        .text_of("more-text")
        .starts_with("and 99,950 more URLs with "));
    assert_eq!(dom.text_of("show-more"), "Show 50 more");
    let (requests, bytes) = check_refresh_cost(&dom, &hitme, at);
    // A /top per tab and a /series per line; on the page's first refresh also one /top per
    // previous bucket, whose totals later refreshes reuse, the site list, and the one ask of
    // /sources that a HitMe without --sources refuses.
    assert!(
        requests == 6 + 5 || requests == 6 + 5 + 5 + 1 + 1,
        "a refresh made {requests} requests"
    );
    eprintln!("50 rows of {MANY} URLs: a refresh is {requests} requests, ~{bytes} bytes");

    // Paging, as a linked "#rows=100" (what two "Show more"s leave in the hash): the top 100
    // of Last Week's 25,000 URLs, in order.
    let view = View {
        rows: 100,
        ..View::new("last_week", "day", at)
    };
    let (_, _, rows) = show(&view, &view.hash());
    assert_eq!(rows.len(), 100);

    // The table stops at 500 rows, whatever the hash asks; even then a refresh stays small.
    let view = View {
        rows: MAX_ROWS,
        ..View::new("last_month", "hour", at)
    };
    let hash = view.hash().replace("rows=500", "rows=5000");
    let (dom, _, rows) = show(&view, &hash);
    assert_eq!(rows.len(), MAX_ROWS);
    assert!(dom.id("show-more").hidden());
    let (requests, bytes) = check_refresh_cost(&dom, &hitme, at);
    let page = hitme.get(&format!("/top?period=month&limit=500&timestamp={at}"));
    assert!(
        bytes >= page.body.len() as i64,
        "the page counts what it reads"
    );
    eprintln!("500 rows of {MANY} URLs: a refresh is {requests} requests, ~{bytes} bytes");

    // A filter, ignoring case: a fifth of the URLs are under /tech/; every tab, the summary and
    // the shares count only them.
    let view = View {
        q: "/TECH/",
        ..View::new("last_day", "hour", at)
    };
    let (dom, expect, rows) = show(&view, &view.hash());
    assert_eq!(expect.ranking.len(), 8_000 / 5);
    assert!(rows.iter().all(|url| url.contains("/tech/")));
    assert_eq!(dom.text_of("total-label"), "Total matching");

    // A filter nothing in the period matches: ten stories of All Time and Last Month (and
    // Last Week), none of today's. The series chart falls back to All Time's top 5 of them.
    let view = View {
        q: "story-01234",
        ..View::new("last_day", "hour", at)
    };
    let (dom, expect, _) = show(&view, &view.hash());
    assert!(expect.ranking.is_empty() && expect.tabs["last_day"] == 0);
    assert!(expect.tabs["last_week"] > 0);
    assert_eq!(expect.series.len(), 5);
    assert!(expect.series.iter().all(|url| url.contains("story-01234")));
    assert_eq!(
        dom.text_of("period-empty"),
        "No URL containing “story-01234” has hits today."
    );

    assert_never_read_hits(&hitme);
}

/// With `--read-token`, the page asks for the token (a form, no data, no refresh); a wrong
/// one is said to be refused; the right one, given once in the link's `#token=`, shows the
/// dashboard and leaves the address without it.
#[test]
fn a_private_dashboard_asks_for_its_token_once() {
    const TOKEN: &str = "dash-8c1f77a0b3e9d2";
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--read-token", TOKEN]);
    hitme.hit(HOME, now_ms());

    let asking = load(&hitme, "");
    assert_eq!(asking.id("dashboard").attr("data-state"), Some("token"));
    assert!(!asking.id("token-form").hidden());
    assert!(asking.id("token-error").hidden());
    assert!(asking.id("content").hidden());
    assert_eq!(
        asking.text_of("token-title"),
        "This dashboard needs a read token"
    );

    let wrong = load(&hitme, "#token=nope");
    assert_eq!(wrong.id("dashboard").attr("data-state"), Some("token"));
    assert!(!wrong.id("token-error").hidden());
    assert_eq!(wrong.text_of("token-error"), "That token was refused.");

    let shown = load(&hitme, &format!("#token={TOKEN}&period=last_day"));
    assert_eq!(shown.id("dashboard").attr("data-state"), Some("ready"));
    assert!(shown.id("token-form").hidden());
    assert!(shown.row_cells(HOME).len() > 1, "the URL's row is shown");
    assert!(!hitme.log().contains(TOKEN));
}

/// With `--visits`, the page has a Hits | Visits switch, kept in the link (`#metric=`), and
/// the visits view counts visits; without it, no switch.
#[test]
fn the_visits_switch_shows_visits_when_the_server_counts_them() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--visits"]);
    for _ in 0..3 {
        hitme.hit(HOME, now_ms());
    }
    let hits = load(&hitme, "");
    assert!(!hits.id("metric-switch").hidden());
    assert_eq!(hits.id("metric-hits").attr("aria-pressed"), Some("true"));
    assert_eq!(hits.id("metric-visits").attr("aria-pressed"), Some("false"));
    assert_eq!(hits.id("dashboard").attr("data-metric"), Some("hits"));
    assert_eq!(hits.text_of("count-head"), "Hits");
    assert_eq!(
        hits.text_of("subtitle"),
        "Hits per URL, compared across intervals"
    );
    assert_eq!(hits.row_cells(HOME), [HOME, "3", "100.0%"]);

    let visits = load(&hitme, "#metric=visits");
    assert_eq!(visits.id("dashboard").attr("data-metric"), Some("visits"));
    assert_eq!(
        visits.id("metric-visits").attr("aria-pressed"),
        Some("true")
    );
    assert_eq!(visits.text_of("count-head"), "Visits");
    assert_eq!(
        visits.text_of("subtitle"),
        "Visits per URL, compared across intervals"
    );
    // One client, one browser: three hits, one visit.
    assert_eq!(visits.row_cells(HOME), [HOME, "1", "100.0%"]);

    let plain = HitMe::start(&redis.url());
    let without = load(&plain, "#metric=visits");
    assert!(without.id("metric-switch").hidden());
    assert_eq!(without.id("dashboard").attr("data-metric"), None);
    assert_eq!(without.text_of("count-head"), "Hits");
}

/// A HitMe counting two sites: the site picker lists them (most hits first); picking one
/// (`#site=`) counts only its URLs in every tab, the summary and the table; with `--visits`
/// the period's visitors of the site head the card, beside the period before.
#[test]
fn the_site_picker_shows_one_site_and_its_visitors() {
    const BLOG: &str = "https://blog.example/post";
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--visits"]);
    let now = now_ms();
    for url in [HOME, HOME, PRICING, BLOG] {
        hitme.hit(url, now);
    }

    let every = load(&hitme, "");
    assert!(!every.id("site-picker").hidden());
    let options: Vec<String> = every
        .elements
        .iter()
        .filter(|e| e.tag == "option" && e.start < every.id("source-url").start)
        .map(|e| every.text(e))
        .collect();
    assert_eq!(options, ["All sites", "shop.example", "blog.example"]);
    assert_eq!(every.text_of("summary"), "4 hits on 3 URLs");
    // One client: one visitor of each site.
    assert_eq!(every.id("visitors").int("data-visitors"), 2);
    assert_eq!(every.text_of("visitors"), "2 visitors");

    // Pinned to `now` (#at=) so that a minute rolling over while the browser runs cannot
    // empty the minute tab under the assertions.
    let blog = load(
        &hitme,
        &format!("#period=last_day&site=blog.example&at={now}"),
    );
    assert_eq!(blog.text_of("summary"), "1 hit on 1 URL of blog.example");
    assert_eq!(blog.row_cells(BLOG), [BLOG, "1", "100.0%"]);
    assert_eq!(blog.all("tr", "url-row").len(), 1);
    let totals: Vec<String> = blog
        .all("span", "tab-total")
        .iter()
        .map(|t| blog.text(t))
        .collect();
    assert_eq!(totals, ["1"; 6]);
    assert_eq!(
        blog.text_of("visitors"),
        "1 visitor today of blog.example (yesterday 0)"
    );
    assert_eq!(blog.id("visitors").attr("data-previous"), Some("0"));

    // Without --visits: the picker, no visitors; without --sources, no Sources card.
    let plain = HitMe::start(&redis.url());
    let shop = load(&plain, "#site=shop.example");
    assert!(shop.id("visitors").hidden());
    assert!(shop.id("sources").hidden());
    assert_eq!(shop.text_of("summary"), "3 hits on 2 URLs of shop.example");
}

#[test]
fn an_empty_redis_shows_how_to_record_the_first_hit() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let dom = load(&hitme, "");
    assert_eq!(dom.id("dashboard").attr("data-state"), Some("empty"));
    assert!(!dom.id("empty").hidden());
    assert!(dom.id("content").hidden());
    assert!(dom.id("error").hidden());
    assert!(dom.id("loading").hidden());
    assert_eq!(dom.text_of("empty-title"), "No hits yet");
    assert_eq!(
        dom.text_of("curl-example"),
        format!(
            "curl -d \"url=http%3A%2F%2Fwww.example.com%2F\" http://{}/hit",
            hitme.addr
        )
    );
}

#[test]
fn redis_down_shows_the_apis_error() {
    let mut redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    hitme.hit(HOME, now_ms());
    redis.kill();
    let api = hitme.get("/top?period=hour");
    assert_eq!(api.status, 503);

    let dom = load(&hitme, "#period=last_hour");
    assert_eq!(dom.id("dashboard").attr("data-state"), Some("error"));
    assert!(!dom.id("error").hidden());
    assert_eq!(dom.id("error").attr("role"), Some("alert"));
    assert!(dom.id("empty").hidden());
    assert!(
        dom.id("content").hidden(),
        "nothing loaded, so nothing to show"
    );
    // The API's own message (the page's words are "Could not load hits."): it names Redis
    // and says what to do. Which of the two Redis failures it reports depends on timing.
    let message = dom.text_of("error-message");
    assert!(
        (message.starts_with("Redis is unavailable (")
            || message.starts_with("no Redis connection could be had in time ("))
            && message.contains("retry later"),
        "{message}"
    );
    assert!(
        api.error().contains("retry later"),
        "the API says the same: {}",
        api.error()
    );
}

/// 2026-03-18T14:42:30Z, a Wednesday: the screenshot is pinned to it, so the same picture
/// comes out on every run and docs/dashboard.png only changes when the page does.
const SHOT_AT: i64 = 1_773_844_950_000;

#[test]
fn screenshot_of_a_busy_dashboard() {
    let redis = Redis::start();
    let hitme = HitMe::start(&redis.url());
    let seeded = Seeded::record(&hitme, busy_traffic(SHOT_AT));
    let view = View::new("last_day", "hour", SHOT_AT);
    let hash = view.hash();
    let dom = load(&hitme, &hash);
    check_view(
        &dom,
        &Expect::new(|p| seeded.bucket(p, SHOT_AT), &view),
        &view,
    );
    check_series(&dom, &seeded, view.period, view.range, SHOT_AT);

    let shots = TempDir::new("screenshot");
    let png = shots.0.join("dashboard.png");
    let url = format!("http://{}/{hash}", hitme.addr);
    let args = [
        format!("--screenshot={}", png.display()),
        "--window-size=1280,1600".to_string(),
    ];
    chromium(&args, &url);
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 1600));

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The target directory holds the hitme binary the harness runs: target/<profile>/hitme.
    let target = Path::new(env!("CARGO_BIN_EXE_hitme"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf();
    for dest in [
        target.join("dashboard.png"),
        root.join("docs/dashboard.png"),
    ] {
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        // Unchanged pictures are left alone, so the file's date says when the page changed.
        if std::fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&dest, &bytes).unwrap();
        }
    }
}

/// Six weeks of plausible traffic up to `at`: by the hour for the last two days (with a daily
/// rhythm), a day's worth at a time before that, pages of different popularity, and noise,
/// all from a fixed seed so that the picture is the same every time.
fn busy_traffic(at: i64) -> Vec<(&'static str, i64)> {
    let pages: [(&str, f64); 12] = [
        (HOME, 1.0),
        (PRICING, 0.55),
        (LAUNCH, 0.45),
        ("https://shop.example/docs/getting-started", 0.3),
        (SIGNUP, 0.22),
        (SEARCH, 0.12),
        (ARCHIVE[0], 0.05),
        (ARCHIVE[1], 0.04),
        (ARCHIVE[2], 0.03),
        (ARCHIVE[3], 0.03),
        (ARCHIVE[4], 0.02),
        (ARCHIVE[5], 0.02),
    ];
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        // xorshift64: deterministic and good enough for noise.
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        (random >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut hits = Vec::new();
    let mut spread = |hits: &mut Vec<_>, start: i64, len: i64, mean: f64| {
        for (page, weight) in pages {
            let n = (mean * weight * (0.6 + 0.8 * next())).round() as i64;
            for _ in 0..n {
                let ts = start + (next() * len as f64) as i64;
                if ts <= at {
                    hits.push((page, ts));
                }
            }
        }
    };
    let today = Unit::Day.start(at);
    let first_hour = Unit::Hour.start(at) - 47 * HOUR;
    for days_ago in (2..=42).rev() {
        let start = today - days_ago * DAY;
        let len = DAY.min(first_hour - start);
        spread(&mut hits, start, len, 12.0 * len as f64 / DAY as f64);
    }
    for h in 0..48 {
        let hour = first_hour + h * HOUR;
        let hour_of_day = (hour.rem_euclid(DAY) / HOUR) as f64;
        // Busiest mid-afternoon UTC, quietest before dawn.
        let rhythm = 0.55 + 0.45 * ((hour_of_day - 9.0) / 24.0 * std::f64::consts::TAU).sin();
        spread(&mut hits, hour, HOUR, 14.0 * rhythm);
    }
    let minute = Unit::Minute.start(at);
    spread(&mut hits, minute, at - minute, 4.0);
    hits
}

/// 2024-01-15 00:00 in Kolkata (+05:30): 2024-01-14T18:30Z.
const KOLKATA_JAN15: i64 = 1_705_257_000_000;

#[test]
fn a_site_in_another_time_zone_sees_its_own_calendar() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--time-zone", "Asia/Kolkata"]);
    // A second before local midnight, and midnight: one UTC day, two local ones.
    hitme.hit(HOME, KOLKATA_JAN15 - 1_000);
    hitme.hit(HOME, KOLKATA_JAN15);
    hitme.hit(HOME, KOLKATA_JAN15 + 60_000);

    let at = KOLKATA_JAN15 + 120_000;
    let dom = load(&hitme, &format!("#period=last_day&range=hour&at={at}"));
    assert_eq!(dom.id("dashboard").attr("data-state"), Some("ready"));
    assert_eq!(
        dom.id("dashboard").attr("data-time-zone"),
        Some("Asia/Kolkata")
    );
    assert_eq!(
        dom.text_of("zone-note"),
        "Buckets are calendar periods in Asia/Kolkata: This hour is the current hour so far."
    );
    assert_eq!(dom.text_of("summary"), "2 hits on 1 URL");
    assert_eq!(
        dom.text_of("period-hint"),
        "The day holding 2024-01-15 00:02 Asia/Kolkata"
    );
    assert!(dom
        .text_of("series-hint")
        .starts_with("Hits per hour over the last 24 hours (Asia/Kolkata)"));
    // The hour buckets start on the half hour UTC, at the local hour, and say so.
    assert_eq!(point(&dom, HOME, KOLKATA_JAN15), 2);
    assert_eq!(point(&dom, HOME, KOLKATA_JAN15 - 3_600_000), 1);
    assert!(
        dom.html.contains("2024-01-15 00:00 Asia/Kolkata: 2 hits"),
        "the point's tooltip is in local time"
    );
}

#[test]
fn the_sources_card_shows_where_the_hits_came_from() {
    let redis = Redis::start();
    let hitme = HitMe::start_with(&redis.url(), &["--sources"]);
    let now = now_ms();
    let post = |url: &str, referrer: Option<&str>| {
        let mut body = format!("url={}&timestamp={now}", encode(url));
        if let Some(referrer) = referrer {
            body.push_str(&format!("&referrer={}", encode(referrer)));
        }
        assert_eq!(hitme.post_form("/hit", &body).status, 200);
    };
    for _ in 0..3 {
        post(HOME, Some("https://news.ycombinator.com/item?id=1"));
    }
    post(HOME, Some("https://shop.example/pricing"));
    for _ in 0..2 {
        post(&format!("{PRICING}?utm_source=newsletter"), None);
    }

    let every = load(&hitme, "");
    assert!(!every.id("sources").hidden());
    assert_eq!(every.text_of("sources-hint"), "Where the 6 hits came from.");
    let direct = "Direct (no referrer, or the site itself)";
    assert_eq!(
        every.source_rows(),
        [
            ["Hacker News", "3", "50.0%"],
            ["newsletter", "2", "33.3%"],
            [direct, "1", "16.7%"],
        ]
    );
    let options: Vec<String> = every
        .elements
        .iter()
        .filter(|e| e.tag == "option" && e.start > every.id("source-url").start)
        .map(|e| every.text(e))
        .collect();
    assert_eq!(options, ["Every URL", HOME, PRICING]);

    // One URL, in a tab finer than a day: the day's sources.
    let pricing = load(
        &hitme,
        &format!("#period=last_hour&from={}&at={now}", encode(PRICING)),
    );
    assert_eq!(
        pricing.text_of("sources-hint"),
        format!("Where the 2 hits on {PRICING} today (sources are kept per day) came from.")
    );
    assert_eq!(pricing.source_rows(), [["newsletter", "2", "100.0%"]]);
}

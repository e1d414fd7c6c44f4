// HitMe dashboard: the view state (kept in the URL hash so a view can be linked), the API
// calls behind the auto-refresh, and rendering the page from them: period tabs, the URL bar
// chart and sortable table, the series chart of the top URLs, and the empty and error states.

import { drawBars, drawSeries } from "./charts.js";
import { $, make, reconcile, setAttrs, setText } from "./dom.js";

const REFRESH_MS = 5000;
/** Bars in the URL chart; with more URLs the last bar groups the rest. */
const BARS = 8;
/** Lines in the series chart. */
const SERIES_URLS = 5;
/** Table rows; a site can have many thousands of URLs, and a page that long helps nobody. */
const TABLE_ROWS = 200;

const PERIODS = {
  all_time: { label: "All Time", live: "Every hit ever counted", pinned: "Every hit ever counted" },
  last_month: { label: "Last Month", live: "This calendar month so far (UTC)", pinned: "The calendar month (UTC) holding" },
  last_week: { label: "Last Week", live: "This week so far (UTC)", pinned: "The week (UTC) holding" },
  last_day: { label: "Last Day", live: "Today so far (UTC)", pinned: "The day (UTC) holding" },
  last_hour: { label: "Last Hour", live: "This hour so far (UTC)", pinned: "The hour (UTC) holding" },
  last_minute: { label: "Last Minute", live: "This minute so far", pinned: "The minute (UTC) holding" },
};

const utc = (options) => new Intl.DateTimeFormat("en-US", { timeZone: "UTC", ...options });
const hhmm = utc({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const monthDay = utc({ month: "short", day: "numeric" });
const monthYear = utc({ month: "short", year: "numeric" });
const stamp = (ms) => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`;

/** The series ranges: the /series period, how many buckets, and how to label them. */
const RANGES = {
  minute: { count: 60, unit: "minute", span: "60 minutes", tick: (ms) => hhmm.format(ms), tip: stamp },
  hour: { count: 24, unit: "hour", span: "24 hours", tick: (ms) => hhmm.format(ms), tip: stamp },
  day: { count: 30, unit: "day", span: "30 days", tick: (ms) => monthDay.format(ms), tip: (ms) => stamp(ms).slice(0, 10) },
  month: { count: 12, unit: "month", span: "12 months", tick: (ms) => monthYear.format(ms), tip: (ms) => monthYear.format(ms) },
};

/** Sort keys, each with the direction a first click on its header picks. */
const SORTS = { url: "asc", count: "desc", share: "desc" };

/** Line colours, told apart by people with the common colour-vision deficiencies. */
const PALETTE = ["#2563eb", "#ea580c", "#059669", "#db2777", "#7c3aed"];

const DEFAULTS = { period: "all_time", range: "hour", sort: "count", dir: "desc", at: null };

const state = {
  ...DEFAULTS,
  hits: null, // the last good /hits answer
  series: null, // the last good /series answers: {period, range, lines: [{url, buckets}]}
  error: null, // the message of the last refresh, when it failed
  updated: null, // when the last good refresh finished (ms)
};

// ---- The URL hash: #period=last_hour&range=day&sort=url&dir=asc&at=1700000000000 ----------

/** The view the hash asks for; anything unknown falls back to the default. */
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const pick = (name, allowed) => (allowed.includes(params.get(name)) ? params.get(name) : DEFAULTS[name]);
  const at = params.get("at");
  return {
    period: pick("period", Object.keys(PERIODS)),
    range: pick("range", Object.keys(RANGES)),
    sort: pick("sort", Object.keys(SORTS)),
    dir: pick("dir", ["asc", "desc"]),
    at: /^[1-9][0-9]{0,14}$/.test(at ?? "") ? Number(at) : null,
  };
}

function hashOf(view) {
  const params = new URLSearchParams({ period: view.period, range: view.range, sort: view.sort, dir: view.dir });
  if (view.at !== null) params.set("at", view.at);
  return `#${params}`;
}

// replaceState, not location.hash: a tab click should not add a Back-button step, and it
// does not fire hashchange, which is kept for links and hand edits.
function writeHash() {
  const hash = hashOf(state);
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

// ---- The API --------------------------------------------------------------------------------

/** `?name=value&...` for the params that are set. */
function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== null) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** The JSON a `fetch` answers; throws the API's own error message when there is one. */
async function json(request) {
  let res;
  try {
    res = await request;
  } catch (err) {
    throw new Error(`HitMe did not answer (${err.message}).`);
  }
  const body = await res.json().catch(() => null); // a proxy's HTML error page, say
  if (!res.ok || body?.status !== "OK") {
    throw new Error(body?.error ?? `HTTP ${res.status} ${res.statusText}`.trim());
  }
  return body;
}

const NO_STORE = { cache: "no-store" };

/** `[url, count]` pairs, most hits first; ties in URL order so the order never flickers. */
function ranked(counts) {
  return Object.entries(counts ?? {}).sort((a, b) => b[1] - a[1] || compare(a[0], b[0]));
}

const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** The URLs the series chart follows: the selected period's top, or all time's when it has none. */
function seriesUrls(hits, period) {
  const top = ranked(hits[period]);
  return (top.length ? top : ranked(hits.all_time)).slice(0, SERIES_URLS).map(([url]) => url);
}

let timer = 0;
let generation = 0;

/** Fetches everything the view shows, then renders once, so the page never shows half a refresh. */
async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const { period, range, at } = state;
  try {
    const hits = await json(fetch("/hits" + query({ timestamp: at }), NO_STORE));
    const urls = seriesUrls(hits, period);
    const count = RANGES[range].count;
    // One request at a time, on purpose: HitMe gives each keep-alive connection a thread of
    // its own for as long as the browser keeps it open, so parallel requests would make every
    // open dashboard hold up to six of them.
    const lines = [];
    for (const url of urls) {
      lines.push(await json(fetch("/series" + query({ url, period: range, count, timestamp: at }), NO_STORE)));
    }
    if (mine !== generation) return; // the view changed meanwhile; a newer refresh is on its way
    Object.assign(state, { hits, series: { period, range, lines }, error: null, updated: Date.now() });
  } catch (err) {
    if (mine !== generation) return;
    state.error = err.message;
  }
  render();
  timer = setTimeout(tick, REFRESH_MS);
}

// A hidden tab keeps its timer but skips the requests; it catches up when shown again.
function tick() {
  if (document.visibilityState === "hidden") timer = setTimeout(tick, REFRESH_MS);
  else refresh();
}

// ---- Rendering ------------------------------------------------------------------------------

function render() {
  writeHash();
  const { hits, error } = state;
  const empty = hits !== null && Object.keys(hits.all_time).length === 0;
  const name = error ? "error" : hits === null ? "loading" : empty ? "empty" : "ready";
  $("dashboard").dataset.state = name;
  $("loading").hidden = name !== "loading";
  $("error").hidden = !error;
  setText($("error-message"), error ?? "");
  const retry = `Retrying every ${REFRESH_MS / 1000} seconds.`;
  setText($("error-retry"), state.updated ? `${retry} Showing data from ${stamp(state.updated)}.` : retry);
  $("empty").hidden = name !== "empty";
  // Stale data stays on screen under the error banner: better than a blank page mid-outage.
  $("content").hidden = hits === null || empty;
  $("content").classList.toggle("stale", Boolean(error));
  renderMode();
  if (hits && !empty) {
    renderTabs();
    renderPeriod();
    renderSeries();
  }
}

function renderMode() {
  $("pinned").hidden = state.at === null;
  if (state.at !== null) {
    setText($("pinned-time"), stamp(state.at));
    setAttrs($("pinned-time"), { datetime: new Date(state.at).toISOString() });
    setAttrs($("go-live"), { href: hashOf({ ...state, at: null }) });
  }
  const live = state.at === null && !state.error;
  setText($("mode"), state.at !== null ? "Pinned" : live ? `Live · every ${REFRESH_MS / 1000} s` : "Reconnecting…");
  $("mode").classList.toggle("live", live);
}

function renderTabs() {
  for (const tab of $("tabs").querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.period === state.period;
    setAttrs(tab, { "aria-selected": String(selected), tabindex: selected ? null : "-1" });
    const total = Object.values(state.hits[tab.dataset.period]).reduce((a, b) => a + b, 0);
    setText(tab.querySelector(".tab-total"), total.toLocaleString("en-US"));
  }
  setAttrs($("period-panel"), { "aria-labelledby": `tab-${state.period}` });
}

function renderPeriod() {
  const period = PERIODS[state.period];
  const entries = ranked(state.hits[state.period]);
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  setText($("summary"), `${total.toLocaleString("en-US")} ${total === 1 ? "hit" : "hits"} on ${entries.length} ${entries.length === 1 ? "URL" : "URLs"}`);
  setText($("period-hint"), state.at === null || state.period === "all_time" ? period.live : `${period.pinned} ${stamp(state.at)}`);
  $("period-empty").hidden = entries.length > 0;
  setText($("period-empty"), `No hits in ${period.label} yet.`);
  $("compare").hidden = entries.length === 0;
  if (entries.length === 0) return;
  renderBars(entries);
  renderTable(entries, total);
}

/** The pixel width `chart` is shown at, for drawing it at that size. */
function widthOf(chart) {
  return Math.max(240, Math.round(chart.parentElement.clientWidth || 600));
}

function renderBars(entries) {
  const shown = entries.length > BARS ? entries.slice(0, BARS - 1) : entries;
  const rows = shown.map(([url, count]) => ({ key: url, url, label: withoutScheme(url), title: `${url}: ${count}`, count }));
  if (shown.length < entries.length) {
    const rest = entries.slice(shown.length);
    const count = rest.reduce((sum, [, n]) => sum + n, 0);
    const label = `${rest.length} other URLs`;
    rows.push({ key: "\u0000others", label, title: `${label}: ${count}`, count, others: rest.length });
  }
  drawBars($("bar-chart"), rows, widthOf($("bar-chart")));
  setAttrs($("bar-chart"), { "aria-label": `Hits per URL in ${PERIODS[state.period].label}; the table has the numbers` });
}

const withoutScheme = (url) => url.replace(/^https?:\/\//, "");

function shareOf(count, total) {
  const share = (100 * count) / total;
  return share > 0 && share < 0.1 ? "<0.1%" : `${share.toFixed(1)}%`;
}

function renderTable(entries, total) {
  const { sort, dir } = state;
  const sign = dir === "asc" ? 1 : -1;
  // Equal counts stay in URL order whichever way the counts go, as in the bar chart.
  const rows = [...entries].sort((a, b) => sign * (sort === "url" ? compare(a[0], b[0]) : a[1] - b[1]) || compare(a[0], b[0]));
  const shown = rows.slice(0, TABLE_ROWS);
  reconcile(
    $("url-rows"),
    shown,
    ([url]) => url,
    ([url]) => {
      const tr = make("tr", { class: "url-row" });
      const link = make("a", { href: url, target: "_blank", rel: "noopener noreferrer" });
      const cell = make("td", { class: "url" });
      cell.append(link);
      tr.append(cell, make("td", { class: "num count" }), make("td", { class: "num share" }));
      return tr;
    },
    (tr, [url, count]) => {
      setAttrs(tr, { "data-url": url, "data-count": count });
      setText(tr.cells[0].firstChild, url);
      setText(tr.cells[1], count.toLocaleString("en-US"));
      setText(tr.cells[2], shareOf(count, total));
    },
  );
  const hidden = rows.slice(shown.length);
  $("more-row").hidden = hidden.length === 0;
  const hiddenHits = hidden.reduce((sum, [, n]) => sum + n, 0);
  setText($("more-text"), `and ${hidden.length} more URLs with ${hiddenHits.toLocaleString("en-US")} hits`);
  setText($("total-count"), total.toLocaleString("en-US"));
  for (const th of $("url-table").tHead.rows[0].cells) {
    const active = th.dataset.sort === sort;
    setAttrs(th, { "aria-sort": active ? (dir === "asc" ? "ascending" : "descending") : "none" });
  }
}

/** A colour per URL that stays with it while it is on the chart, even as the ranking shifts. */
const colours = new Map();
function colourOf(url, urls) {
  for (const known of colours.keys()) if (!urls.includes(known)) colours.delete(known);
  if (!colours.has(url)) {
    const used = new Set(colours.values());
    colours.set(url, PALETTE.find((c) => !used.has(c)) ?? PALETTE[0]);
  }
  return colours.get(url);
}

function renderSeries() {
  for (const button of $("ranges").querySelectorAll("button")) {
    setAttrs(button, { "aria-pressed": String(button.dataset.range === state.range) });
  }
  const data = state.series;
  if (!data) return;
  // Drawn from the series' own range and period: after a click they lag the buttons by one
  // request, and mixing the two would label 24 hourly buckets as minutes.
  const range = RANGES[data.range];
  const urls = data.lines.map((line) => line.url);
  const lines = data.lines.map(({ url, buckets }) => ({
    key: url,
    color: colourOf(url, urls),
    counts: buckets.map((b) => b.count),
    total: buckets.reduce((sum, b) => sum + b.count, 0),
  }));
  const starts = data.lines[0]?.buckets.map((b) => b.start) ?? [];
  const chart = $("series-chart");
  drawSeries(chart, { starts, lines, tick: range.tick, tip: range.tip }, widthOf(chart));
  setAttrs(chart, {
    "data-range": data.range,
    "aria-label": `Hits per ${range.unit} over the last ${range.span} for the top ${urls.length} URLs`,
  });
  const ofPeriod = ranked(state.hits[data.period]).length ? PERIODS[data.period].label : PERIODS.all_time.label;
  setText($("series-title"), `Top ${urls.length} ${urls.length === 1 ? "URL" : "URLs"} over time`);
  setText($("series-hint"), `Hits per ${range.unit} over the last ${range.span} (UTC) for the top URLs of ${ofPeriod}`);
  reconcile(
    $("series-legend"),
    lines,
    (l) => l.key,
    () => {
      const li = make("li", { class: "legend-item" });
      li.append(make("span", { class: "swatch", "aria-hidden": "true" }), make("span", { class: "legend-url" }), make("span", { class: "legend-total" }));
      return li;
    },
    (li, l) => {
      setAttrs(li, { "data-url": l.key, "data-total": l.total, title: l.key, style: `--color: ${l.color}` });
      setText(li.children[1], l.key);
      setText(li.children[2], `${l.total.toLocaleString("en-US")} in ${range.span}`);
    },
  );
}

// ---- Events ---------------------------------------------------------------------------------

/** Applies a view change: re-renders at once from what is loaded, then fetches what it needs. */
function change(view) {
  Object.assign(state, view);
  render();
  refresh();
}

$("tabs").addEventListener("click", (e) => {
  const tab = e.target.closest("[role=tab]");
  if (tab) change({ period: tab.dataset.period });
});

// Arrow keys move between tabs, as the ARIA tabs pattern expects.
$("tabs").addEventListener("keydown", (e) => {
  const tabs = [...$("tabs").querySelectorAll("[role=tab]")];
  const i = tabs.indexOf(document.activeElement);
  const to = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (i < 0 || to === undefined) return;
  e.preventDefault();
  const tab = tabs[(to + tabs.length) % tabs.length];
  tab.focus();
  change({ period: tab.dataset.period });
});

$("ranges").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-range]");
  if (button) change({ range: button.dataset.range });
});

// Sorting needs no request: the table is re-sorted from the counts already loaded.
$("url-table").tHead.addEventListener("click", (e) => {
  const th = e.target.closest("th[data-sort]");
  if (!th) return;
  const sort = th.dataset.sort;
  const dir = sort === state.sort ? (state.dir === "asc" ? "desc" : "asc") : SORTS[sort];
  Object.assign(state, { sort, dir });
  render();
});

$("go-live").addEventListener("click", (e) => {
  e.preventDefault();
  change({ at: null });
});

window.addEventListener("hashchange", () => change(readHash()));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") refresh();
});

// Charts are drawn at their pixel width, so a width change (rotating a phone) redraws them.
let drawnWidth = 0;
new ResizeObserver(() => {
  const width = $("content").clientWidth;
  if (width !== drawnWidth && state.hits) render();
  drawnWidth = width;
}).observe($("content"));

setText($("curl-example"), `curl -d "url=http%3A%2F%2Fwww.example.com%2F" ${location.origin}/hit`);
Object.assign(state, readHash());
render();
refresh();

// HitMe dashboard: the view state (kept in the URL hash so a view can be linked), the API
// calls behind the auto-refresh, and rendering the page from them: period tabs, the URL bar
// chart and ranked table, the series chart of the top URLs, and the empty and error states;
// the read token the API asks for when HitMe runs with `--read-token`; and the Hits | Visits
// switch when it runs with `--visits`, with each site's visitors; the site picker; and with
// `--sources` the Sources card, of the site or of one URL.
//
// Everything comes from `GET /top`, which ranks, filters and pages a bucket on the server: a
// refresh reads one page of the selected period and the total of each other period, never
// every URL (a site with 100,000 URLs would make `/hits` tens of megabytes every 5 seconds).
// The site picker's list comes from `/sites` once a minute, the visitors from `/visitors`,
// the sources from `/sources` (kept per day at the finest: an hour's tab shows today's).

import { drawBars, drawSeries } from "./charts.js";
import { $, make, reconcile, setAttrs, setText } from "./dom.js";

const REFRESH_MS = 5000;
/** Bars in the URL chart; with more URLs the last bar groups the rest. */
const BARS = 8;
/** Lines in the series chart. */
const SERIES_URLS = 5;
/** Table rows shown at first, and added by each "Show more". */
const PAGE_ROWS = 50;
/** The most rows the table holds: past a few hundred a table helps nobody; the filter does. */
const MAX_ROWS = 500;
/** The filter asks the server once typing pauses for this long. */
const FILTER_DELAY_MS = 300;
/** `/top` refuses a longer `q`. */
const MAX_FILTER_BYTES = 200;
/** The sites the picker lists at most, and how long their list is reused. */
const MAX_SITES = 100;
const SITES_MS = 60 * 1000;
/** Sources listed in the Sources card. */
const SOURCE_ROWS = 10;
/** What `/top` takes as a site: a host name, as canonical URLs write it. */
const SITE = /^[a-z0-9._:-]{1,253}$/;
/** The periods `/sources` keeps. */
const SOURCE_PERIODS = ["all", "month", "week", "day"];

/** The tabs, each with its `/top` period, its words in a sentence (`during`), and the name of
 * the bucket before it (`before`). */
const PERIODS = {
  // Its hint names the metric: see renderPeriod.
  all_time: { during: "", api: "all", label: "All time", zoned: false },
  last_month: { during: " this month", api: "month", label: "This month", before: "last month", live: "This calendar month so far", pinned: "The calendar month holding", zoned: true },
  last_week: { during: " this week", api: "week", label: "This week", before: "last week", live: "This week so far", pinned: "The week holding", zoned: true },
  last_day: { during: " today", api: "day", label: "Today", before: "yesterday", live: "Today so far", pinned: "The day holding", zoned: true },
  last_hour: { during: " this hour", api: "hour", label: "This hour", before: "last hour", live: "This hour so far", pinned: "The hour holding", zoned: true },
  last_minute: { during: " this minute", api: "minute", label: "This minute", before: "last minute", live: "This minute so far", pinned: "The minute holding", zoned: true },
};

/** The time zone whose calendar HitMe cuts buckets on (`--time-zone`), as `/series` names it. */
let zone = "UTC";
const formats = new Map();
/** An `Intl.DateTimeFormat` of `options` in `zone`, made once. */
function inZone(options) {
  const key = `${zone} ${JSON.stringify(options)}`;
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat("en-US", { timeZone: zone, ...options }));
  return formats.get(key);
}
const hhmm = { format: (ms) => inZone({ hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(ms) };
const monthDay = { format: (ms) => inZone({ month: "short", day: "numeric" }).format(ms) };
const monthYear = { format: (ms) => inZone({ month: "short", year: "numeric" }).format(ms) };
/** `2026-03-18 14:42 Europe/Berlin`: a moment as the zone's local time. */
function stamp(ms) {
  const parts = inZone({ year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(ms);
  const part = (type) => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")} ${zone}`;
}
const number = (n) => n.toLocaleString("en-US");
const plural = (n, one, many) => `${number(n)} ${n === 1 ? one : many}`;

/** The series ranges: the /series period, how many buckets, and how to label them. */
const RANGES = {
  minute: { count: 60, unit: "minute", span: "60 minutes", tick: (ms) => hhmm.format(ms), tip: stamp },
  hour: { count: 24, unit: "hour", span: "24 hours", tick: (ms) => hhmm.format(ms), tip: stamp },
  day: { count: 30, unit: "day", span: "30 days", tick: (ms) => monthDay.format(ms), tip: (ms) => stamp(ms).slice(0, 10) },
  month: { count: 12, unit: "month", span: "12 months", tick: (ms) => monthYear.format(ms), tip: (ms) => monthYear.format(ms) },
};

/** Line colours, told apart by people with the common colour-vision deficiencies. */
const PALETTE = ["#2563eb", "#ea580c", "#059669", "#db2777", "#7c3aed"];

/** The words for what a metric counts, for every text on the page that names it. */
const NOUNS = {
  hits: { one: "hit", many: "hits", title: "Hits" },
  visits: { one: "visit", many: "visits", title: "Visits" },
};

const DEFAULTS = { period: "all_time", range: "hour", rows: PAGE_ROWS, q: "", site: "", at: null, metric: "hits", from: "" };

const state = {
  ...DEFAULTS,
  // The last good refresh, and the view it was made for: {period, q, site, at, metric, tabs:
  // {period: {total, urls, before}}, total, urls, rows: [{url, count}], visitors: {count,
  // before} or null} (total and urls count every URL of the period matching q on the site,
  // rows only the top ones).
  data: null,
  series: null, // the last good /series answers: {period, q, range, metric, lines: [{url, buckets}]}
  // Whether HitMe counts visits (`--visits`): null until a /top answer tells (its "metric"
  // field is there exactly when it does). state.metric is only the view's wish.
  visits: null,
  // Whether HitMe counts sources (`--sources`): null until the first refresh asks /sources.
  sources: null,
  error: null, // the message of the last refresh, when it failed
  auth: null, // "needed" or "refused" when the API asked for a read token (401), else null
  updated: null, // when the last good refresh finished (ms)
  sites: { at: 0, list: [] }, // the hosts /sites counted all time, most hits first, and when
};

// ---- The URL hash: #period=last_hour&range=day&metric=visits&rows=100&q=blog&site=a.example&from=URL&at=1700000000000

/**
 * The metric `view` shows: visits only once HitMe has said it counts them, so that a linked
 * `metric=visits` never sends a HitMe without `--visits` a request it refuses.
 */
function metricOf(view) {
  return view.visits === true && view.metric === "visits" ? "visits" : "hits";
}

/** `text` trimmed and cut to what `/top` takes as a filter. */
function filterOf(text) {
  let out = "";
  let bytes = 0;
  for (const char of text.trim()) {
    bytes += new TextEncoder().encode(char).length;
    if (bytes > MAX_FILTER_BYTES) break;
    out += char;
  }
  return out;
}

/** The view the hash asks for; anything unknown falls back to the default. */
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const pick = (name, allowed) => (allowed.includes(params.get(name)) ? params.get(name) : DEFAULTS[name]);
  const at = params.get("at");
  const rows = /^[0-9]{1,9}$/.test(params.get("rows") ?? "") ? Number(params.get("rows")) : PAGE_ROWS;
  return {
    period: pick("period", Object.keys(PERIODS)),
    range: pick("range", Object.keys(RANGES)),
    rows: Math.min(MAX_ROWS, Math.max(PAGE_ROWS, rows)),
    q: filterOf(params.get("q") ?? ""),
    site: SITE.test(params.get("site") ?? "") ? params.get("site") : "",
    at: /^[1-9][0-9]{0,14}$/.test(at ?? "") ? Number(at) : null,
    metric: pick("metric", Object.keys(NOUNS)),
    // The URL whose sources the Sources card shows; every URL's when empty.
    from: /^https?:\/\//.test(params.get("from") ?? "") ? params.get("from") : "",
  };
}

function hashOf(view) {
  const params = new URLSearchParams({ period: view.period, range: view.range });
  // Hits are the default, never written. A wish for visits stays until HitMe is known not to
  // count them, so a link survives the first render, made before any answer.
  if (view.metric === "visits" && view.visits !== false) params.set("metric", "visits");
  if (view.rows !== PAGE_ROWS) params.set("rows", view.rows);
  if (view.q) params.set("q", view.q);
  if (view.site) params.set("site", view.site);
  if (view.from) params.set("from", view.from);
  if (view.at !== null) params.set("at", view.at);
  return `#${params}`;
}

// replaceState, not location.hash: a tab click should not add a Back-button step, and it
// does not fire hashchange, which is kept for links and hand edits.
function writeHash() {
  const hash = hashOf(state);
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

// ---- The read token (--read-token) ---------------------------------------------------------

const TOKEN_KEY = "hitme_token";
/** The token when sessionStorage is off limits (storage blocked, a sandboxed frame). */
let tokenInMemory = null;

/** The token of this tab, or null. */
function readToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? tokenInMemory;
  } catch {
    return tokenInMemory;
  }
}

/**
 * Keeps `token` for this tab: sessionStorage, so it is gone when the tab closes. False for a
 * token no header can carry (a line break, past Latin-1), which fetch would throw on.
 */
function saveToken(token) {
  try {
    new Headers({ Authorization: `Bearer ${token}` });
  } catch {
    return false;
  }
  tokenInMemory = token;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // kept in memory for this page
  }
  return true;
}

/**
 * Takes a `token=` from the hash (a link an operator hands out) and removes it from the
 * address bar and this history entry at once; hashOf never writes it back.
 */
function takeHashToken() {
  const raw = location.hash.slice(1);
  // A "+" stays a "+": tokens are often base64, where it is common and a space is not.
  const token = new URLSearchParams(raw.replace(/\+/g, "%2B")).get("token");
  if (token === null) return;
  if (token.trim()) saveToken(token.trim());
  const params = new URLSearchParams(raw);
  params.delete("token");
  const rest = params.toString();
  history.replaceState(null, "", rest ? `#${rest}` : location.pathname + location.search);
}

// ---- The API --------------------------------------------------------------------------------

/** `?name=value&...` for the params that are set. */
function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value !== null && value !== "") search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

const NO_STORE = { cache: "no-store" };

/** The fetch options: without a token, exactly the requests of a HitMe without --read-token. */
function fetchOptions() {
  const token = readToken();
  return token ? { ...NO_STORE, headers: { Authorization: `Bearer ${token}` } } : NO_STORE;
}

/** HitMe wants a (right) read token: `401` with `"reason":"token"`. */
class TokenError extends Error {}

/**
 * The JSON answer of `GET path?params`; throws the API's own error message when there is one.
 * `meter` adds up the requests and the bytes of their bodies.
 */
async function get(path, params, meter) {
  let res;
  try {
    res = await fetch(path + query(params), fetchOptions());
  } catch (err) {
    throw new Error(`HitMe did not answer (${err.message}).`);
  }
  const bytes = await res.arrayBuffer().catch(() => new ArrayBuffer(0));
  meter.requests += 1;
  meter.bytes += bytes.byteLength;
  let body = null;
  try {
    body = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    // a proxy's HTML error page, say
  }
  // Only HitMe's own 401: a proxy's login is an ordinary error.
  if (res.status === 401 && body?.reason === "token") throw new TokenError(body.error);
  if (!res.ok || body?.status !== "OK") {
    const err = new Error(body?.error ?? `HTTP ${res.status} ${res.statusText}`.trim());
    err.status = res.status; // a 400 to a visits request: see fail()
    throw err;
  }
  return body;
}

/** `metric=visits`, or no param at all for hits: the requests of a HitMe without `--visits`. */
const metricParam = (metric) => (metric === "visits" ? metric : null);

/**
 * A page of `period`'s ranking by `metric`: `{total, urls, top: [{url, count}]}`, of the URLs
 * matching `q`. Tells state.visits what the answer says of HitMe.
 */
async function top(period, { limit, offset = 0, q, site, at, metric }, meter) {
  const params = { period: PERIODS[period].api, limit, offset: offset || null, q, site, timestamp: at, metric: metricParam(metric) };
  const answer = await get("/top", params, meter);
  state.visits = "metric" in answer;
  return answer;
}

let timer = 0;
let generation = 0;

/** The totals of the buckets before the current ones, by period, bucket, metric and filter. */
const pastTotals = new Map();
/** How long a past bucket's total is shown before it is asked for again. */
const PAST_TOTAL_MS = 5 * 60 * 1000;

/**
 * A past bucket's figure, by `key`: asked for with `ask` once, then again only after
 * PAST_TOTAL_MS (only hits sent with an old timestamp still change it).
 */
async function pastTotal(key, ask) {
  let known = pastTotals.get(key);
  if (!known || Date.now() - known.at > PAST_TOTAL_MS) {
    known = { total: await ask(), at: Date.now() };
    if (pastTotals.size > 200) pastTotals.clear();
    pastTotals.set(key, known);
  }
  return known.total;
}

/**
 * Records a failed request: a refused token asks for one, anything else is the error banner.
 * A 400 to a visits request is what a HitMe restarted without `--visits` answers: the next
 * refresh asks for hits and learns again whether it counts visits.
 */
function fail(err, metric) {
  if (metric === "visits" && err.status === 400) state.visits = null;
  const token = err instanceof TokenError;
  state.auth = token ? (readToken() ? "refused" : "needed") : null;
  state.error = token ? null : err.message;
}

// Not while the token form waits: a refresh every 5 s would only be refused again.
function schedule() {
  if (!state.auth) timer = setTimeout(tick, REFRESH_MS);
}

/** Fetches everything the view shows, then renders once, so the page never shows half a refresh. */
async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const { period, range, rows, q, site, at, from: sourceUrl } = state;
  const metric = metricOf(state);
  const meter = { requests: 0, bytes: 0 };
  try {
    // One request at a time, on purpose: HitMe gives each keep-alive connection a thread of
    // its own for as long as the browser keeps it open, so parallel requests would make every
    // open dashboard hold up to six of them.
    const tabs = {};
    let page = null;
    let allTime = null;
    for (const name of Object.keys(PERIODS)) {
      // The other tabs need only their totals; all time's top URLs stand in for an empty
      // period's in the series chart.
      const limit = name === period ? rows : name === "all_time" ? SERIES_URLS : 1;
      const answer = await top(name, { limit, q, site, at, metric }, meter);
      if (mine !== generation) return; // the view changed meanwhile; a newer refresh is on its way
      // The first answer told that HitMe counts visits (or no longer does) and the view wants
      // the other metric: start again with it. Only a linked `metric=visits` costs this request.
      if (metricOf(state) !== metric) return refresh();
      tabs[name] = { total: answer.total, urls: answer.urls, before: null };
      // Each period beside the one before it. A past bucket's total hardly changes (only
      // hits sent with an old timestamp add to it), so it is asked for once, then again only
      // after PAST_TOTAL_MS: the refresh every 5 s stays six /top requests.
      if (PERIODS[name].before && answer.start > 0) {
        const key = `${name} ${answer.start} ${metric} ${q} ${site}`;
        const before = await pastTotal(key, () => top(name, { limit: 1, q, site, at: answer.start - 1, metric }, meter).then((a) => a.total));
        if (mine !== generation) return;
        tabs[name].before = before;
      }
      if (name === period) page = answer;
      if (name === "all_time") allTime = answer;
    }
    // The sites, for the picker: all time's, asked once a minute (its ranking was just read for
    // the All time tab, so HitMe adds it up without reading again).
    if (Date.now() - state.sites.at > SITES_MS) {
      const answer = await get("/sites", { limit: MAX_SITES }, meter);
      if (mine !== generation) return;
      state.sites = { at: Date.now(), list: answer.top.map((entry) => entry.site) };
    }
    // With --visits, the site's visitors in the selected period (hits or visits alike).
    let visitors = null;
    if (state.visits === true) {
      const api = PERIODS[period].api;
      const now = await get("/visitors", { period: api, site, timestamp: at }, meter);
      if (mine !== generation) return;
      visitors = { count: now.visitors, before: null };
      if (PERIODS[period].before && now.start > 0) {
        const key = `${period} ${now.start} visitors ${site}`;
        visitors.before = await pastTotal(key, () => get("/visitors", { period: api, site, timestamp: now.start - 1 }, meter).then((a) => a.visitors));
        if (mine !== generation) return;
      }
    }
    // With --sources, where the period's hits came from (a day's at the finest). A HitMe
    // without the flag answers the first ask with a 400 and is not asked again.
    let sources = null;
    if (state.sources !== false) {
      const api = SOURCE_PERIODS.includes(PERIODS[period].api) ? PERIODS[period].api : "day";
      const scope = sourceUrl ? { url: sourceUrl } : { site };
      try {
        const answer = await get("/sources", { period: api, ...scope, timestamp: at, limit: SOURCE_ROWS }, meter);
        state.sources = true;
        sources = { answer, api };
      } catch (err) {
        if (err.status !== 400 || state.sources === true) throw err;
        state.sources = false;
      }
      if (mine !== generation) return;
    }
    const from = page.top.length ? period : "all_time";
    const urls = (from === period ? page : allTime).top.slice(0, SERIES_URLS).map((entry) => entry.url);
    const count = RANGES[range].count;
    const lines = [];
    for (const url of urls) {
      const line = await get("/series", { url, period: range, count, timestamp: at, metric: metricParam(metric) }, meter);
      zone = line.time_zone ?? zone;
      lines.push(line);
      if (mine !== generation) return;
    }
    Object.assign(state, {
      data: { period, q, site, at, metric, tabs, total: page.total, urls: page.urls, rows: page.top, visitors, sources, from: sourceUrl },
      series: { period: from, q, range, metric, lines },
      error: null,
      auth: null,
      updated: Date.now(),
    });
    // What the last refresh cost: tests/dashboard.rs checks it stays small at 100,000 URLs.
    setAttrs($("dashboard"), { "data-refresh-requests": meter.requests, "data-refresh-bytes": meter.bytes });
  } catch (err) {
    if (mine !== generation) return;
    fail(err, metric);
  }
  render();
  schedule();
}

// A hidden tab keeps its timer but skips the requests; it catches up when shown again.
function tick() {
  if (document.visibilityState === "hidden") timer = setTimeout(tick, REFRESH_MS);
  else refresh();
}

/** Whether the data on screen was made for another view than the one asked for. */
function pending() {
  const { data } = state;
  return data !== null && (data.period !== state.period || data.q !== state.q || data.site !== state.site || data.at !== state.at || data.metric !== metricOf(state));
}

/**
 * "Show more": fetches the next page of the ranking (`offset`) and appends it. Later
 * refreshes fetch that many rows at once, from the top.
 */
async function showMore() {
  const { data } = state;
  if (!data || pending() || data.rows.length >= Math.min(MAX_ROWS, data.urls)) return;
  clearTimeout(timer);
  const mine = ++generation; // a refresh under way would bring back fewer rows: it is dropped
  const offset = data.rows.length;
  const limit = Math.min(PAGE_ROWS, MAX_ROWS - offset);
  state.rows = offset + limit;
  setAttrs($("show-more"), { disabled: true });
  try {
    const page = await top(data.period, { limit, offset, q: data.q, site: data.site, at: data.at, metric: data.metric }, { requests: 0, bytes: 0 });
    if (mine !== generation) return;
    // The ranking may have moved since the rows on screen were read: a URL is shown once.
    const shown = new Set(data.rows.map((row) => row.url));
    const rows = [...data.rows, ...page.top.filter((row) => !shown.has(row.url))];
    const tabs = { ...data.tabs, [data.period]: { total: page.total, urls: page.urls } };
    Object.assign(state, { data: { ...data, tabs, rows, total: page.total, urls: page.urls }, error: null, auth: null });
  } catch (err) {
    if (mine !== generation) return;
    fail(err, data.metric);
  }
  render();
  schedule();
}

// ---- Rendering ------------------------------------------------------------------------------

function render() {
  writeHash();
  setText($("zone-note"), `Buckets are calendar periods in ${zone}: This hour is the current hour so far.`);
  setAttrs($("dashboard"), { "data-time-zone": zone });
  const { data, error } = state;
  // What the page counts, as soon as it knows (visits with `--visits` and the switch on).
  if (data !== null) setText($("subtitle"), `${NOUNS[data.metric].title} per URL, compared across intervals`);
  // An empty Redis, as opposed to a filter or a site nothing matches.
  const empty = data !== null && !data.q && !data.site && data.tabs.all_time.urls === 0;
  const name = state.auth ? "token" : error ? "error" : data === null ? "loading" : empty ? "empty" : "ready";
  $("dashboard").dataset.state = name;
  $("loading").hidden = name !== "loading";
  $("error").hidden = !error;
  setText($("error-message"), error ?? "");
  const retry = `Retrying every ${REFRESH_MS / 1000} seconds.`;
  setText($("error-retry"), state.updated ? `${retry} Showing data from ${stamp(state.updated)}.` : retry);
  $("empty").hidden = name !== "empty";
  // Visits may start empty beside years of hits (HitMe just got `--visits`): the switch lives
  // in the header, outside #content, so it stays in reach on this card.
  const noun = NOUNS[data?.metric ?? "hits"];
  // What the numbers on screen count, for tests; absent on a HitMe without `--visits`.
  setAttrs($("dashboard"), { "data-metric": state.visits === true && data ? data.metric : null });
  setText($("empty-title"), `No ${noun.many} yet`);
  setText($("empty-text"), `HitMe is running but has not counted any ${noun.many}. Record one with:`);
  // Stale data stays on screen under the error banner: better than a blank page mid-outage.
  $("content").hidden = data === null || empty || name === "token";
  $("content").classList.toggle("stale", Boolean(error));
  // Just after a tab click or a new filter, until its data arrives.
  $("content").classList.toggle("pending", pending());
  setAttrs($("content"), { "aria-busy": pending() ? "true" : null });
  renderMode();
  renderMetric();
  renderToken();
  if (data && !empty && name !== "token") {
    renderSites();
    renderFilter();
    renderTabs();
    renderPeriod();
    renderSources();
    renderSeries();
  }
}

function renderMode() {
  $("pinned").hidden = state.at === null || Boolean(state.auth);
  if (state.at !== null) {
    setText($("pinned-time"), stamp(state.at));
    setAttrs($("pinned-time"), { datetime: new Date(state.at).toISOString() });
    setAttrs($("go-live"), { href: hashOf({ ...state, at: null }) });
  }
  const live = state.at === null && !state.error && !state.auth;
  const mode = state.auth ? "Needs a read token" : state.at !== null ? "Pinned" : live ? `Live · every ${REFRESH_MS / 1000} s` : "Reconnecting…";
  setText($("mode"), mode);
  $("mode").classList.toggle("live", live);
}

/** The Hits | Visits switch: only on a HitMe that counts visits, and not over the token form. */
function renderMetric() {
  $("metric-switch").hidden = state.visits !== true || Boolean(state.auth);
  for (const button of $("metric-switch").querySelectorAll("button")) {
    setAttrs(button, { "aria-pressed": String(button.dataset.metric === metricOf(state)) });
  }
}

/** The read-token form, in place of the data while HitMe refuses the requests. */
function renderToken() {
  const form = $("token-form");
  const input = $("token-input");
  // Focus goes to the box when the form appears and after a refused try (its button is
  // disabled while the try is checked), not on every render: that would steal it.
  const refocus = state.auth !== null && (form.hidden || $("token-submit").disabled);
  form.hidden = state.auth === null;
  const refused = state.auth === "refused";
  $("token-error").hidden = !refused;
  setAttrs(input, { "aria-invalid": refused ? "true" : null, "aria-describedby": refused ? "token-error" : null });
  setAttrs($("token-submit"), { disabled: null });
  if (state.auth === null && input.value) input.value = ""; // accepted: no need to keep it in the page
  if (refocus) {
    input.focus();
    input.select();
  }
}

/** ` containing “q”`, or nothing without a filter. */
const containing = (q) => (q ? ` containing “${q}”` : "");
/** ` of site`, or nothing for every site. */
const ofSite = (site) => (site ? ` of ${site}` : "");

/** The site picker: every site /sites listed, and the one the view asks for even if not. */
function renderSites() {
  const select = $("site");
  const list = state.sites.list.includes(state.site) || !state.site ? state.sites.list : [state.site, ...state.sites.list];
  $("site-picker").hidden = list.length < 2 && !state.site;
  reconcile(
    select,
    ["", ...list],
    (site) => site,
    () => make("option"),
    (option, site) => {
      option.value = site;
      setText(option, site || "All sites");
    },
  );
  select.value = state.site;
}

function renderFilter() {
  const input = $("filter");
  // Not while someone types: the box would fight them.
  if (document.activeElement !== input && filterOf(input.value) !== state.q) input.value = state.q;
  const { q } = state.data;
  $("filter-note").hidden = !q;
  setText($("filter-note"), q ? `Every count on this page is of the URLs${containing(q)} (ignoring case).` : "");
}

function renderTabs() {
  for (const tab of $("tabs").querySelectorAll("[role=tab]")) {
    const selected = tab.dataset.period === state.period;
    setAttrs(tab, { "aria-selected": String(selected), tabindex: selected ? null : "-1" });
    const figures = state.data.tabs[tab.dataset.period];
    setText(tab.querySelector(".tab-total"), number(figures.total));
    const before = tab.querySelector(".tab-prev");
    if (before) {
      setText(before, figures.before === null ? "" : `${PERIODS[tab.dataset.period].before} ${number(figures.before)}`);
      setAttrs(before, { "data-previous": figures.before === null ? null : String(figures.before) });
    }
  }
  setAttrs($("period-panel"), { "aria-labelledby": `tab-${state.period}` });
}

function renderPeriod() {
  const { data } = state;
  const period = PERIODS[data.period];
  const { total, urls, rows, q } = data;
  // Named by the data's own metric: just after a switch the page shows the previous one's.
  const noun = NOUNS[data.metric];
  setText($("summary"), `${plural(total, noun.one, noun.many)} on ${plural(urls, "URL", "URLs")}${ofSite(data.site)}${containing(q)}`);
  renderVisitors(data, period);
  const hint = !period.zoned ? `Every ${noun.one} ever counted` : data.at === null ? `${period.live} (${zone})` : `${period.pinned} ${stamp(data.at)}`;
  setText($("period-hint"), hint);
  $("period-empty").hidden = urls > 0;
  const matching = `${ofSite(data.site)}${containing(q)}`;
  setText($("period-empty"), matching ? `No URL${matching} has ${noun.many}${period.during}.` : `No ${noun.many}${period.during} yet.`);
  $("compare").hidden = urls === 0;
  if (urls === 0) return;
  renderBars(data, noun);
  renderTable(data, noun);
}

/** With --visits, the site's visitors in the period, beside the period before. */
function renderVisitors(data, period) {
  const { visitors } = data;
  $("visitors").hidden = visitors === null;
  if (visitors === null) return;
  const before = visitors.before === null ? "" : ` (${period.before} ${number(visitors.before)})`;
  setText($("visitors"), `${plural(visitors.count, "visitor", "visitors")}${period.during}${ofSite(data.site)}${before}`);
  setAttrs($("visitors"), { "data-visitors": visitors.count, "data-previous": visitors.before === null ? null : String(visitors.before) });
}

/** With --sources, where the period's hits came from: direct among the sources, most first. */
function renderSources() {
  const { sources, from, rows } = state.data;
  $("sources").hidden = sources === null;
  if (sources === null) return;
  const { answer, api } = sources;
  const day = api !== PERIODS[state.data.period].api;
  const of = from ? ` on ${from}` : ofSite(state.data.site);
  const during = day ? " today (sources are kept per day)" : PERIODS[state.data.period].during;
  setText($("sources-hint"), `Where the ${plural(answer.total, "hit", "hits")}${of}${during} came from.`);
  // The URLs the table shows, and the one the view asks for even if it is not among them.
  const urls = rows.map((row) => row.url);
  if (from && !urls.includes(from)) urls.push(from);
  reconcile(
    $("source-url"),
    ["", ...urls],
    (url) => url,
    () => make("option"),
    (option, url) => {
      option.value = url;
      setText(option, url || "Every URL");
    },
  );
  $("source-url").value = from;
  const listed = answer.sources.map(({ source, count }) => ({ source, count, name: source }));
  if (answer.direct > 0) listed.push({ source: "(direct)", count: answer.direct, name: "Direct (no referrer, or the site itself)" });
  listed.sort((a, b) => b.count - a.count || (a.source < b.source ? -1 : 1));
  reconcile(
    $("source-rows"),
    listed,
    (row) => row.source,
    () => {
      const tr = make("tr", { class: "source-row" });
      tr.append(make("td", { class: "source" }), make("td", { class: "num count" }), make("td", { class: "num share" }));
      return tr;
    },
    (tr, { source, count, name }) => {
      setAttrs(tr, { "data-source": source, "data-count": count });
      setText(tr.cells[0], name);
      setText(tr.cells[1], number(count));
      setText(tr.cells[2], shareOf(count, answer.total));
    },
  );
  const more = answer.distinct - answer.sources.length;
  const note = answer.total === 0 ? "No hits in this period yet." : more > 0 ? `and ${plural(more, "more source", "more sources")}; (other) counts those past --max-sources.` : "";
  setText($("source-note"), note);
}

/** The pixel width `chart` is shown at, for drawing it at that size. */
function widthOf(chart) {
  return Math.max(240, Math.round(chart.parentElement.clientWidth || 600));
}

const sum = (rows) => rows.reduce((total, row) => total + row.count, 0);

function renderBars({ period, rows, total, urls }, noun) {
  const shown = rows.slice(0, urls > BARS ? BARS - 1 : BARS);
  const bars = shown.map(({ url, count }) => ({ key: url, url, label: withoutScheme(url), title: `${url}: ${count}`, count }));
  if (urls > shown.length) {
    const count = Math.max(0, total - sum(shown));
    const label = `${number(urls - shown.length)} other URLs`;
    bars.push({ key: "\u0000others", label, title: `${label}: ${count}`, count, others: urls - shown.length });
  }
  drawBars($("bar-chart"), bars, widthOf($("bar-chart")));
  setAttrs($("bar-chart"), { "aria-label": `${noun.title} per URL, ${PERIODS[period].label}; the table has the numbers` });
}

const withoutScheme = (url) => url.replace(/^https?:\/\//, "");

function shareOf(count, total) {
  const share = (100 * count) / total;
  return share > 0 && share < 0.1 ? "<0.1%" : `${share.toFixed(1)}%`;
}

function renderTable({ rows, total, urls, q }, noun) {
  setText($("count-head"), noun.title);
  setText($("url-caption"), `The URLs with the most ${noun.many} in the selected period, most first`);
  reconcile(
    $("url-rows"),
    rows,
    (row) => row.url,
    () => {
      const tr = make("tr", { class: "url-row" });
      const link = make("a", { href: "#", target: "_blank", rel: "noopener noreferrer" });
      const cell = make("td", { class: "url" });
      cell.append(link);
      tr.append(cell, make("td", { class: "num count" }), make("td", { class: "num share" }));
      return tr;
    },
    (tr, { url, count }) => {
      setAttrs(tr, { "data-url": url, "data-count": count });
      setAttrs(tr.cells[0].firstChild, { href: url });
      setText(tr.cells[0].firstChild, url);
      setText(tr.cells[1], number(count));
      setText(tr.cells[2], shareOf(count, total));
    },
  );
  const ranked = rows.length < urls ? `The top ${number(rows.length)} of ${plural(urls, "URL", "URLs")}` : urls === 1 ? "The one URL" : `All ${number(urls)} URLs`;
  const shares = q ? `; shares are of the ${plural(total, noun.one, noun.many)} on URLs${containing(q)}` : "";
  setText($("table-note"), `${ranked}${ofSite(state.data.site)}${containing(q)}, most ${noun.many} first${shares}.`);
  const hiddenUrls = Math.max(0, urls - rows.length);
  $("more-row").hidden = hiddenUrls === 0;
  const hiddenHits = Math.max(0, total - sum(rows));
  setText($("more-text"), `and ${plural(hiddenUrls, "more URL", "more URLs")} with ${plural(hiddenHits, noun.one, noun.many)}`);
  const capped = rows.length >= MAX_ROWS;
  $("show-more").hidden = capped;
  setAttrs($("show-more"), { disabled: null });
  setText($("show-more"), `Show ${number(Math.min(PAGE_ROWS, MAX_ROWS - rows.length, hiddenUrls))} more`);
  $("rows-cap").hidden = !capped;
  setText($("rows-cap"), `The table stops at ${MAX_ROWS} rows; the filter finds the others.`);
  setText($("total-label"), q ? "Total matching" : "Total");
  setText($("total-count"), number(total));
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
    total: buckets.reduce((total, b) => total + b.count, 0),
  }));
  const starts = data.lines[0]?.buckets.map((b) => b.start) ?? [];
  const chart = $("series-chart");
  drawSeries(chart, { starts, lines, tick: range.tick, tip: range.tip }, widthOf(chart));
  const noun = NOUNS[data.metric];
  // charts.js ends each point's tooltip in "N hits"; a chart of visits renames them.
  if (data.metric !== "hits") {
    for (const title of chart.querySelectorAll(".point > title")) setText(title, title.textContent.replace(/ hits$/, ` ${noun.many}`));
  }
  setAttrs(chart, {
    "data-range": data.range,
    "aria-label": `${noun.title} per ${range.unit} over the last ${range.span} for the top ${urls.length} URLs`,
  });
  setText($("series-title"), `Top ${urls.length} ${urls.length === 1 ? "URL" : "URLs"} over time`);
  setText($("series-hint"), `${noun.title} per ${range.unit} over the last ${range.span} (${zone}) for the top URLs (${PERIODS[data.period].label})${containing(data.q)}`);
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
      setText(li.children[2], `${number(l.total)} in ${range.span}`);
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

// A new period or filter is a new ranking: the table starts again from its top rows.
const choosePeriod = (period) => change({ period, rows: period === state.period ? state.rows : PAGE_ROWS });

$("tabs").addEventListener("click", (e) => {
  const tab = e.target.closest("[role=tab]");
  if (tab) choosePeriod(tab.dataset.period);
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
  choosePeriod(tab.dataset.period);
});

// Another metric is another ranking, as a period is.
$("metric-switch").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-metric]");
  if (button && button.dataset.metric !== metricOf(state)) change({ metric: button.dataset.metric, rows: PAGE_ROWS });
});

$("ranges").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-range]");
  if (button) change({ range: button.dataset.range });
});

let filterTimer = 0;
function applyFilter() {
  clearTimeout(filterTimer);
  const q = filterOf($("filter").value);
  if (q !== state.q) change({ q, rows: PAGE_ROWS });
}
$("filter").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(applyFilter, FILTER_DELAY_MS);
});
$("filter-form").addEventListener("submit", (e) => {
  e.preventDefault();
  applyFilter();
});

$("show-more").addEventListener("click", showMore);

// Another site is another ranking, as a period is.
$("site").addEventListener("change", () => change({ site: $("site").value, rows: PAGE_ROWS }));
$("source-url").addEventListener("change", () => change({ from: $("source-url").value }));

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  // Hidden until the answer, so that a second refusal is announced again.
  $("token-error").hidden = true;
  const token = $("token-input").value.trim();
  if (!token || !saveToken(token)) {
    state.auth = "refused";
    render();
    return;
  }
  setAttrs($("token-submit"), { disabled: true });
  refresh();
});

$("go-live").addEventListener("click", (e) => {
  e.preventDefault();
  change({ at: null });
});

// A token link pasted into an open tab changes only the hash.
window.addEventListener("hashchange", () => {
  takeHashToken();
  change(readHash());
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !state.auth) refresh();
});

// Charts are drawn at their pixel width, so a width change (rotating a phone) redraws them.
let drawnWidth = 0;
new ResizeObserver(() => {
  const width = $("content").clientWidth;
  if (width !== drawnWidth && state.data) render();
  drawnWidth = width;
}).observe($("content"));

setText($("curl-example"), `curl -d "url=http%3A%2F%2Fwww.example.com%2F" ${location.origin}/hit`);
takeHashToken();
Object.assign(state, readHash());
$("filter").value = state.q;
render();
refresh();

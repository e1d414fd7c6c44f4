// HitMe dashboard: fetches /hits and draws, for the selected period, a bar chart and a table.
"use strict";

const REFRESH_MS = 5000;
const TOP_N = 10;
const SVG_NS = "http://www.w3.org/2000/svg";

let period = "all_time";
let latest = null;

const $ = (id) => document.getElementById(id);

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// The top URLs by count, the rest grouped as "other".
function topEntries(counts) {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (entries.length <= TOP_N) return entries;
  const rest = entries.slice(TOP_N - 1).reduce((sum, [, n]) => sum + n, 0);
  return [...entries.slice(0, TOP_N - 1), [`${entries.length - TOP_N + 1} other URLs`, rest]];
}

function drawChart(entries) {
  const chart = $("chart");
  const barH = 22, gap = 8, labelW = 0, width = 600;
  const height = entries.length * (barH + gap);
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const bars = entries.map(([url, n], i) => {
    const y = i * (barH + gap);
    const w = Math.max(2, ((width - 80 - labelW) * n) / max);
    const g = svg("g", { class: "row" });
    g.append(svg("rect", { class: "bar", x: labelW, y, width: w, height: barH, rx: 3 }));
    g.append(svg("text", { class: "count", x: labelW + w + 6, y: y + barH / 2 + 4 }, String(n)));
    g.append(svg("title", {}, `${url}: ${n}`));
    return g;
  });
  chart.replaceChildren(...bars);
}

function drawTable(entries, total) {
  const rows = entries.map(([url, n]) => {
    const tr = document.createElement("tr");
    const share = total ? ((100 * n) / total).toFixed(1) + "%" : "–";
    for (const [text, cls] of [[url, ""], [String(n), "num"], [share, "num"]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  });
  $("table").tBodies[0].replaceChildren(...rows);
}

function render() {
  if (!latest) return;
  const counts = latest[period] || {};
  const entries = topEntries(counts);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const empty = entries.length === 0;
  $("empty").hidden = !empty;
  $("results").hidden = empty;
  const status = $("status");
  status.classList.remove("error");
  status.textContent = empty ? "No hits in this period." : `${total} hits on ${Object.keys(counts).length} URLs`;
  if (!empty) {
    drawChart(entries);
    drawTable(entries, total);
  }
}

async function refresh() {
  try {
    const res = await fetch("/hits", { cache: "no-store" });
    const body = await res.json();
    if (!res.ok || body.status !== "OK") throw new Error(body.error || `HTTP ${res.status}`);
    latest = body;
    render();
  } catch (err) {
    const status = $("status");
    status.classList.add("error");
    status.textContent = `Could not load hits: ${err.message}`;
  }
}

function selectTab(button) {
  period = button.dataset.period;
  for (const b of document.querySelectorAll("#tabs button")) {
    b.setAttribute("aria-selected", String(b === button));
  }
  render();
}

$("tabs").addEventListener("click", (e) => {
  if (e.target.matches("button[data-period]")) selectTab(e.target);
});
$("curl-example").textContent =
  `curl -d "url=http%3A%2F%2Fwww.example.com%2F" ${location.origin}/hit`;
refresh();
setInterval(refresh, REFRESH_MS);

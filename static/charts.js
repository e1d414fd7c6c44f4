// HitMe dashboard charts: the bar chart comparing URLs and the line chart of hits over time,
// drawn as plain SVG sized to the pixel width they are shown at (so text stays readable on a
// phone instead of being scaled down with a fixed viewBox). Both update in place.

import { reconcile, setAttrs, setText, svg } from "./dom.js";

const compact = new Intl.NumberFormat("en-US", { notation: "compact" });

/** The first child `<g class="name">` of `parent`, created on first use (keeps layer order). */
function layer(parent, name) {
  let g = parent.querySelector(`:scope > g.${name}`);
  if (!g) {
    g = svg("g", { class: name });
    parent.append(g);
  }
  return g;
}

/** `text` cut to about `px` pixels of 12 px type, with an ellipsis when cut. */
function fit(text, px) {
  const chars = Math.max(4, Math.floor(px / 6.8));
  return text.length <= chars ? text : `${text.slice(0, chars - 1)}…`;
}

const BAR = { row: 36, labelY: 13, barY: 19, barH: 12, countRoom: 72 };

/**
 * Horizontal bars, one per row: `{key, label, title, count, url?, others?}`. A row with
 * `others` is the "N other URLs" bar and is drawn muted.
 */
export function drawBars(chart, rows, width) {
  const height = Math.max(1, rows.length) * BAR.row;
  setAttrs(chart, { viewBox: `0 0 ${width} ${height}`, width, height });
  // Scaled to the URLs' own bars: on a big site the "others" bar holds nearly every hit and
  // would shrink them to slivers, so it runs to the end of its track instead (its number says
  // how far past).
  const max = Math.max(1, ...rows.filter((r) => !r.others).map((r) => r.count));
  const span = width - BAR.countRoom;
  reconcile(
    layer(chart, "bars"),
    rows,
    (r) => r.key,
    () => {
      const g = svg("g");
      g.append(
        svg("title"),
        svg("text", { class: "bar-label", x: 0, y: BAR.labelY }),
        svg("rect", { class: "bar-track", x: 0, y: BAR.barY, height: BAR.barH, rx: 3 }),
        svg("rect", { class: "bar-fill", x: 0, y: BAR.barY, height: BAR.barH, rx: 3 }),
        svg("text", { class: "bar-count", y: BAR.barY + BAR.barH - 1 }),
      );
      return g;
    },
    (g, r, i) => {
      const w = Math.min(span, Math.max(3, (span * r.count) / max));
      setAttrs(g, {
        class: r.others ? "bar other" : "bar",
        transform: `translate(0 ${i * BAR.row})`,
        "data-url": r.url ?? null,
        "data-count": r.count,
        "data-others": r.others ?? null,
      });
      const [title, label, track, fill, count] = g.children;
      setText(title, r.title);
      setText(label, fit(r.label, width));
      setAttrs(track, { width: span });
      setAttrs(fill, { width: w });
      setAttrs(count, { x: w + 8 });
      setText(count, r.count.toLocaleString("en-US"));
    },
  );
}

/** A y scale of about four round steps (1, 2 or 5 times a power of ten) covering `max`. */
function niceScale(max) {
  const raw = Math.max(max, 1) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw));
  return { step, top: Math.max(step, Math.ceil(max / step) * step) };
}

const PAD = { top: 12, right: 8, bottom: 30, left: 44 };
const SERIES_HEIGHT = 260;

/**
 * One line per URL over shared buckets. `starts` are the buckets' first milliseconds;
 * `lines` are `{key, color, counts}` with one count per start; `tick(ms)` labels the x axis
 * and `tip(ms)` names a bucket in a point's tooltip.
 */
export function drawSeries(chart, { starts, lines, tick, tip }, width) {
  const height = SERIES_HEIGHT;
  setAttrs(chart, { viewBox: `0 0 ${width} ${height}`, width, height });
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const n = starts.length;
  const max = Math.max(0, ...lines.flatMap((l) => l.counts));
  const { step, top } = niceScale(max);
  const x = (i) => PAD.left + (n > 1 ? (plotW * i) / (n - 1) : plotW / 2);
  const y = (count) => PAD.top + plotH * (1 - count / top);

  const ticks = [];
  for (let v = 0; v <= top; v += step) ticks.push(v);
  reconcile(
    layer(chart, "grid"),
    ticks,
    (v) => v,
    () => {
      const g = svg("g", { class: "gridline" });
      g.append(svg("line"), svg("text", { class: "y-label", "text-anchor": "end" }));
      return g;
    },
    (g, v) => {
      const [line, label] = g.children;
      setAttrs(line, { x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) });
      setAttrs(label, { x: PAD.left - 8, y: y(v) + 4 });
      setText(label, compact.format(v));
    },
  );

  // Labels are counted back from the newest bucket so that "now" is always labelled and the
  // labels keep their places as the chart moves on by one bucket.
  const every = Math.ceil(n / Math.max(2, Math.floor(plotW / 78)));
  const labelled = starts
    .map((start, i) => ({ start, i }))
    .filter(({ i }) => (n - 1 - i) % every === 0);
  reconcile(
    layer(chart, "x-axis"),
    labelled,
    (l) => l.start,
    () => svg("text", { class: "x-label" }),
    (text, { start, i }) => {
      const anchor = i === n - 1 && n > 1 ? "end" : i === 0 ? "start" : "middle";
      setAttrs(text, { x: x(i), y: height - 10, "text-anchor": anchor });
      setText(text, tick(start));
    },
  );

  reconcile(
    layer(chart, "lines"),
    lines,
    (l) => l.key,
    () => {
      const g = svg("g", { class: "series" });
      g.append(svg("polyline", { class: "line" }), svg("g", { class: "points" }));
      return g;
    },
    (g, l) => {
      const [polyline, points] = g.children;
      setAttrs(g, { "data-url": l.key, style: `--color: ${l.color}` });
      setAttrs(polyline, {
        "data-url": l.key,
        points: l.counts.map((c, i) => `${x(i).toFixed(1)},${y(c).toFixed(1)}`).join(" "),
      });
      reconcile(
        points,
        starts.map((start, i) => ({ start, i, count: l.counts[i] })),
        (p) => p.start,
        () => {
          const circle = svg("circle", { class: "point", r: 2.5 });
          circle.append(svg("title"));
          return circle;
        },
        (circle, { start, i, count }) => {
          setAttrs(circle, {
            cx: x(i).toFixed(1),
            cy: y(count).toFixed(1),
            "data-url": l.key,
            "data-start": start,
            "data-count": count,
          });
          setText(circle.firstChild, `${l.key}\n${tip(start)}: ${count.toLocaleString("en-US")} hits`);
        },
      );
    },
  );
}

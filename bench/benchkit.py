#!/usr/bin/env python3
"""Helpers for scripts/bench (python3 standard library only).

scripts/bench runs the servers and the load tools; this file does the parts that are
awkward in bash:

  benchkit.py freeport                   print a free loopback TCP port (below the ephemeral
                                         range, so it never competes with ab's client ports)
  benchkit.py record CSV key=value ...   parse one ab or wrk output, add the measurements the
                                         script took around it, append a row to the raw CSV
                                         and print a one-line summary
  benchkit.py report CSV DIR ...         medians per target, tool and concurrency; markdown
                                         tables (results.md and stdout), summary.csv, graphs
  benchkit.py seedreport CSV DIR ...     the same for --seed-ab (the original ab.sh sweep):
                                         medians per body file and target, and one
                                         plot.p-style graph per target from ab's -g files
  benchkit.py bodyurl FILE               print the url= field of a form-encoded ab body,
                                         decoded: the Redis field its hits count in

For --urls N (reads at scale), each printing key=value lines for the report:

  benchkit.py fill PORT PREFIX N WEEKSTART  write N URLs straight into a Redis, in the
                                         standalone layout, one hash per current bucket
  benchkit.py topbench PORT TS WARM      time GET /top for each period: one cold request,
                                         then WARM sequential ones
  benchkit.py pollers PORT TS N DEADLINE N dashboards, each GET /top of the six periods once
                                         a second, until SIGTERM or DEADLINE seconds
  benchkit.py readers PORT TS SECONDS N  a hit probe (one POST /hit every 20 ms) alone for
                                         SECONDS, then beside a slow /hits reader (64 bytes
                                         every 0.5 s), 3 /top pollers and bursts of three
                                         concurrent /hits (each whole with at least N URLs)
  benchkit.py hitscheck FILE REDISPORT PREFIX TS WEEKSTART
                                         compare a /hits answer with the Redis hashes
  benchkit.py slowlog PORT               SLOWLOG LEN and its slowest entries
  benchkit.py urlsreport DIR SETTINGS    the --urls table with its goals (results.md, stdout)
"""

import csv
import datetime
import http.client
import json
import math
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

# Columns of the raw CSV, one row per run. BENCHMARKS.md explains each one.
COLUMNS = [
    "run", "rep", "target", "tool", "concurrency", "requests", "complete", "ok_2xx",
    "failed", "fail_connect", "fail_receive", "fail_length", "fail_exceptions",
    "fail_timeout", "non_2xx", "seconds", "rps", "p50_ms", "p99_ms", "max_ms",
    "server_cpu_s", "redis_cpu_s", "client_cpu_s", "server_peak_rss_kib",
    "redis_peak_rss_kib", "redis_before", "redis_after", "redis_delta", "redis_check",
    "timewait_before", "load1_before", "exit", "note", "output", "body", "url",
]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg):
    print(f"benchkit: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------- freeport

def freeport():
    """A port nobody listens on, from 20000-32767.

    Ports from bind(0) come out of the ephemeral range that ab and wrk also draw their
    client ports from; staying below it keeps the two apart. Binding is the check; the
    caller still retries if the server it starts then fails to bind (a race is possible).
    """
    low, high = 20000, 32767
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_low = int(f.read().split()[0])
        high = min(high, eph_low - 1)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            print(port)
            return
    die("no free port found in 200 tries")


def bodyurl(path):
    """The url= of an ab body file (form-encoded, a trailing newline or not), decoded.

    That is the field of <prefix>:all its hits count in, as long as the URL is already
    in HitMe's canonical form, as the url of ab_data0, ab_data1 and ab_data2 are.
    """
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        die(f"cannot read {path}: {e}")
    urls = urllib.parse.parse_qs(text).get("url")
    if not urls or not urls[0]:
        die(f"{path} has no url= field")
    print(urls[0])


# ----------------------------------------------------------------------------- parsing

def _num(pattern, text, cast=float, default=None):
    m = re.search(pattern, text, re.MULTILINE)
    return cast(m.group(1)) if m else default


def parse_ab(out, err, rc, requests):
    """Fields from ab's report. ab prints no 2xx count; see ok_2xx below."""
    r = {}
    text = out + "\n" + err
    r["complete"] = _num(r"^Complete requests:\s+(\d+)", out, int)
    r["failed"] = _num(r"^Failed requests:\s+(\d+)", out, int)
    m = re.search(r"\(Connect: (\d+), Receive: (\d+), Length: (\d+), Exceptions: (\d+)\)", out)
    if m:
        (r["fail_connect"], r["fail_receive"], r["fail_length"],
         r["fail_exceptions"]) = (int(x) for x in m.groups())
    elif r["failed"] == 0:
        r["fail_connect"] = r["fail_receive"] = r["fail_length"] = r["fail_exceptions"] = 0
    # ab prints the line only when there are some.
    r["non_2xx"] = _num(r"^Non-2xx responses:\s+(\d+)", out, int, 0)
    r["seconds"] = _num(r"^Time taken for tests:\s+([\d.]+)", out)
    r["rps"] = _num(r"^Requests per second:\s+([\d.]+)", out)
    r["p50_ms"] = _num(r"^\s+50%\s+(\d+)", out)
    r["p99_ms"] = _num(r"^\s+99%\s+(\d+)", out)
    r["max_ms"] = _num(r"^\s+100%\s+(\d+)", out)
    note = ""
    if r["complete"] is None:
        # ab gave up (apr_* error, its -s timeout with no socket ready, or killed by the
        # wrapper). It prints how far it got; everything it did not finish counts as failed.
        done = _num(r"^Total of (\d+) requests completed", text, int)
        if done is None:
            # Killed before it could say: its last progress line is a lower bound.
            done = max([int(x) for x in re.findall(r"^Completed (\d+) requests", err,
                                                   re.MULTILINE)] or [0])
        r["complete"] = done
        r["failed"] = max(requests - done, 0)
        errs = [l.strip() for l in err.splitlines()
                if re.search(r"apr_|timeout|rror|Invalid|refused|reset", l)]
        note = "ab aborted: " + (errs[-1] if errs else f"exit {rc}")
        r["rps"] = r["p50_ms"] = r["p99_ms"] = r["max_ms"] = None
    elif rc != 0:
        note = f"ab exit {rc}"
    # 2xx responses: ab counts completed requests, failures and non-2xx, not 2xx. A
    # receive error also ends in the completed count, so it is taken off too. Exact when
    # there are no failures; with failures it is ab's best account.
    recv = r.get("fail_receive") or 0
    r["ok_2xx"] = max(r["complete"] - r["non_2xx"] - recv, 0)
    return r, note


def parse_wrk(out, err, rc):
    r = {}
    m = re.search(r"^BENCH_WRK (.*)$", out, re.MULTILINE)
    if not m:
        errs = [l.strip() for l in (err + "\n" + out).splitlines() if l.strip()]
        return None, "wrk produced no summary: " + (errs[-1] if errs else f"exit {rc}")
    kv = dict(p.split("=", 1) for p in m.group(1).split())
    kv = {k: int(v) for k, v in kv.items()}
    r["complete"] = kv["requests"]
    r["seconds"] = kv["duration_us"] / 1e6
    r["rps"] = kv["requests"] / r["seconds"] if r["seconds"] > 0 else None
    r["fail_connect"] = kv["connect"]
    r["fail_receive"] = kv["read"]
    r["fail_exceptions"] = kv["write"]
    r["fail_timeout"] = kv["timeout"]
    r["failed"] = kv["connect"] + kv["read"] + kv["write"] + kv["timeout"]
    r["non_2xx"] = kv["status"]
    # Reads the mix sent (bench/zipf.lua reads) are answered 2xx and count no hit: the count
    # check compares the hits with the 2xx answers to hits.
    r["ok_2xx"] = kv["requests"] - kv["status"] - kv.get("reads", 0)
    r["p50_ms"] = kv["p50_us"] / 1000
    r["p99_ms"] = kv["p99_us"] / 1000
    r["max_ms"] = kv["max_us"] / 1000
    return r, (f"wrk exit {rc}" if rc != 0 else "")


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def record(csv_path, pairs):
    """Append one run. pairs come from scripts/bench as key=value."""
    a = dict(p.split("=", 1) for p in pairs)
    tool = a["tool"]
    rc = int(a.get("exit") or 0)
    out, err = _read(a["stdout"]), _read(a["stderr"])
    requests = int(a["requests"]) if a.get("requests") else 0
    if tool == "ab":
        r, note = parse_ab(out, err, rc, requests)
    else:
        r, note = parse_wrk(out, err, rc)
        if r is None:
            r = {"complete": 0, "failed": None, "ok_2xx": None}
    if rc == 124 or rc == 137:
        note = f"killed by the {a.get('run_timeout', '?')}s wrapper timeout; " + note
    if a.get("note"):
        note = (note + "; " if note else "") + a["note"]
    if tool.startswith("wrk"):
        requests = r.get("complete") or 0

    row = {k: "" for k in COLUMNS}
    for k in ("run", "rep", "target", "tool", "concurrency", "timewait_before",
              "load1_before", "exit", "redis_before", "redis_after", "body", "url"):
        row[k] = a.get(k, "")
    row["requests"] = requests
    row["output"] = os.path.basename(a["stdout"])
    for k, v in r.items():
        row[k] = "" if v is None else (f"{v:.3f}" if isinstance(v, float) else v)
    for k in ("server_cpu", "redis_cpu"):
        ticks = a.get(k + "_ticks", "")
        row[k + "_s"] = f"{int(ticks) / CLK_TCK:.2f}" if ticks != "" else ""
    row["client_cpu_s"] = a.get("client_cpu_s", "")
    row["server_peak_rss_kib"] = a.get("server_rss_kib", "")
    row["redis_peak_rss_kib"] = a.get("redis_rss_kib", "")

    if row["redis_before"] != "" and row["redis_after"] != "" and r.get("ok_2xx") is not None:
        delta = int(row["redis_after"]) - int(row["redis_before"])
        row["redis_delta"] = delta
        diff = delta - int(r["ok_2xx"])
        row["redis_check"] = "exact" if diff == 0 else f"{diff:+d}"
        if note.startswith(("ab aborted", "killed")) or "ab aborted" in note:
            # ab's own counts are lost or partial: give what the server counted instead.
            row["redis_check"] = f"n/a (ab aborted; Redis counted {delta})"
        # wrk stops with up to -c requests sent and unanswered; the server still counts
        # them. Said so, rather than passed off as exact.
        if tool.startswith("wrk") and 0 < diff <= int(a.get("concurrency") or 0):
            row["redis_check"] += " in flight at stop"
    else:
        row["redis_check"] = "n/a"
    row["note"] = note

    new = not os.path.exists(csv_path) or os.path.getsize(csv_path) == 0
    with open(csv_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            w.writeheader()
        w.writerow(row)

    def show(k):
        return str(row[k]) if row[k] != "" else "-"
    def num(k, kind):
        return fnum(float(row[k]), kind) if row[k] != "" else "-"
    print(f"{num('rps', 'int')} req/s, "
          f"failed {show('failed')}, non-2xx {show('non_2xx')}, "
          f"p99 {num('p99_ms', 'ms')} ms, server CPU {show('server_cpu_s')} s, "
          f"Redis count {row['redis_check']}" + (f" [{note}]" if note else ""))


# ------------------------------------------------------------------------------ report

def fnum(v, kind):
    if v is None:
        return "-"
    if kind == "int":
        return f"{v:.0f}"
    if kind == "ms":
        if v == int(v) or v >= 100:
            return f"{v:.0f}"  # ab reports whole milliseconds
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if kind == "s":
        return f"{v:.2f}"
    if kind == "mib":
        return f"{v:.1f}"
    return str(v)


def pct(v):
    return f"{v:.0f}%" if v is not None else "-"


def cell(v, ref, kind):
    """A figure and, when the nginx reference has one that is not zero, the ratio."""
    s = fnum(v, kind)
    if v is None or ref is None or ref == 0:
        return s
    return f"{s} ({v / ref:.2f}×)"


def fval(row, k):
    v = row.get(k, "")
    return float(v) if v not in ("", None) else None


def med(rows, k):
    vals = [fval(r, k) for r in rows if fval(r, k) is not None]
    return statistics.median(vals) if vals else None


def clean(r):
    """A run with every request answered 2xx: no failures, no non-2xx, ab not aborted."""
    return (r["failed"] == "0" and r["non_2xx"] in ("0", "")
            and not r["note"].startswith(("ab aborted", "killed", "wrk produced")))


def summarize(rows, key=lambda r: (r["tool"], int(r["concurrency"]), r["target"])):
    """Medians over the repetitions, per key: (tool, concurrency, target) by default."""
    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    s = {}
    for key, rs in groups.items():
        for r in rs:
            # Share of one core the load tool used: near 100% means ab (single-threaded)
            # or wrk -t1 was the limit, not the server.
            cpu, secs = fval(r, "client_cpu_s"), fval(r, "seconds")
            r["client_busy_pct"] = (f"{100 * cpu / secs:.1f}"
                                    if cpu is not None and secs else "")
        m = {k: med(rs, k) for k in ("requests", "rps", "failed", "non_2xx", "p50_ms",
                                      "p99_ms", "max_ms", "server_cpu_s", "redis_cpu_s",
                                      "client_cpu_s", "client_busy_pct", "server_peak_rss_kib",
                                      "redis_peak_rss_kib")}
        m["reps"] = len(rs)
        m["clean"] = sum(1 for r in rs if clean(r))
        m["max_failed"] = max((int(r["failed"]) for r in rs if r["failed"] != ""), default=None)
        m["max_non_2xx"] = max((int(r["non_2xx"]) for r in rs if r["non_2xx"] != ""),
                               default=None)
        checks = [r["redis_check"] for r in rs]
        if all(c == "n/a" for c in checks):
            m["redis"] = "n/a"
        elif all(c == "exact" for c in checks):
            m["redis"] = f"exact ({len(checks)}/{len(checks)})"
        else:
            m["redis"] = "off: " + ", ".join(checks)
        m["notes"] = sorted({r["note"] for r in rs if r["note"]})
        m["rows"] = rs
        s[key] = m
    return s


def median_rep(m):
    """The repetition whose req/s is the median one (for the per-request graph)."""
    rs = [r for r in m["rows"] if fval(r, "rps") is not None]
    if not rs:
        return None
    rs.sort(key=lambda r: fval(r, "rps"))
    return rs[(len(rs) - 1) // 2]


def machine_facts():
    facts = []

    def sh(cmd):
        try:
            p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = re.search(r"^model name\s*:\s*(.*)$", _read("/proc/cpuinfo"), re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.MULTILINE)
    facts.append(("cores (nproc)", sh("nproc")))
    facts.append(("CPU", cpu.group(1) if cpu else "?"))
    facts.append(("memory", f"{int(mem.group(1)) / 1048576:.1f} GiB" if mem else "?"))
    facts.append(("kernel", sh("uname -sr")))
    facts.append(("where", "load generator (ab, wrk), servers and Redis all on this one box, "
                           "over loopback"))
    for name in ("net.core.somaxconn", "net.ipv4.ip_local_port_range",
                 "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_max_syn_backlog",
                 "net.ipv4.tcp_syncookies"):
        v = _read("/proc/sys/" + name.replace(".", "/")).split()
        facts.append((name, " ".join(v) if v else "?"))
    facts.append(("ab", sh("ab -V | head -1")))
    facts.append(("wrk", sh("wrk -v 2>&1 | head -1").split(" Copyright")[0]))
    facts.append(("redis-server", sh("redis-server --version").split(" sha=")[0]))
    facts.append(("nginx", sh("nginx -v 2>&1")))
    return facts


# The load tools, in table order: wrk-close is wrk with Connection: close, wrk-dash wrk beside
# polling dashboards (--workload zipf).
TOOLS = ("ab", "wrk", "wrk-close", "wrk-dash")


def floor_section(s, targets, floor):
    """HitMe against the design floor: the ratios the goals are stated in, and the CPU each
    request costs the server, Redis and the load generator, per target."""
    md = ["\n## Against the design floor\n"]
    if floor not in targets:
        return md + ["The floor did not run (`--no-floor`).\n"]
    md.append(f"`{floor}` is HitMe's own server without HitMe's work (same socket, tiny_http "
              f"and worker threads, a fixed answer, no Redis): what the design costs. Ratios "
              f"are each target's figure over the floor's in the same run. CPU per request is "
              f"the median run's CPU seconds over its requests.\n")
    md.append("| tool | c | target | req/s | ÷ floor | p99 ms | p99 ÷ floor | server µs/req "
              "| Redis µs/req | client µs/req |")
    md.append("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")

    def per_req(m, k):
        v, n = m.get(k), m.get("requests")
        return f"{v / n * 1e6:.1f}" if v is not None and n else "-"

    def ratio(a, b):
        return f"{a / b:.2f}×" if a is not None and b else "-"

    for tool in TOOLS:
        for c in sorted({c for (tl, c, _) in s if tl == tool}):
            f = s.get((tool, c, floor))
            for t in targets:
                m = s.get((tool, c, t))
                if not m:
                    continue
                md.append(
                    f"| {tool} | {c} | {t} | {fnum(m['rps'], 'int')} | "
                    f"{ratio(m['rps'], f['rps'] if f else None) if t != floor else '1'} | "
                    f"{fnum(m['p99_ms'], 'ms')} | "
                    f"{ratio(m['p99_ms'], f['p99_ms'] if f else None) if t != floor else '1'} | "
                    f"{per_req(m, 'server_cpu_s')} | {per_req(m, 'redis_cpu_s')} | "
                    f"{per_req(m, 'client_cpu_s')} |")
    return md


def report(csv_path, outdir, graph_c, ref, settings_path, bench_dir, floor="floor"):
    rows = load_runs(csv_path)
    s = summarize(rows)
    targets = in_order(rows, "target")
    ab_levels = sorted({c for (t, c, _) in s if t == "ab"})
    has_ref = ref in targets
    reps = max(m["reps"] for m in s.values())
    md = []

    def refm(tool, c):
        return s.get((tool, c, ref)) if has_ref else None

    def rv(tool, c, k, target):
        if target == ref:
            return None
        m = refm(tool, c)
        return m[k] if m else None

    if not ab_levels:
        md.append("No ab runs (`--workload zipf` posts with wrk only); every run is in the "
                  "tables below.\n")
    md.append("## (1) Highest ab concurrency with zero failed requests\n")
    md.append(f"A level counts when every repetition ({reps} at most) had 0 failed and 0 "
              f"non-2xx responses and ab finished.\n")
    md.append("| target | highest clean c | first c with failures | levels run |")
    md.append("| --- | --- | --- | --- |")
    for t in targets:
        levels = [c for c in ab_levels if ("ab", c, t) in s]
        if not levels:
            continue
        best, first_bad = None, None
        for c in levels:
            m = s[("ab", c, t)]
            if m["clean"] == m["reps"]:
                best = c
            elif first_bad is None:
                first_bad = (f"{c} ({m['reps'] - m['clean']}/{m['reps']} reps failing; "
                             f"failed ≤ {m['max_failed']}, non-2xx ≤ {m['max_non_2xx']})")
        md.append(f"| {t} | {best if best is not None else 'none'} | {first_bad or 'none'} | "
                  f"{', '.join(map(str, levels))} |")

    q2 = [c for c in ab_levels if 1024 <= c <= 4096]
    md.append("\n## (2) Requests per second at c = 1024 to 4096 (ab, median)\n")
    if q2:
        if has_ref:
            md.append(f"In brackets: the ratio to `{ref}` (the HTTP limit: fixed answer, "
                      f"no Redis, 1 worker process).\n")
        md.append("| target | " + " | ".join(f"c={c}" for c in q2) + " |")
        md.append("| --- |" + " --- |" * len(q2))
        for t in targets:
            cells = []
            for c in q2:
                m = s.get(("ab", c, t))
                cells.append(cell(m["rps"], rv("ab", c, "rps", t), "int") if m else "-")
            md.append(f"| {t} | " + " | ".join(cells) + " |")
    else:
        md.append("No level between 1024 and 4096 was run.")

    md += floor_section(s, targets, floor)

    md.append(f"\n## All runs: medians of {reps} repetition{'s' if reps > 1 else ''}\n")
    md.append("Ratios to `" + ref + "` in brackets where it has a non-zero figure. CPU is "
              "user+system seconds during the run; peak RSS is the process's lifetime peak "
              "(VmHWM) when the run ended. `-`: not measured (unknown pid or Redis).\n"
              if has_ref else
              "CPU is user+system seconds during the run; peak RSS is the process's "
              "lifetime peak (VmHWM) when the run ended. `-`: not measured.\n")
    md.append("| target | tool | c | requests | clean reps | req/s | failed | non-2xx | "
              "p50 ms | p99 ms | max ms | server CPU s | Redis CPU s | server peak RSS MiB | "
              "Redis count | client CPU, % of a core |")
    md.append("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | "
              "---: | ---: | ---: | --- | ---: |")
    for tool in TOOLS:
        for c in sorted({c for (tl, c, _) in s if tl == tool}):
            for t in targets:
                m = s.get((tool, c, t))
                if not m:
                    continue

                def ce(k, kind, scale=1.0):
                    v = m[k] / scale if m[k] is not None else None
                    r = rv(tool, c, k, t)
                    return cell(v, r / scale if r is not None else None, kind)
                md.append(
                    f"| {t} | {tool} | {c} | {fnum(m['requests'], 'int')} | "
                    f"{m['clean']}/{m['reps']} | {ce('rps', 'int')} | {ce('failed', 'int')} | "
                    f"{ce('non_2xx', 'int')} | {ce('p50_ms', 'ms')} | {ce('p99_ms', 'ms')} | "
                    f"{ce('max_ms', 'ms')} | {ce('server_cpu_s', 's')} | "
                    f"{fnum(m['redis_cpu_s'], 's')} | {ce('server_peak_rss_kib', 'mib', 1024)} | "
                    f"{m['redis']} | {pct(m['client_busy_pct'])} |")
    notes = [(k, n) for k, m in sorted(s.items()) for n in m["notes"]]
    if notes:
        md.append("\nNotes from the runs:\n")
        for (tool, c, t), n in notes:
            md.append(f"- {t} {tool} c={c}: {n}")

    # Graph data: req/s per level, and the sorted response times of one run per target.
    graphs = []
    rps_targets = []
    for t in targets:
        pts = [(c, s[("ab", c, t)]["rps"]) for c in ab_levels
               if ("ab", c, t) in s and s[("ab", c, t)]["rps"] is not None]
        if pts:
            with open(os.path.join(outdir, f"rps-{t}.dat"), "w") as f:
                f.write("# concurrency  median_req_per_s\n")
                for c, v in pts:
                    f.write(f"{c} {v:.1f}\n")
            rps_targets.append(t)
    lat_targets = []
    for t in targets:
        m = s.get(("ab", graph_c, t))
        run = median_rep(m) if m else None
        tsv = os.path.join(outdir, "raw", run["output"].replace(".out", ".tsv")) if run else ""
        if not run or not os.path.exists(tsv):
            continue
        ttimes = sorted(ab_ttimes(tsv))
        with open(os.path.join(outdir, f"latency-{t}.dat"), "w") as f:
            f.write(f"# ab -c {graph_c} total time (ms) of each request, sorted; "
                    f"from {run['output']} (median rep)\n")
            f.writelines(f"{v}\n" for v in ttimes)
        lat_targets.append(t)

    if rps_targets and gnuplot(bench_dir, "rps.gp", dir=outdir,
                               targets=" ".join(rps_targets),
                               levels=" ".join(map(str, ab_levels)),
                               out=os.path.join(outdir, "rps-vs-concurrency.png")):
        graphs.append("rps-vs-concurrency.png")
    if lat_targets and gnuplot(bench_dir, "latency.gp", dir=outdir,
                               targets=" ".join(lat_targets), c=str(graph_c),
                               out=os.path.join(outdir, f"latency-c{graph_c}.png")):
        graphs.append(f"latency-c{graph_c}.png")

    # summary.csv: the medians, for spreadsheets and for comparing two result dirs.
    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        keys = ["requests", "rps", "failed", "non_2xx", "p50_ms", "p99_ms", "max_ms",
                "server_cpu_s", "redis_cpu_s", "client_cpu_s", "client_busy_pct",
                "server_peak_rss_kib"]
        w.writerow(["target", "tool", "concurrency", "reps", "clean_reps"]
                   + [f"median_{k}" for k in keys] + ["rps_ratio_to_" + ref, "redis_check"])
        for (tool, c, t), m in sorted(s.items()):
            rr = rv(tool, c, "rps", t)
            ratio = f"{m['rps'] / rr:.3f}" if rr and m["rps"] is not None else ""
            w.writerow([t, tool, c, m["reps"], m["clean"]]
                       + ["" if m[k] is None else f"{m[k]:.3f}" for k in keys]
                       + [ratio, m["redis"]])

    write_results(outdir, "# HitMe benchmark results", settings_path, md,
                  "ab's `-g` file at the graphed concurrency", graphs)


def gnuplot(bench_dir, script, **var):
    """Runs bench/SCRIPT with the variables set (gnuplot -e); True when it drew."""
    # In a gnuplot single-quoted string, '' is a quote.
    sets = "; ".join(f"{k}='{str(v).replace(chr(39), chr(39) * 2)}'" for k, v in var.items())
    try:
        p = subprocess.run(["gnuplot", "-e", sets, os.path.join(bench_dir, script)],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"benchkit: gnuplot {script} failed: {e}", file=sys.stderr)
        return False
    if p.returncode != 0:
        print(f"benchkit: gnuplot {script} failed: {p.stderr.strip()}", file=sys.stderr)
        return False
    return True


def write_results(outdir, title, settings_path, md, gfiles, graphs, files=None):
    """results.md (settings, machine, the tables, the files, the graphs); tables to stdout.

    files: the lines of the Files section, when not the sweep's."""
    tables = "\n".join(md) + "\n"
    head = [title + "\n"]
    head.append("## Settings and machine\n")
    for line in _read(settings_path).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            head.append(f"- {k.strip()}: {v.strip()}")
    for k, v in machine_facts():
        head.append(f"- {k}: {v}")
    head.append("")
    files = list(files) if files is not None else [
        "- `runs.csv`: one row per run (every repetition), `summary.csv`: the medians",
        f"- `raw/`: each run's ab or wrk output, {gfiles}, the servers' logs and the "
        "nginx config"]
    for g in graphs:
        files.append(f"- `{g}`")
    tail = ["\n## Files\n"] + files + [""]
    for g in graphs:
        tail.append(f"![{g}]({g})")
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(head) + "\n" + tables + "\n".join(tail) + "\n")
    sys.stdout.write(tables)


def load_runs(csv_path):
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        die("no runs recorded")
    return rows


def in_order(rows, k):
    """The values of column k, in the order the runs first had them."""
    seen = []
    for r in rows:
        if r[k] not in seen:
            seen.append(r[k])
    return seen


def ab_ttimes(tsv):
    """Total times (ms) from an ab -g file: starttime seconds ctime dtime ttime wait."""
    ttimes = []
    with open(tsv) as f:
        next(f, None)  # the header
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 6:
                ttimes.append(int(parts[4]))
    return ttimes


def seed_report(csv_path, outdir, ref, settings_path, bench_dir):
    """--seed-ab: the original ab.sh sweep (ab_data0..2 at c=5000), per body file and target.

    One table row per file and target (medians when there were several repetitions), and
    per target one graph in the style of the original plot.p: the -g file of each body
    drawn with `using 9 smooth sbezier`, i.e. every request's total time in ab's order,
    which is sorted by total time.
    """
    rows = load_runs(csv_path)
    s = summarize(rows, key=lambda r: (r["body"], r["target"]))
    bodies, targets = in_order(rows, "body"), in_order(rows, "target")
    url = {r["body"]: r["url"] for r in rows}
    has_ref = ref in targets
    reps = max(m["reps"] for m in s.values())
    md = []

    def rv(b, k, t):
        m = s.get((b, ref)) if has_ref and t != ref else None
        return m[k] if m else None

    md.append("## The original ab.sh sweep\n")
    md.append(f"For each body file ab_dataK and target: `ab -g FILE -r -n {rows[0]['requests']} "
              f"-c {rows[0]['concurrency']} -s S -p ab_data/ab_dataK "
              "-T \"application/x-www-form-urlencoded\" URL/hit` (the exact lines are in "
              "the settings above). "
              + (f"Medians of {reps} repetitions. " if reps > 1 else "One run each. ")
              + (f"In brackets: the ratio to `{ref}` (fixed answer, no Redis). " if has_ref
                 else "")
              + "Redis count: the rise of `HGET <prefix>:all <the file's url>` against the "
              "2xx responses ab saw.\n")
    md.append("| file (url) | target | requests | clean runs | req/s | failed | non-2xx | "
              "p50 ms | p99 ms | max ms | Redis count | server CPU s | Redis CPU s | "
              "server peak RSS MiB | client CPU, % of a core |")
    md.append("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | "
              "---: | ---: | ---: | ---: |")
    for b in bodies:
        for t in targets:
            m = s.get((b, t))
            if not m:
                continue

            def ce(k, kind, scale=1.0):
                v = m[k] / scale if m[k] is not None else None
                r = rv(b, k, t)
                return cell(v, r / scale if r is not None else None, kind)
            md.append(
                f"| {os.path.basename(b)} ({url[b]}) | {t} | {fnum(m['requests'], 'int')} | "
                f"{m['clean']}/{m['reps']} | {ce('rps', 'int')} | {fnum(m['failed'], 'int')} | "
                f"{fnum(m['non_2xx'], 'int')} | {ce('p50_ms', 'ms')} | {ce('p99_ms', 'ms')} | "
                f"{ce('max_ms', 'ms')} | {m['redis']} | {ce('server_cpu_s', 's')} | "
                f"{fnum(m['redis_cpu_s'], 's')} | {ce('server_peak_rss_kib', 'mib', 1024)} | "
                f"{pct(m['client_busy_pct'])} |")
    notes = [(k, n) for k, m in s.items() for n in m["notes"]]
    if notes:
        md.append("\nNotes from the runs:\n")
        for (b, t), n in notes:
            md.append(f"- {t} {os.path.basename(b)}: {n}")

    # One graph per target: its three -g files (of the median repetition), one line each,
    # on a y axis shared by all targets so the graphs compare side by side.
    plots = {}
    ymax = 0
    for t in targets:
        files = []
        for b in bodies:
            m = s.get((b, t))
            run = median_rep(m) if m else None
            tsv = (os.path.join(outdir, "raw", run["output"].replace(".out", ".tsv"))
                   if run else "")
            if run and os.path.exists(tsv):
                ttimes = ab_ttimes(tsv)
                if ttimes:
                    ymax = max(ymax, max(ttimes))
                    files.append((b, tsv))
        if files:
            plots[t] = files
    graphs = []
    for t, files in plots.items():
        png = f"seed-ab-{t}.png"
        var = {"n": len(files), "out": os.path.join(outdir, png), "ymax": ymax,
               "plottitle": f"{t}: POST /hit, ab -r -n {fnum(s[(files[0][0], t)]['requests'], 'int')}"
                            f" -c {rows[0]['concurrency']}, one line per body file"}
        for i, (b, tsv) in enumerate(files, 1):
            var[f"f{i}"] = tsv
            var[f"t{i}"] = f"{os.path.basename(b)} ({url[b]})"
        if gnuplot(bench_dir, "seed-plot.gp", **var):
            graphs.append(png)

    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        keys = ["requests", "rps", "failed", "non_2xx", "p50_ms", "p99_ms", "max_ms",
                "server_cpu_s", "redis_cpu_s", "client_cpu_s", "client_busy_pct",
                "server_peak_rss_kib"]
        w.writerow(["body", "url", "target", "reps", "clean_reps"]
                   + [f"median_{k}" for k in keys] + ["rps_ratio_to_" + ref, "redis_check"])
        for b in bodies:
            for t in targets:
                m = s.get((b, t))
                if not m:
                    continue
                rr = rv(b, "rps", t)
                ratio = f"{m['rps'] / rr:.3f}" if rr and m["rps"] is not None else ""
                w.writerow([b, url[b], t, m["reps"], m["clean"]]
                           + ["" if m[k] is None else f"{m[k]:.3f}" for k in keys]
                           + [ratio, m["redis"]])

    write_results(outdir, "# HitMe: the original ab.sh sweep", settings_path, md,
                  "ab's `-g` file of every run", graphs)


# ------------------------------------------------------------- --urls: reads at scale

# The periods of GET /top, all-time first, and the field of each in GET /hits.
PERIODS = ["all", "month", "week", "day", "hour", "minute"]
HITS_FIELD = {"all": "all_time", "month": "last_month", "week": "last_week",
              "day": "last_day", "hour": "last_hour", "minute": "last_minute"}
DAY_MS = 86_400_000
# Counts of the filled URLs: URL i has max(1, floor(PEAK[p] / (i + 1) ** ZIPF)) hits in the
# bucket of period p, a Zipf-like long tail in which every URL is in every bucket (the most
# URLs a read of that bucket can meet).
ZIPF = 0.8
PEAK = {"all": 1_000_000, "month": 100_000, "week": 30_000, "day": 5_000, "hour": 300,
        "minute": 20}
FILL_BATCH = 1000      # fields per HSET
FILL_IN_FLIGHT = 64    # HSETs sent and not yet answered, at most


class RedisError(Exception):
    pass


class Resp:
    """A minimal Redis client (RESP2) over one loopback TCP connection."""

    def __init__(self, port, timeout=120):
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def reply(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise RedisError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line[:40]!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self.reply()

    def info(self, section):
        text = self.call("INFO", section).decode()
        return dict(l.split(":", 1) for l in text.splitlines() if ":" in l and l[0] != "#")


def bucket_starts(ms, week_start="monday"):
    """The start (ms) of the bucket of each period holding ms, as HitMe computes them: UTC,
    weeks from Monday (or Sunday), months from the 1st; None for all-time."""
    day = ms - ms % DAY_MS
    dt = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    into_week = dt.weekday() if week_start == "monday" else (dt.weekday() + 1) % 7
    month = datetime.datetime(dt.year, dt.month, 1, tzinfo=datetime.timezone.utc)
    return {"all": None, "month": int(month.timestamp()) * 1000,
            "week": day - into_week * DAY_MS, "day": day, "hour": ms - ms % 3_600_000,
            "minute": ms - ms % 60_000}


def bucket_key(prefix, period, start):
    return f"{prefix}:all" if period == "all" else f"{prefix}:{period}:{start}"


def fill_url(i):
    return b"http://site.example/page/%d" % i


def fill(port, prefix, n, week_start):
    """N URLs straight into Redis: one HSET of FILL_BATCH fields at a time per bucket hash,
    pipelined (at most FILL_IN_FLIGHT unanswered), every reply checked."""
    now = int(time.time() * 1000)
    starts = bucket_starts(now, week_start)
    keys = [(p, bucket_key(prefix, p, starts[p]).encode()) for p in PERIODS]
    r = Resp(port)
    added, pending = 0, 0
    t0 = time.monotonic()
    for lo in range(0, n, FILL_BATCH):
        hi = min(n, lo + FILL_BATCH)
        fields = []
        for i in range(lo, hi):
            u = fill_url(i)
            fields.append(b"$%d\r\n%s\r\n" % (len(u), u))
        weights = [(i + 1) ** -ZIPF for i in range(lo, hi)]
        for p, key in keys:
            peak = PEAK[p]
            parts = [b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (2 + 2 * (hi - lo), len(key), key)]
            for f, w in zip(fields, weights):
                v = b"%d" % max(1, int(peak * w))
                parts.append(f)
                parts.append(b"$%d\r\n%s\r\n" % (len(v), v))
            r.sock.sendall(b"".join(parts))
            pending += 1
            while pending > FILL_IN_FLIGHT:
                added += r.reply()
                pending -= 1
    while pending:
        added += r.reply()
        pending -= 1
    secs = time.monotonic() - t0
    print(f"fill_urls={n}")
    print(f"fill_ts={now}")
    print(f"fill_seconds={secs:.2f}")
    print(f"fill_fields_added={added}")
    print(f"fill_week_start={week_start}")
    for p, key in keys:
        print(f"bucket_{p}={'' if starts[p] is None else starts[p]}")
        print(f"key_{p}={key.decode()}")
        print(f"hlen_{p}={r.call('HLEN', key)}")
    enc = r.call("OBJECT", "ENCODING", keys[0][1])
    print(f"fill_encoding={enc.decode() if enc else ''}")
    print(f"redis_used_memory_after_fill={r.info('memory')['used_memory']}")
    print(f"fill_example={fill_url(0).decode()} {max(1, int(PEAK['all']))} all-time, "
          f"{fill_url(n - 1).decode()} {max(1, int(PEAK['all'] * n ** -ZIPF))}")


def http_get(port, path, timeout):
    """One GET on a new connection: (status, body, seconds); status 0 on a transport error
    (the body is then the error)."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException) as e:
        status, body = 0, str(e).encode()
    finally:
        conn.close()
    return status, body, time.perf_counter() - t0


def pctl(vals, q):
    """Nearest-rank percentile: the smallest value with at least q of the values at or below
    it (of 50 values, p50 is the 25th and p99 the 50th, the largest)."""
    s = sorted(vals)
    return s[max(0, math.ceil(q * len(s)) - 1)] if s else None


def ms(v):
    return "" if v is None else f"{v * 1000:.2f}"


def topbench(port, ts, warm, pause=3.0, timeout=300):
    """GET /top?period=P&timestamp=TS for each period: after `pause` seconds (longer than the
    2 s a ranking is kept), one cold request, then `warm` sequential ones."""
    for p in PERIODS:
        path = f"/top?period={p}&timestamp={ts}"
        time.sleep(pause)
        status, body, cold = http_get(port, path, timeout)
        print(f"top_{p}_status={status}")
        if status != 200:
            print(f"hitme: /top?period={p}: HTTP {status}, recorded n/a", file=sys.stderr)
            # 404: no /top in this build. Anything else: say what it was and go on.
            why = "no /top (404)" if status == 404 else body[:200].decode(errors="replace")
            print(f"top_{p}_note={why}")
            continue
        print(f"top_{p}_cold_ms={ms(cold)}")
        try:
            a = json.loads(body)
            print(f"top_{p}_urls={a.get('urls', '')}")
            print(f"top_{p}_total={a.get('total', '')}")
            print(f"top_{p}_start={'' if a.get('start') is None else a.get('start')}")
            print(f"top_{p}_page={len(a.get('top') or [])}")
        except ValueError:
            print(f"top_{p}_note=the answer is not JSON")
        times, bad = [], 0
        t0 = time.monotonic()
        for _ in range(warm):
            st, _, t = http_get(port, path, timeout)
            times.append(t)
            bad += st != 200
        print(f"top_{p}_warm_n={warm}")
        print(f"top_{p}_warm_seconds={time.monotonic() - t0:.3f}")
        print(f"top_{p}_warm_non200={bad}")
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            print(f"top_{p}_warm_{name}_ms={ms(pctl(times, q))}")
        print(f"top_{p}_warm_max_ms={ms(max(times) if times else None)}")
        sys.stdout.flush()
        print(f"hitme: /top?period={p}: cold {ms(cold)} ms, warm p50 {ms(pctl(times, 0.5))} "
              f"ms, p99 {ms(pctl(times, 0.99))} ms", file=sys.stderr)
    # What a dashboard refresh asks for besides its page: each period's total, six
    # `limit=1` pages in a row, timed together (a fifth as many rounds as warm requests).
    rounds, times, bad = max(1, warm // 5), [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        for p in PERIODS:
            st, _, _ = http_get(port, f"/top?period={p}&limit=1&timestamp={ts}", timeout)
            bad += st != 200
        times.append(time.perf_counter() - t0)
    print(f"top_totals_n={rounds}")
    print(f"top_totals_non200={bad}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        print(f"top_totals_{name}_ms={ms(pctl(times, q))}")
    print(f"top_totals_max_ms={ms(max(times))}")
    print(f"hitme: the six totals (six /top?limit=1 in a row): p50 {ms(pctl(times, 0.5))} ms, "
          f"p99 {ms(pctl(times, 0.99))} ms", file=sys.stderr)


def pollers(port, ts, n, deadline, timeout=30):
    """N dashboards: each GETs /top for the six periods, one after the other, once a second
    (the next round starts a second after the last one started, or at once when a round took
    longer), until SIGTERM or `deadline` seconds. Prints what they saw."""
    import signal
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    times, statuses, late = [], {}, [0]
    end = time.monotonic() + deadline

    def poll(k):
        # Staggered over the first second, as dashboards opened at different moments are.
        if stop.wait(k / n):
            return
        while not stop.is_set() and time.monotonic() < end:
            t0 = time.monotonic()
            for p in PERIODS:
                if stop.is_set():
                    return
                st, _, t = http_get(port, f"/top?period={p}&timestamp={ts}", timeout)
                with lock:
                    times.append(t)
                    statuses[st] = statuses.get(st, 0) + 1
            took = time.monotonic() - t0
            if took > 1:
                with lock:
                    late[0] += 1
            stop.wait(max(0.0, 1 - took))

    started = time.monotonic()
    threads = [threading.Thread(target=poll, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    while not stop.is_set() and time.monotonic() < end:
        stop.wait(0.2)
    stop.set()
    # A poller in the middle of a request finishes it; one still waiting after 15 s is left
    # out (its thread dies with the process).
    joined_by = time.monotonic() + 15
    for t in threads:
        t.join(max(0.0, joined_by - time.monotonic()))
    with lock:
        print(f"pollers_n={n}")
        print(f"pollers_seconds={time.monotonic() - started:.1f}")
        print(f"pollers_requests={len(times)}")
        print(f"pollers_ok={statuses.get(200, 0)}")
        print(f"pollers_statuses={' '.join(f'{k}:{v}' for k, v in sorted(statuses.items()))}")
        print(f"pollers_late_rounds={late[0]}")
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            print(f"pollers_{name}_ms={ms(pctl(times, q))}")
        print(f"pollers_max_ms={ms(max(times) if times else None)}")


READERS_PROBE_URL = "http://probe.bench.example/"


def post_hit(port, url, timeout):
    """One POST /hit on a new connection: (status, seconds); status 0 on a transport error."""
    body = urllib.parse.urlencode({"url": url})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=timeout)
    try:
        conn.request("POST", "/hit", body, {"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        conn.close()
    return status, time.perf_counter() - t0


def probe(port, phase, seconds, timeout=60):
    """POST /hit every 20 ms for `seconds`; prints the latencies as readers_PHASE_probe_*."""
    times, statuses = [], {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        st, t = post_hit(port, READERS_PROBE_URL, timeout)
        times.append(t)
        statuses[st] = statuses.get(st, 0) + 1
        time.sleep(0.02)
    print(f"readers_{phase}_probe_n={len(times)}")
    print(f"readers_{phase}_probe_ok={statuses.get(200, 0)}")
    print(f"readers_{phase}_probe_statuses={' '.join(f'{k}:{v}' for k, v in sorted(statuses.items()))}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        print(f"readers_{phase}_probe_{name}_ms={ms(pctl(times, q))}")
    print(f"readers_{phase}_probe_max_ms={ms(max(times) if times else None)}")


def readers(port, ts, seconds, urls, timeout=60):
    """The reads-beside-hits scenario: a probe posting one hit every 20 ms, first alone for
    `seconds`, then for `seconds` beside one client reading GET /hits slowly (64 bytes every
    half second), three /top pollers over the periods (one GET every 100 ms each) and bursts
    of three concurrent GET /hits (the next burst once the last is answered). Every loop is
    bounded by `seconds`. Prints the probe's latencies in both phases and what the readers saw."""

    def probe(phase):
        # A process of its own: the readers below parse answers of tens of MB, and in this
        # process the probe would wait for the interpreter lock, not for HitMe.
        return subprocess.Popen([sys.executable, os.path.abspath(__file__), "probe", str(port),
                                 phase, str(seconds)], stdout=subprocess.PIPE, text=True)

    alone = probe("alone")
    print(alone.communicate()[0], end="")
    stop = threading.Event()
    seen = {"slow_bytes": 0, "top": {}, "bursts": 0, "hits": {}, "hits_whole": 0}
    lock = threading.Lock()

    def slow_reader():
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        s.sendall(f"GET /hits?timestamp={ts} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        try:
            while not stop.is_set():
                chunk = s.recv(64)
                if not chunk:
                    break
                seen["slow_bytes"] += len(chunk)
                stop.wait(0.5)
        except OSError:
            pass
        finally:
            s.close()

    def poller(period):
        while not stop.is_set():
            st, _, _ = http_get(port, f"/top?period={period}&limit=20&timestamp={ts}", timeout)
            with lock:
                seen["top"][st] = seen["top"].get(st, 0) + 1
            stop.wait(0.1)

    def one_hits():
        st, body, _ = http_get(port, f"/hits?timestamp={ts}", timeout)
        whole = False
        if st == 200:
            try:
                whole = len(json.loads(body)["all_time"]) >= urls
            except (ValueError, KeyError, TypeError):
                pass
        with lock:
            seen["hits"][st] = seen["hits"].get(st, 0) + 1
            seen["hits_whole"] += whole

    def bursts():
        while not stop.is_set():
            three = [threading.Thread(target=one_hits) for _ in range(3)]
            for b in three:
                b.start()
            for b in three:
                b.join()
            seen["bursts"] += 1

    threads = [threading.Thread(target=slow_reader, daemon=True)]
    threads += [threading.Thread(target=poller, args=(p,), daemon=True) for p in ("all", "day", "hour")]
    threads.append(threading.Thread(target=bursts, daemon=True))
    for th in threads:
        th.start()
    time.sleep(1)  # the readers under way first
    beside = probe("readers")
    print(beside.communicate()[0], end="")
    stop.set()
    for th in threads:
        th.join(timeout)
    print(f"readers_seconds={seconds}")
    print(f"readers_slow_bytes={seen['slow_bytes']}")
    print(f"readers_top_statuses={' '.join(f'{k}:{v}' for k, v in sorted(seen['top'].items()))}")
    print(f"readers_bursts={seen['bursts']}")
    print(f"readers_hits_statuses={' '.join(f'{k}:{v}' for k, v in sorted(seen['hits'].items()))}")
    print(f"readers_hits_whole={seen['hits_whole']}")


HITSCHECK_MAX_BYTES = 64 << 20


def hscan_all(r, key):
    """A hash's fields and counts, read with HSCAN a thousand at a time (an HGETALL of a big
    hash would itself land in the SLOWLOG being measured)."""
    out, cursor = {}, b"0"
    while True:
        cursor, items = r.call("HSCAN", key, cursor, "COUNT", 1000)
        for i in range(0, len(items), 2):
            out[items[i].decode()] = int(items[i + 1])
        if cursor == b"0":
            return out


def hitscheck(path, port, prefix, ts, week_start):
    """Whether a /hits answer lists, per period, exactly the URLs and counts of its bucket
    hash. Skipped above HITSCHECK_MAX_BYTES (parsing it would weigh on the machine)."""
    size = os.path.getsize(path)
    if size > HITSCHECK_MAX_BYTES:
        print(f"hits_check=not checked ({size} bytes, over {HITSCHECK_MAX_BYTES})")
        return
    try:
        with open(path, "rb") as f:
            answer = json.load(f)
    except ValueError as e:
        print(f"hits_check=not JSON: {e}")
        return
    starts = bucket_starts(int(ts), week_start)
    r = Resp(port)
    off = []
    for p in PERIODS:
        got = answer.get(HITS_FIELD[p])
        want = hscan_all(r, bucket_key(prefix, p, starts[p]))
        if got != want:
            n = len(got) if isinstance(got, dict) else "no"
            off.append(f"{HITS_FIELD[p]}: {n} URLs against {len(want)} in Redis")
    print("hits_check=" + ("exact (every URL and count of the six buckets)" if not off
                           else "; ".join(off)))


def slowlog(port, top=5):
    r = Resp(port)
    print(f"slowlog_len={r.call('SLOWLOG', 'LEN')}")
    entries = r.call("SLOWLOG", "GET", top) or []
    for k, e in enumerate(entries, 1):
        # id, unix time, microseconds, [command, args...], client, client name
        args = [a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in e[3]]
        shown = " ".join(a if len(a) <= 60 else a[:57] + "..." for a in args[:6])
        if len(args) > 6:
            shown += f" ... ({len(args)} arguments)"
        print(f"slowlog_{k}={e[2]} us: {shown}")


def read_facts(path):
    facts = {}
    for line in _read(path).splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            facts[k.strip()] = v.strip()
    return facts


def urls_report(outdir, settings_path):
    """The --urls table: each figure next to its goal."""
    f = read_facts(os.path.join(outdir, "urls.txt"))
    csv_path = os.path.join(outdir, "runs.csv")
    rows = []
    if os.path.exists(csv_path) and os.path.getsize(csv_path):
        with open(csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    alone = next((r for r in rows if "pollers" not in r["note"]), None)
    polled = next((r for r in rows if "pollers" in r["note"]), None)

    def num(k):
        try:
            return float(f[k])
        except (KeyError, ValueError):
            return None

    def verdict(ok):
        return "-" if ok is None else ("yes" if ok else "**no**")

    def msf(v):
        return "n/a" if v is None else fnum(v, "ms") + " ms"

    def mib(kib):
        return "-" if kib is None else f"{kib / 1024:.0f} MiB"

    n = f.get("fill_urls", "?")
    md = [f"## Reads at scale: {int(n):,} URLs\n" if n.isdigit() else "## Reads at scale\n"]
    if "fill_ts" in f:
        md.append(f"Filled straight into Redis: {int(n):,} URLs (`http://site.example/page/<i>`) "
                  f"in each of the six current buckets (`{f.get('key_all')}`, "
                  f"`{f.get('key_minute')}`, ...), {int(num('fill_fields_added') or 0):,} hash "
                  f"fields in {f.get('fill_seconds')} s; counts max(1, floor(C / (i+1)^{ZIPF})) "
                  f"with C = {', '.join(f'{PEAK[p]:,} ({p})' for p in PERIODS)}. Hash encoding "
                  f"`{f.get('fill_encoding')}`; Redis used_memory {mib((num('redis_used_memory_after_fill') or 0) / 1024)} "
                  f"after the fill. Every read asks for the buckets of the fill's moment "
                  f"(`timestamp={f['fill_ts']}`), so that each meets all {int(n):,} URLs "
                  f"however long the run takes (plus `http://www.olark.com/`, which the "
                  f"kit's check that HitMe answers counts, when it lands in the same "
                  f"buckets).\n")
    if "rankings_rebuild_seconds" in f:
        fill_mem = num("redis_used_memory_after_fill") or 0
        kept_mem = (num("redis_used_memory_after_rankings") or 0) - fill_mem
        md.append(f"With `--rankings`: `hitme rebuild-rankings` built the six buckets' kept "
                  f"rankings after the fill in {f['rankings_rebuild_seconds']} s; they take "
                  f"{mib(kept_mem / 1024)} of Redis ({kept_mem / fill_mem * 100 if fill_mem else 0:.1f} % "
                  f"of the counts' {mib(fill_mem / 1024)}).\n")
    md.append("| measure | figure | goal | met |")
    md.append("| --- | --- | --- | --- |")
    peaks = []
    for p in PERIODS:
        st = f.get(f"top_{p}_status")
        if st is None:
            continue
        if st != "200":
            md.append(f"| `/top?period={p}` | n/a: {f.get(f'top_{p}_note', 'HTTP ' + st)} | "
                      f"cold ≤ 500 ms, warm p50 ≤ 20 ms | - |")
            continue
        cold, p50 = num(f"top_{p}_cold_ms"), num(f"top_{p}_warm_p50_ms")
        urls = f.get(f"top_{p}_urls", "?")
        md.append(f"| `/top?period={p}` cold ({urls} URLs ranked) | {msf(cold)} | ≤ 500 ms | "
                  f"{verdict(cold <= 500 if cold is not None else None)} |")
        wn = f.get(f"top_{p}_warm_n", "?")
        md.append(f"| `/top?period={p}` warm, p50 / p99 / max of {wn} | {msf(p50)} / "
                  f"{msf(num(f'top_{p}_warm_p99_ms'))} / {msf(num(f'top_{p}_warm_max_ms'))} | "
                  f"p50 ≤ 20 ms | {verdict(p50 <= 20 if p50 is not None else None)} |")
    if "top_totals_n" in f:
        p50, p99 = num("top_totals_p50_ms"), num("top_totals_p99_ms")
        md.append(f"| the six totals (six `/top?limit=1` in a row), p50 / p99 / max of "
                  f"{f['top_totals_n']} | {msf(p50)} / {msf(p99)} / {msf(num('top_totals_max_ms'))}"
                  f"{'' if f.get('top_totals_non200') == '0' else ' (not all 200)'} | "
                  f"≤ 5 ms with `--rankings` | {verdict(p99 <= 5 if p99 is not None else None)} |")
    if "top_peak_rss_kib" in f:
        peaks.append(("the six `/top` reads", num("top_peak_rss_kib")))

    def hits_row(label, pre, judge):
        if f"{pre}_total_s" not in f:
            return
        secs, size = num(f"{pre}_total_s"), num(f"{pre}_bytes")
        ok = f.get(f"{pre}_status") == "200" and f.get(f"{pre}_exit") == "0"
        fig = (f"{secs:.2f} s, {(size or 0) / 1e6:.1f} MB, first byte after "
               f"{(num(pre + '_ttfb_s') or 0) * 1000:.0f} ms")
        if not ok:
            fig += (f" (HTTP {f.get(pre + '_status')}, curl exit {f.get(pre + '_exit')}: "
                    "incomplete)")
        md.append(f"| {label} | {fig} | {'≤ 1.5 s' if judge else 'information'} | "
                  f"{verdict(ok and secs <= 1.5) if judge else '-'} |")
    hits_row("`GET /hits`, one request", "hits1", True)
    if "hits1_check" in f:
        md.append(f"| `GET /hits` answer against Redis | {f['hits1_check']} | "
                  "every URL, exact | "
                  f"{verdict(f['hits1_check'].startswith('exact')) if not f['hits1_check'].startswith('not checked') else '-'} |")
    for k in (1, 2, 3):
        hits_row(f"`GET /hits`, three at once: request {k}", f"hits3_{k}", False)
    if "hits3_wall_s" in f:
        md.append(f"| `GET /hits`, three at once: all done after | {num('hits3_wall_s'):.2f} s "
                  f"| information | - |")
    if "hits1_peak_rss_kib" in f:
        peaks.append(("one `/hits`", num("hits1_peak_rss_kib")))
    if "hits3_peak_rss_kib" in f:
        peaks.append(("three `/hits` at once", num("hits3_peak_rss_kib")))

    def ab_fig(r):
        if r is None:
            return None, "not run"
        rps, p99, mx = fval(r, "rps"), fval(r, "p99_ms"), fval(r, "max_ms")
        fig = (f"{fnum(rps, 'int')} req/s, p99 {fnum(p99, 'ms')} ms, max {fnum(mx, 'ms')} ms, "
               f"failed {r['failed'] or '-'}, non-2xx {r['non_2xx'] or '-'}, count "
               f"{r['redis_check']}")
        return rps, fig
    c = (alone or polled or {}).get("concurrency", "?")
    nreq = (alone or polled or {}).get("requests", "?")
    rps0, fig0 = ab_fig(alone)
    md.append(f"| `POST /hit` alone (`ab -c {c} -n {nreq}`) | {fig0} | reference for the next "
              f"row | - |")
    if alone is not None and fval(alone, "server_peak_rss_kib") is not None:
        peaks.append(("`POST /hit` alone", fval(alone, "server_peak_rss_kib")))
    if polled is not None or "pollers_n" in f:
        rps1, fig1 = ab_fig(polled)
        ratio = rps1 / rps0 if rps0 and rps1 is not None else None
        mx = fval(polled, "max_ms") if polled else None
        clean_run = polled is not None and clean(polled)
        if ratio is not None:
            fig1 = fig1.replace(" req/s", f" req/s ({ratio:.2f}×)", 1)
        md.append(f"| `POST /hit` with {f.get('pollers_n', '?')} `/top` pollers | {fig1} | "
                  f"≥ 0.8× alone, max ≤ 100 ms, none failed | "
                  f"{verdict(clean_run and ratio >= 0.8 and mx is not None and mx <= 100) if ratio is not None else '-'} |")
        if "pollers_requests" in f:
            md.append(f"| the pollers' `/top` requests meanwhile | {f['pollers_requests']} in "
                      f"{f.get('pollers_seconds')} s (status:count {f.get('pollers_statuses')}), "
                      f"p50 / p99 / max {msf(num('pollers_p50_ms'))} / "
                      f"{msf(num('pollers_p99_ms'))} / {msf(num('pollers_max_ms'))}; "
                      f"rounds over 1 s: {f.get('pollers_late_rounds')} | information | - |")
        if polled is not None and fval(polled, "server_peak_rss_kib") is not None:
            peaks.append(("`POST /hit` with pollers", fval(polled, "server_peak_rss_kib")))
    if "start_peak_rss_kib" in f:
        peaks.insert(0, ("start and fill", num("start_peak_rss_kib")))
    if peaks:
        top = max(v for _, v in peaks if v is not None)
        how = ("VmHWM reset before each phase" if f.get("peak_reset") == "yes"
               else "lifetime VmHWM: it could not be reset between phases")
        md.append(f"| HitMe peak RSS, highest phase ({how}) | {mib(top)}: "
                  + ", ".join(f"{name} {mib(v)}" for name, v in peaks)
                  + f" | ≤ 150 MB (143 MiB) | {verdict(top * 1024 <= 150e6)} |")
    if "readers_readers_probe_n" in f:
        md.append("")
        md.append(f"Hits beside readers ({f.get('readers_seconds')} s each, a new connection per "
                  "request): a probe posting one hit every 20 ms, alone, then beside a slow "
                  "`/hits` reader (64 bytes every 0.5 s), 3 `/top` pollers and bursts of three "
                  "concurrent `/hits`.\n")
        md.append("| figure | measured | goal | met |")
        md.append("| --- | --- | --- | --- |")
        for phase, label in (("alone", "probe alone"), ("readers", "probe beside the readers")):
            p99, mx = num(f"readers_{phase}_probe_p99_ms"), num(f"readers_{phase}_probe_max_ms")
            goal = phase == "readers"
            met = (verdict(p99 is not None and mx is not None and p99 <= 20 and mx <= 100)
                   if goal else "-")
            md.append(f"| {label}: p50 / p99 / max of {f.get(f'readers_{phase}_probe_n')} hits "
                      f"(status:count {f.get(f'readers_{phase}_probe_statuses')}) | "
                      f"{msf(num(f'readers_{phase}_probe_p50_ms'))} / {msf(p99)} / {msf(mx)} | "
                      f"{'p99 ≤ 20 ms, max ≤ 100 ms' if goal else 'information'} | {met} |")
        whole, statuses = f.get("readers_hits_whole", "0"), f.get("readers_hits_statuses", "")
        answered = sum(int(x.split(":")[1]) for x in statuses.split() if x)
        md.append(f"| `/hits` in {f.get('readers_bursts')} bursts of three (status:count "
                  f"{statuses}) | {whole} of {answered} whole | every one whole | "
                  f"{verdict(answered > 0 and int(whole) == answered)} |")
        md.append(f"| `/top` polls meanwhile (status:count {f.get('readers_top_statuses')}) | "
                  f"the slow reader took {f.get('readers_slow_bytes')} bytes | information | - |")
    if "slowlog_len" in f:
        sl = int(f["slowlog_len"])
        md.append(f"| Redis `SLOWLOG` (commands over 10 ms) | {sl} entr{'y' if sl == 1 else 'ies'} "
                  f"| empty | {verdict(sl == 0)} |")
        entries = [f[k] for k in sorted(x for x in f if re.fullmatch(r"slowlog_\d+", x))]
        if entries:
            md.append("\nSlowest `SLOWLOG` entries (microseconds: command):\n")
            md.extend(f"- {e}" for e in entries)
    if "redis_used_memory_end" in f:
        md.append(f"\nRedis used_memory at the end: {mib(num('redis_used_memory_end') / 1024)}.")
    notes = [r["note"] for r in rows
             if r.get("note") and not re.fullmatch(r"beside \d+ /top pollers", r["note"])]
    if notes:
        md.append("\nNotes from the ab runs: " + "; ".join(notes))

    with open(os.path.join(outdir, "summary.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "value"])
        for k, v in f.items():
            w.writerow([k, v])
    files = ["- `urls.txt`: every figure taken (key=value), also in `summary.csv`",
             "- `runs.csv`: the two ab runs, as the main sweep records them",
             "- `raw/`: ab's output, curl's for `/hits`, the servers' logs"]
    write_results(outdir, "# HitMe: reads at scale (`--urls`)", settings_path, md, "", [],
                  files=files)


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd = argv[1]
    if cmd == "freeport":
        freeport()
    elif cmd == "record":
        record(argv[2], argv[3:])
    elif cmd == "report":
        # report CSV OUTDIR GRAPH_C REF SETTINGS BENCH_DIR
        report(argv[2], argv[3], int(argv[4]), argv[5], argv[6], argv[7])
    elif cmd == "seedreport":
        # seedreport CSV OUTDIR REF SETTINGS BENCH_DIR
        seed_report(argv[2], argv[3], argv[4], argv[5], argv[6])
    elif cmd == "bodyurl":
        bodyurl(argv[2])
    elif cmd == "fill":
        # fill PORT PREFIX N WEEKSTART
        fill(argv[2], argv[3], int(argv[4]), argv[5])
    elif cmd == "topbench":
        # topbench PORT TS WARM
        topbench(argv[2], argv[3], int(argv[4]))
    elif cmd == "pollers":
        # pollers PORT TS N DEADLINE_S
        pollers(argv[2], argv[3], int(argv[4]), float(argv[5]))
    elif cmd == "probe":
        # probe PORT PHASE SECONDS
        probe(argv[2], argv[3], float(argv[4]))
    elif cmd == "readers":
        # readers PORT TS SECONDS URLS
        readers(argv[2], argv[3], float(argv[4]), int(argv[5]))
    elif cmd == "hitscheck":
        # hitscheck FILE REDISPORT PREFIX TS WEEKSTART
        hitscheck(argv[2], argv[3], argv[4], argv[5], argv[6])
    elif cmd == "slowlog":
        slowlog(argv[2])
    elif cmd == "urlsreport":
        # urlsreport DIR SETTINGS
        urls_report(argv[2], argv[3])
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)

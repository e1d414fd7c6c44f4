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
"""

import csv
import os
import random
import re
import socket
import statistics
import subprocess
import sys
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
    r["ok_2xx"] = kv["requests"] - kv["status"]
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
    if tool == "wrk":
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
        if tool == "wrk" and 0 < diff <= int(a.get("concurrency") or 0):
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


def report(csv_path, outdir, graph_c, ref, settings_path, bench_dir):
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
    for tool in ("ab", "wrk"):
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


def write_results(outdir, title, settings_path, md, gfiles, graphs):
    """results.md (settings, machine, the tables, the files, the graphs); tables to stdout."""
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
    files = ["- `runs.csv`: one row per run (every repetition), `summary.csv`: the medians",
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
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)

-- wrk script for scripts/bench: POST /hit with the body of an ab_data file over
-- keep-alive connections, then one machine-readable summary line.
--
-- Usage: wrk -t1 -c64 -d10s -s bench/post.lua http://127.0.0.1:PORT/hit -- ab_data/ab_data0

-- wrk calls init once per thread before it formats the request, so the body read here is
-- the body of every request.
function init(args)
   local path = args[1] or "ab_data/ab_data0"
   local f = assert(io.open(path, "rb"))
   local body = f:read("*a")
   f:close()
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

-- One line scripts/bench parses instead of wrk's human-readable units. Latencies are in
-- microseconds; errors.status counts responses with a status above 399.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_WRK requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end

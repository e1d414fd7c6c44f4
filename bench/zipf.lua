-- wrk script: POST /hit with one URL per request, drawn from N distinct pages with Zipf
-- popularity (s = 1: page i is hit in proportion to 1/i), as a site's traffic is: a few
-- popular pages and a long tail. Then the summary line of bench/post.lua.
--
-- Usage: wrk -t1 -c64 -d10s -s bench/zipf.lua http://127.0.0.1:PORT/hit -- [N] [close]
--   N      distinct pages (default 100000): http://site.example/page/<i>, i from 1
--   close  send Connection: close (a connection per request) instead of keep-alive
--
-- Each thread draws from its own generator seeded by its number, so runs are repeatable.

local cumulative = {}
local pages = 100000

local function build(n)
   local sum = 0
   for i = 1, n do
      sum = sum + 1 / i
      cumulative[i] = sum
   end
   for i = 1, n do
      cumulative[i] = cumulative[i] / sum
   end
end

-- The page whose cumulative share first reaches r, by bisection.
local function page_of(r)
   local lo, hi = 1, pages
   while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cumulative[mid] < r then
         lo = mid + 1
      else
         hi = mid
      end
   end
   return lo
end

local thread_number = 0
function setup(thread)
   thread:set("id", thread_number)
   thread_number = thread_number + 1
end

function init(args)
   pages = tonumber(args[1] or "100000")
   build(pages)
   math.randomseed(1000 + (id or 0))
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   if args[2] == "close" then
      wrk.headers["Connection"] = "close"
   end
end

function request()
   local body = "url=http%3A%2F%2Fsite.example%2Fpage%2F" .. page_of(math.random()) .. "&timestamp=0"
   return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_WRK requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end

-- wrk script: POST /hit with one URL per request, drawn from N distinct pages with Zipf
-- popularity (s = 1: page i is hit in proportion to 1/i), as a site's traffic is: a few
-- popular pages and a long tail. Then the summary line of bench/post.lua.
--
-- Usage: wrk -t1 -c64 -d10s -s bench/zipf.lua http://127.0.0.1:PORT/hit -- [N] [close] [referrers] [reads]
--   N          distinct pages (default 100000): http://site.example/page/<i>, i from 1
--   close      send Connection: close (a connection per request) instead of keep-alive
--   referrers  give each hit a referrer, as a site's hits carry one: none (40 %), another
--              page of the site (30 %) or a page of one of 200 other sites, also with Zipf
--              popularity (30 %); what HitMe's --sources counts
--   reads      make 1 % of the requests reads, as a site's own pages and dashboards send
--              beside its hits: half GET /hit?url=<a page drawn as above>, half GET
--              /top?period=day&limit=10; the summary line says how many (reads=N), so that
--              the count check compares the hits with the answers to hits
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
local threads = {}
function setup(thread)
   thread:set("id", thread_number)
   thread_number = thread_number + 1
   table.insert(threads, thread)
end

local referrers = false
local with_reads = false
-- Reads this thread sent (read by done() through setup's thread list).
reads = 0

function init(args)
   pages = tonumber(args[1] or "100000")
   build(pages)
   math.randomseed(1000 + (id or 0))
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
   for i = 2, #args do
      if args[i] == "close" then
         wrk.headers["Connection"] = "close"
      elseif args[i] == "referrers" then
         referrers = true
      elseif args[i] == "reads" then
         with_reads = true
      end
   end
end

-- A referrer for one hit (see the usage above); empty for none.
local function referrer()
   local r = math.random()
   if r < 0.4 then
      return ""
   elseif r < 0.7 then
      return "&referrer=http%3A%2F%2Fsite.example%2Fpage%2F" .. page_of(math.random())
   end
   -- The other sites' popularity: the first 200 pages' shares, as good a Zipf as any.
   local site = page_of(math.random() * cumulative[math.min(200, pages)])
   return "&referrer=https%3A%2F%2Fsite" .. site .. ".example%2Fpost%2F" .. math.random(1, 1000)
end

function request()
   if with_reads and math.random() < 0.01 then
      reads = reads + 1
      if math.random() < 0.5 then
         return wrk.format("GET", "/hit?url=http%3A%2F%2Fsite.example%2Fpage%2F" .. page_of(math.random()))
      end
      return wrk.format("GET", "/top?period=day&limit=10")
   end
   local body = "url=http%3A%2F%2Fsite.example%2Fpage%2F" .. page_of(math.random()) .. "&timestamp=0"
   if referrers then
      body = body .. referrer()
   end
   return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   local sent_reads = 0
   for _, thread in ipairs(threads) do
      sent_reads = sent_reads + (thread:get("reads") or 0)
   end
   io.write(string.format(
      "BENCH_WRK requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d max_us=%d reads=%d\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, sent_reads))
end

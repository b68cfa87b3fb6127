-- wrk script: POST /api/v1/transfers with a fresh body and Idempotency-Key per request.
--
-- bench/run.py prepends the configuration to a copy of this file:
--   ACCOUNTS  array of account ids (destinations; in the uniform scenario also sources)
--   HOT       the hot source account id, or nil for uniform distinct pairs
--   API_KEY   bearer key;  RUN  a prefix that makes the idempotency keys of this run unique
-- Each wrk thread loads its own copy (own Lua state, own counter); setup() numbers the threads.
-- done() prints one line "BENCH_RESULT {json}" with counts, percentiles (µs) and status codes.

local threads = {}
local counter = 0
local headers = nil
counts = {}
tid = 0

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

function init(args)
   math.randomseed(os.time() + tid * 7919)
   headers = {
      ["Authorization"] = "Bearer " .. API_KEY,
      ["Content-Type"] = "application/json",
   }
end

function request()
   counter = counter + 1
   local n = #ACCOUNTS
   local source, destination
   if HOT then
      source, destination = HOT, ACCOUNTS[math.random(n)]
   else
      local i = math.random(n)
      local j = math.random(n - 1)
      if j >= i then j = j + 1 end
      source, destination = ACCOUNTS[i], ACCOUNTS[j]
   end
   local cents = math.random(1, 100)
   local body = string.format(
      '{"source_account_id":"%s","destination_account_id":"%s","amount":"%d.%02d","currency":"USD"}',
      source, destination, math.floor(cents / 100), cents % 100)
   headers["Idempotency-Key"] = RUN .. "-" .. tid .. "-" .. counter
   return wrk.format("POST", "/api/v1/transfers", headers, body)
end

function response(status, hdrs, body)
   counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
   local total = {}
   for _, thread in ipairs(threads) do
      local c = thread:get("counts")
      for status, n in pairs(c) do total[status] = (total[status] or 0) + n end
   end
   local parts = {}
   for status, n in pairs(total) do parts[#parts + 1] = string.format('"%d":%d', status, n) end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"statuses":{%s}}\n',
      summary.requests, summary.duration, latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout,
      table.concat(parts, ",")))
end

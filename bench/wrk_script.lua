-- wrk script of the LootBox benchmark (bench/wrk.py writes its data and reads its result).
--
-- BENCH_WRK_DATA names a file of pre-built raw HTTP requests, each as "<length>\n<bytes>";
-- init() loads them into a Lua table so that request() only returns a string: the load
-- generator signs, formats and allocates nothing while it measures.
-- BENCH_WRK_MODE: "cycle" sends the table again and again (a replay of one request);
-- "once" sends each request at most once, and when the table runs out counts the overflow,
-- stops the thread and resends the last request (a replay: the row is then flagged).
-- BENCH_WRK_RESULT names the JSON file done() writes: summary, latency percentiles (us),
-- the responses by HTTP status and the overflow count.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  requests_table = {}
  count = 0
  index = 0
  overflow = 0
  statuses = {}
  mode = os.getenv("BENCH_WRK_MODE") or "once"
  local f = assert(io.open(os.getenv("BENCH_WRK_DATA"), "rb"))
  while true do
    local header = f:read("*l")
    if header == nil or header == "" then break end
    count = count + 1
    requests_table[count] = f:read(tonumber(header))
  end
  f:close()
  assert(count > 0, "no requests in " .. os.getenv("BENCH_WRK_DATA"))
end

function request()
  index = index + 1
  if index > count then
    if mode == "cycle" then
      index = 1
    else
      overflow = overflow + 1
      index = count
      if overflow == 1 then wrk.thread:stop() end
    end
  end
  return requests_table[index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local function json_object(t)
  local parts = {}
  for k, v in pairs(t) do
    parts[#parts + 1] = string.format('"%s": %s', tostring(k), tostring(v))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local all_statuses = {}
  local pool = 0
  local overflowed = 0
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses") or {}
    for code, n in pairs(s) do all_statuses[code] = (all_statuses[code] or 0) + n end
    overflowed = overflowed + (thread:get("overflow") or 0)
    pool = pool + (thread:get("count") or 0)
  end
  local percentiles = {}
  for _, p in ipairs({50, 75, 90, 99, 99.9}) do
    percentiles[string.format('%g', p)] = latency:percentile(p)
  end
  local out = assert(io.open(os.getenv("BENCH_WRK_RESULT"), "w"))
  out:write("{")
  out:write(string.format('"duration_us": %d, "requests": %d, "bytes": %d, ',
    summary.duration, summary.requests, summary.bytes))
  out:write('"errors": ' .. json_object(summary.errors) .. ", ")
  out:write(string.format('"latency_us": {"min": %d, "max": %d, "mean": %.1f, "stdev": %.1f, ',
    latency.min, latency.max, latency.mean, latency.stdev))
  out:write('"percentiles": ' .. json_object(percentiles) .. "}, ")
  out:write('"statuses": ' .. json_object(all_statuses) .. ", ")
  out:write(string.format('"overflow": %d, "pool": %d, "mode": "%s"', overflowed, pool,
    os.getenv("BENCH_WRK_MODE") or "once"))
  out:write("}\n")
  out:close()
end

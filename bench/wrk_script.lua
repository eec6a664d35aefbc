-- wrk script of the benchmark (bench/load.py writes its data and reads its result).
--
-- BENCH_WRK_DATA: pre-built raw HTTP requests, each "<length>\n<bytes>", loaded into a
-- table in init() so that request() only returns a string. BENCH_WRK_MODE "cycle" sends
-- them round and round; "once" sends each at most once, and when they run out stops the
-- thread and counts the overflow (the row is then flagged). done() writes BENCH_WRK_RESULT.

function init(args)
  requests_table, count, index, overflow, statuses = {}, 0, 0, 0, {}
  cycle = os.getenv("BENCH_WRK_MODE") == "cycle"
  local f = assert(io.open(os.getenv("BENCH_WRK_DATA"), "rb"))
  while true do
    local header = f:read("*l")
    if header == nil or header == "" then break end
    count = count + 1
    requests_table[count] = f:read(tonumber(header))
  end
  f:close()
  assert(count > 0, "no requests")
end

function request()
  index = index + 1
  if index > count then
    if cycle then
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

local thread
function setup(t) thread = t end

local function object(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = string.format('"%s": %s', k, v) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_WRK_RESULT"), "w"))
  out:write(string.format(
    '{"duration_us": %d, "requests": %d, "errors": %s, "statuses": %s, "overflow": %d, '
      .. '"latency_us": {"percentiles": {"50": %d, "99": %d}}}\n',
    summary.duration, summary.requests, object(summary.errors),
    object(thread:get("statuses")), thread:get("overflow"),
    latency:percentile(50), latency:percentile(99)))
  out:close()
end

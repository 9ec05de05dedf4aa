-- POST one JSON body over and over, and print one machine-readable RESULT line at the end.
--
--   wrk -t2 -c16 -d15s -s post-json.lua URL -- BODY_FILE [EXPECT] ['Header: value' ...]
--
-- With WRK_CHECK=1 in the environment, every answer is also checked: it must be a 200 whose
-- body contains EXPECT (plain substring). Checking makes wrk pass every body to Lua, which
-- costs client CPU, so the benchmark scripts check in a short separate pass and measure
-- without it.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Per-thread globals, read back through thread:get() in done().
checked = 0
bad = 0
first_bad = nil
local expect = ""

function init(args)
  local file = assert(io.open(args[1], "rb"), "cannot open the body file " .. tostring(args[1]))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  file:close()
  wrk.headers["Content-Type"] = "application/json"
  expect = args[2] or ""
  for i = 3, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then
      wrk.headers[name] = value
    end
  end
end

if os.getenv("WRK_CHECK") == "1" then
  function response(status, headers, body)
    checked = checked + 1
    if status ~= 200 or not string.find(body, expect, 1, true) then
      bad = bad + 1
      if first_bad == nil then
        first_bad = status .. " " .. string.sub(body, 1, 300)
      end
    end
  end
end

function done(summary, latency, requests)
  local checked_total, bad_total, sample = 0, 0, nil
  for _, thread in ipairs(threads) do
    checked_total = checked_total + (thread:get("checked") or 0)
    bad_total = bad_total + (thread:get("bad") or 0)
    sample = sample or thread:get("first_bad")
  end
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d non2xx=%d socket_errors=%d checked=%d bad=%d\n",
    summary.requests, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    checked_total, bad_total))
  if sample then
    io.write("FIRST_BAD " .. sample .. "\n")
  end
end

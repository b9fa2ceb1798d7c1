-- wrk script for POST /review: a distinct, fresh, valid review request on every call.
--
-- Driven by bench/run.py through environment variables:
--   BENCH_TEMPLATE  path of a JSON request with @@SID@@ @@QTY@@ @@EVTS@@ @@ASOF@@ placeholders
--   BENCH_NONCE     run-unique prefix of every strategy_id (so rows of one run can be counted)
--   BENCH_GROUP     consecutive requests that share one strategy_id (default 8; must stay
--                   below the order_rate gate's 30 submits/strategy/minute so every order
--                   is judged on its merits, and the gate's COUNT query sees real rows)
--   BENCH_OUT       where done() writes its JSON report
--   BENCH_QUOTA     optional: a thread stops after this many answers (memory scenario)
--   BENCH_KEEP      "1": keep per-answer values (review ids, X-Review-Overhead-Ms, llm ms,
--                   and per-request latency when a thread owns exactly one connection) and
--                   count executors / fallbacks named in the answers
--
-- Every wrk thread has its own Lua state, so each carries its own id (set in setup()) and the
-- strategy_id is "<nonce>-t<thread>-g<group>"; qty is 1 + counter % group: no two requests
-- of a run (or of two runs) have the same canonical hash, so nothing is an idempotent replay.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]]
local ts = ffi.new("bench_timespec_t")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

local template, nonce, group, quota, keep
local headers = { ["Content-Type"] = "application/json" }
local last_sec, evts, asof = -1, "", ""
local sent_at = nil

function init(args)
  local f = assert(io.open(assert(os.getenv("BENCH_TEMPLATE"), "BENCH_TEMPLATE unset"), "rb"))
  template = f:read("*a")
  f:close()
  nonce = os.getenv("BENCH_NONCE") or "bench"
  group = tonumber(os.getenv("BENCH_GROUP") or "8")
  quota = tonumber(os.getenv("BENCH_QUOTA") or "0")
  keep = os.getenv("BENCH_KEEP") == "1"
  -- Per-thread results (read by done() through thread:get).
  sent, answered, ok2xx, non2xx, replays = 0, 0, 0, 0, 0
  statuses, executors = {}, {}
  fallbacks = 0
  ids, ovh, llm, lat = {}, {}, {}, {}
end

function request()
  local t = os.time()
  if t ~= last_sec then
    last_sec = t
    evts = os.date("!%Y-%m-%dT%H:%M:%SZ", t - 2)
    asof = os.date("!%Y-%m-%dT%H:%M:%SZ", t - 1)
  end
  local n = sent
  sent = sent + 1
  local vals = {
    SID = string.format("%s-t%d-g%d", nonce, tid, math.floor(n / group)),
    QTY = tostring(1 + n % group),
    EVTS = evts,
    ASOF = asof,
  }
  local body = template:gsub("@@(%u+)@@", vals)
  sent_at = now()
  return wrk.format("POST", "/review", headers, body)
end

function response(status, hdrs, body)
  local t = now()
  answered = answered + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  if status >= 200 and status < 300 then
    ok2xx = ok2xx + 1
    if hdrs["x-idempotent-replay"] == "true" then
      replays = replays + 1
    end
    if keep then
      local ex = string.match(body, '"executor":"([%w_]+)"') or "?"
      executors[ex] = (executors[ex] or 0) + 1
      if string.find(body, '"fallback":{"used":true', 1, true) then
        fallbacks = fallbacks + 1
      end
      local k = #ids + 1
      ids[k] = string.match(body, '"review_id":"([%w%-]+)"') or ""
      ovh[k] = tonumber(hdrs["x-review-overhead-ms"] or "") or -1
      llm[k] = tonumber(string.match(body, '"llm":([%d%.eE%-]+)') or "") or -1
      if sent_at ~= nil then
        lat[k] = (t - sent_at) * 1000.0
      end
    end
  else
    non2xx = non2xx + 1
  end
  if quota > 0 and answered >= quota then
    wrk.thread:stop()
  end
end

-- ---------------------------------------------------------------------------- report (JSON)

local function enc(v)
  local ty = type(v)
  if ty == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return "null"
    end
    return string.format("%.6g", v)
  elseif ty == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif ty == "boolean" then
    return tostring(v)
  elseif ty == "table" then
    local out = {}
    if #v > 0 or next(v) == nil then
      for i = 1, #v do
        out[i] = enc(v[i])
      end
      return "[" .. table.concat(out, ",") .. "]"
    end
    for k, x in pairs(v) do
      out[#out + 1] = enc(tostring(k)) .. ":" .. enc(x)
    end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return "null"
end

function done(summary, latency, requests)
  local report = {
    duration_s = summary.duration / 1e6,
    completed = summary.requests,
    errors = {
      connect = summary.errors.connect,
      read = summary.errors.read,
      write = summary.errors.write,
      status = summary.errors.status,
      timeout = summary.errors.timeout,
    },
    latency_ms = {
      p50 = latency:percentile(50) / 1000,
      p90 = latency:percentile(90) / 1000,
      p99 = latency:percentile(99) / 1000,
      max = latency.max / 1000,
      mean = latency.mean / 1000,
    },
    threads = {},
  }
  for i, t in ipairs(threads) do
    report.threads[i] = {
      tid = t:get("tid"),
      sent = t:get("sent"),
      answered = t:get("answered"),
      ok2xx = t:get("ok2xx"),
      non2xx = t:get("non2xx"),
      replays = t:get("replays"),
      statuses = t:get("statuses"),
      executors = t:get("executors"),
      fallbacks = t:get("fallbacks"),
      ids = t:get("ids"),
      overhead_ms = t:get("ovh"),
      llm_ms = t:get("llm"),
      latency_ms = t:get("lat"),
    }
  end
  local path = os.getenv("BENCH_OUT")
  local f = assert(io.open(assert(path, "BENCH_OUT unset"), "w"))
  f:write(enc(report))
  f:close()
end

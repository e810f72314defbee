-- wrk script: POST one fixed body, then print the run's numbers as one JSON line.
--
--   wrk -t1 -c64 -d10s -s infer.lua http://127.0.0.1:8080/v2/models/lr/infer -- body.json \
--       ['X-API-Key: fnd_...']
--
-- The body is read once per thread (in init), so wrk builds the request once and sends it
-- as is: no Lua runs per request. done() prints a line starting with WRK_JSON; latencies are
-- in microseconds, and "status" counts responses that were not 2xx or 3xx.

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  for i = 2, #args do -- optional "Name: value" headers, e.g. an API key
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    wrk.headers[name] = value
  end
  file:close()
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "mean_us": %.1f, "p50_us": %d, '
      .. '"p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency.mean, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max))
end

-- wrk script: POST a file of many prepared bodies in turn, then print the run's numbers as one
-- JSON line (the same WRK_JSON line as infer.lua).
--
--   wrk -t1 -c64 -d10s -s cycle.lua http://127.0.0.1:8080/v2/models/lr/infer -- bodies.bin \
--       ['X-API-Key: fnd_...']
--
-- bodies.bin is a run of records, each a text line and then the body's bytes:
--
--   <length>[<TAB>Name: value]...<LF><length bytes of body>
--
-- The optional per-body headers (e.g. Content-Type, Inference-Header-Content-Length) override
-- the default Content-Type: application/json. Every request is built whole in init (method,
-- path, headers, body), so per request the only Lua is request() returning the next prepared
-- string: bodies differ from one request to the next at the cost of one Lua call.

local prepared = {}
local count = 0
local index = 0

function init(args)
  local common = {}
  for i = 2, #args do -- optional "Name: value" headers for every request, e.g. an API key
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    common[name] = value
  end
  local file = assert(io.open(args[1], "rb"))
  while true do
    local line = file:read("*l")
    if line == nil or line == "" then break end
    local headers = {["Content-Type"] = "application/json"}
    for name, value in pairs(common) do headers[name] = value end
    local fields = {}
    for field in line:gmatch("[^\t]+") do fields[#fields + 1] = field end
    for i = 2, #fields do
      local name, value = fields[i]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
    end
    local body = file:read(tonumber(fields[1]))
    count = count + 1
    prepared[count] = wrk.format("POST", wrk.path, headers, body)
  end
  file:close()
  assert(count > 0, "no bodies in " .. args[1])
end

function request()
  index = index % count + 1
  return prepared[index]
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

-- wrk script: POST /classify with a different photo each request (multipart/form-data).
-- The photos are read once per thread from the files listed in $BENCH_FILES (one path per line).
local boundary = "----bottlecheckbench7d9f"
local bodies = {}
local counter = 0

function init(args)
  local list = io.open(os.getenv("BENCH_FILES"), "r")
  for path in list:lines() do
    local f = io.open(path, "rb")
    local data = f:read("*all")
    f:close()
    bodies[#bodies + 1] = "--" .. boundary .. "\r\n" ..
      'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n' ..
      "Content-Type: image/jpeg\r\n\r\n" .. data .. "\r\n--" .. boundary .. "--\r\n"
  end
  list:close()
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", "/classify", {["Content-Type"] = "multipart/form-data; boundary=" .. boundary},
                    bodies[counter])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %d, \"duration_s\": %.3f, \"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f, " ..
    "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end

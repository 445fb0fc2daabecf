-- What the wrk scripts share: a photo's multipart framing, the photos listed in $BENCH_FILES
-- (one path per line), and the RESULT line bench_serving.py reads. Each script loads it with
-- dofile from its own folder.
local common = {}
common.boundary = "----bottlecheckbench7d9f"
common.head = "--" .. common.boundary .. "\r\n" ..
  'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n' ..
  "Content-Type: image/jpeg\r\n\r\n"
common.tail = "\r\n--" .. common.boundary .. "--\r\n"
common.headers = {["Content-Type"] = "multipart/form-data; boundary=" .. common.boundary}

function common.read_photos()
  local photos = {}
  local list = io.open(os.getenv("BENCH_FILES"), "r")
  for path in list:lines() do
    local f = io.open(path, "rb")
    photos[#photos + 1] = f:read("*all")
    f:close()
  end
  list:close()
  return photos
end

function common.report(summary, latency)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %d, \"duration_s\": %.3f, \"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f, " ..
    "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end

return common

-- wrk script: POST /classify where a set share of requests repeat a photo the cache holds.
-- $BENCH_FILES lists the photos (one path per line); $BENCH_HIT_RATE (0..1) is the share of
-- requests that send one of the first $BENCH_HOT photos unchanged (warmed into the cache before
-- the run). Every other request sends a photo with a unique tail after the JPEG's end marker:
-- the same pixels and the same work, but bytes the cache has never seen (its key hashes the bytes).
local boundary = "----bottlecheckbench7d9f"
local head = "--" .. boundary .. "\r\n" ..
  'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n' ..
  "Content-Type: image/jpeg\r\n\r\n"
local tail = "\r\n--" .. boundary .. "--\r\n"
local photos = {}
local hit_rate, hot = 0, 1
local counter = 0
local threads_made = 0

function setup(thread)  -- runs in the main state: give each thread its own number
  threads_made = threads_made + 1
  thread:set("id", threads_made)
end

function init(args)
  local list = io.open(os.getenv("BENCH_FILES"), "r")
  for path in list:lines() do
    local f = io.open(path, "rb")
    photos[#photos + 1] = f:read("*all")
    f:close()
  end
  list:close()
  hit_rate = tonumber(os.getenv("BENCH_HIT_RATE") or "0")
  hot = math.min(tonumber(os.getenv("BENCH_HOT") or "8"), #photos)
  math.randomseed(os.time() * 1000 + id)  -- each thread its own draws
end

function request()
  counter = counter + 1
  local body
  if math.random() < hit_rate then
    body = head .. photos[math.random(1, hot)] .. tail
  else
    local unique = string.format("bottlecheck-bench-%d-%d-%d", os.time(), id, counter)
    body = head .. photos[counter % #photos + 1] .. unique .. tail
  end
  return wrk.format("POST", "/classify", {["Content-Type"] = "multipart/form-data; boundary=" .. boundary}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\"requests\": %d, \"duration_s\": %.3f, \"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f, " ..
    "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(95) / 1e3,
    latency:percentile(99) / 1e3, e.connect, e.read, e.write, e.status, e.timeout))
end

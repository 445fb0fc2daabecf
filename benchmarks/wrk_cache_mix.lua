-- wrk script: POST /classify where a set share of requests repeat a photo the cache holds.
-- $BENCH_FILES lists the photos (one path per line); $BENCH_HIT_RATE (0..1) is the share of
-- requests that send one of the first $BENCH_HOT photos unchanged (warmed into the cache before
-- the run). Every other request sends a photo with a unique tail after the JPEG's end marker:
-- the same pixels and the same work, but bytes the cache has never seen (its key hashes the bytes).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local photos = {}
local hit_rate, hot = 0, 1
local counter = 0
local threads_made = 0

function setup(thread)  -- runs in the main state: give each thread its own number
  threads_made = threads_made + 1
  thread:set("id", threads_made)
end

function init(args)
  photos = common.read_photos()
  hit_rate = tonumber(os.getenv("BENCH_HIT_RATE") or "0")
  hot = math.min(tonumber(os.getenv("BENCH_HOT") or "8"), #photos)
  math.randomseed(os.time() * 1000 + id)  -- each thread its own draws
end

function request()
  counter = counter + 1
  local body
  if math.random() < hit_rate then
    body = common.head .. photos[math.random(1, hot)] .. common.tail
  else
    local unique = string.format("bottlecheck-bench-%d-%d-%d", os.time(), id, counter)
    body = common.head .. photos[counter % #photos + 1] .. unique .. common.tail
  end
  return wrk.format("POST", "/classify", common.headers, body)
end

function done(summary, latency, requests)
  common.report(summary, latency)
end

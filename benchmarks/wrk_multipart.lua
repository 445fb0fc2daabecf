-- wrk script: POST /classify with a different photo each request (multipart/form-data).
-- The photos are read once per thread from the files listed in $BENCH_FILES (one path per line).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")
local bodies = {}
local counter = 0

function init(args)
  for _, photo in ipairs(common.read_photos()) do
    bodies[#bodies + 1] = common.head .. photo .. common.tail
  end
  counter = math.random(#bodies)
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", "/classify", common.headers, bodies[counter])
end

function done(summary, latency, requests)
  common.report(summary, latency)
end

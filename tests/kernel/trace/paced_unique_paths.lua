-- wrk: a unique path per request, each connection pausing $WRK_DELAY_MS
-- between requests (wrk has no rate option): the load stays within what the
-- capture keeps up with on a small shared machine, so what is measured is the
-- joining, not ring-buffer loss.
local threads = {}
local next_tid = 0
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  return wrk.format("GET", "/u/" .. tid .. "/" .. counter)
end

function delay()
  return pause
end

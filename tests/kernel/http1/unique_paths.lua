-- wrk: a unique path per request, some answered 404 / 500 by the backend;
-- per-status response counts written to $WRK_COUNTS at the end.
local threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  counts = {}
end

function request()
  counter = counter + 1
  local kind = ""
  if counter % 20 == 0 then kind = "s500/" elseif counter % 7 == 0 then kind = "s404/" end
  return wrk.format("GET", "/u/" .. kind .. tid .. "/" .. counter)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("counts")) do total[s] = (total[s] or 0) + n end
  end
  local f = io.open(os.getenv("WRK_COUNTS"), "w")
  for s, n in pairs(total) do f:write(s .. " " .. n .. "\n") end
  f:close()
end

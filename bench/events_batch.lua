-- events_batch.lua — wrk script for bench/bench_events.sh: POST /api/v1/events with a batch of
-- EV_BATCH CloudEvents per request (application/cloudevents-batch+json), every id unique.
--
-- Environment: TALLY_KEY (the emitter credential NAME:SECRET; default the development
-- dev-emitter of config/tokens), EV_PREFIX (prefix of the ids; default the clock), EV_BATCH
-- (events per request, default 100), EV_NAMESPACES (namespaces bench-0.., default 5).
-- Each wrk thread numbers its own ids (prefix-thread-n), so any -t works.

local key = os.getenv("TALLY_KEY") or "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
local prefix = os.getenv("EV_PREFIX") or tostring(os.time())
local batch = tonumber(os.getenv("EV_BATCH") or "100")
local nns = tonumber(os.getenv("EV_NAMESPACES") or "5")

local threads = 0
function setup(thread)
   thread:set("tid", threads)
   threads = threads + 1
end

local n = 0
local fmt = '{"specversion":"1.0","id":"%s-%d-%d","source":"wrk","type":"api_calls",' ..
   '"subject":"bench-%d","data":{"value":%d,"object":"obj-%d"}}'

function init(args)
   wrk.method = "POST"
   wrk.path = "/api/v1/events"
   wrk.headers["Content-Type"] = "application/cloudevents-batch+json"
   wrk.headers["Authorization"] = "Bearer " .. key
end

function request()
   local evs = {}
   for i = 1, batch do
      n = n + 1
      evs[i] = string.format(fmt, prefix, tid or 0, n, n % nns, n % 100 + 1, n % 10)
   end
   return wrk.format(nil, nil, nil, "[" .. table.concat(evs, ",") .. "]")
end

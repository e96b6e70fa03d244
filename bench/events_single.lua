-- events_single.lua — wrk script for bench/bench_events.sh: POST /api/v1/events with one
-- CloudEvent per request (application/cloudevents+json), each with a unique id.
--
-- Environment: TALLY_KEY (the emitter credential NAME:SECRET; default the development
-- dev-emitter of config/tokens), EV_PREFIX (prefix of the ids; default the clock, so runs
-- against one store never share ids), EV_NAMESPACES (namespaces bench-0.., default 5).
-- Each wrk thread numbers its own ids (prefix-thread-n), so any -t works.

local key = os.getenv("TALLY_KEY") or "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
local prefix = os.getenv("EV_PREFIX") or tostring(os.time())
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
   wrk.headers["Content-Type"] = "application/cloudevents+json"
   wrk.headers["Authorization"] = "Bearer " .. key
end

function request()
   n = n + 1
   local body = string.format(fmt, prefix, tid or 0, n, n % nns, n % 100 + 1, n % 10)
   return wrk.format(nil, nil, nil, body)
end

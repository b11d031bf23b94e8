-- wrk script: POST a realistic W-API image webhook with a fresh messageId each time.
--
-- Usage: wrk ... -s bench/webhooks.lua URL -- TEMPLATE RUN_TAG
-- TEMPLATE is a JSON body holding the marker @@MESSAGE_ID@@ once; RUN_TAG keeps the
-- ids of one run apart from those of another. Each wrk thread numbers its own
-- requests, so ids never repeat within a run.

local head, tail
local run_tag = "00"
local thread_number = 0
local counter = 0

function setup(thread)
   thread_number = thread_number + 1
   thread:set("thread_number", thread_number)
end

function init(args)
   local file = assert(io.open(args[1], "r"))
   local template = file:read("*a")
   file:close()
   local at = assert(string.find(template, "@@MESSAGE_ID@@", 1, true))
   head = string.sub(template, 1, at - 1)
   tail = string.sub(template, at + string.len("@@MESSAGE_ID@@"))
   run_tag = args[2] or run_tag
   thread_number = thread_number or 1
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local id = string.format("3EB0%s%02X%010X", run_tag, thread_number, counter)
   return wrk.format(nil, nil, nil, head .. id .. tail)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK-SUMMARY requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d"
         .. " p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end

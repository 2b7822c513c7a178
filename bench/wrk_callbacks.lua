-- Replays pre-signed, unique Recording Status Callbacks (one per line: signature TAB body).
-- Signing happens before the run, so wrk spends its time only on sending.
-- Args: the file, then the thread count. Each thread starts at its own offset.
-- At the end one JSON line reports requests, errors and latency percentiles (microseconds).
local requests = {}
local counter = 0
local path = os.getenv("RECVAULT_BENCH_PATH") or "/twilio/recording-status"

local function load(file)
  for line in io.lines(file) do
    local signature, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
end

function init(args)
  load(args[1])
  -- Each wrk thread starts at its own offset, so threads do not send the same callbacks.
  counter = id * math.floor(#requests / (tonumber(args[2]) or 2))
end

local thread_count = 0
function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
end

function request()
  counter = counter + 1
  if counter > #requests then counter = 1 end
  return requests[counter]
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end

-- wrk script for api_benchmark.py's throughput sections: every request POSTs /v1/search/text
-- with the next query of a file of one query per line.
--   wrk -t THREADS -c CONNECTIONS -d SECONDS -s search_load.lua URL -- FILE THREADS TOP_K once|repeat
-- once: no two requests, on any of wrk's threads, send the same line, and running out of lines
-- stops the run with an error rather than measure the server's query cache; repeat: each thread
-- cycles through its lines. At the end it prints one line, "wrk-summary " and a JSON object.

local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local function json_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local bodies, position, cycle = {}, 0, false

function init(args)
  local path, threads, top_k = args[1], tonumber(args[2]), tonumber(args[3])
  cycle = args[4] == "repeat"
  local line_number = 0
  for line in io.lines(path) do
    -- Thread i takes lines i, i + threads, i + 2 threads...: disjoint shares of the file.
    if line_number % threads == thread_id then
      bodies[#bodies + 1] = '{"query": ' .. json_string(line) .. ', "top_k": ' .. top_k .. '}'
    end
    line_number = line_number + 1
  end
  wrk.method, wrk.path = "POST", "/v1/search/text"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  position = position + 1
  if position > #bodies then
    assert(cycle, "out of distinct queries: give a longer file or a shorter duration")
    position = 1
  end
  return wrk.format(nil, nil, nil, bodies[position])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'wrk-summary {"requests": %d, "duration_s": %.6f, "non_2xx": %d, "connect_errors": %d, ' ..
    '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_ms": %.3f, "p90_ms": %.3f, ' ..
    '"p99_ms": %.3f, "mean_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, errors.status, errors.connect, errors.read,
    errors.write, errors.timeout, latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency.mean / 1e3, latency.max / 1e3))
end

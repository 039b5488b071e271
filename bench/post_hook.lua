-- wrk script for the receiver's capacity: POST the ~1 KB delivery body in BENCH_BODY_FILE to the
-- receiver with the webhook's headers, so wrk measures what the receiver can answer, not the sender.
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "apsdai-hook"
wrk.headers["X-Apsdai-Token"] = "bench-token-7f3c2a91"
wrk.headers["X-Apsdai-Event"] = "order_pay_hook"
wrk.headers["X-Apsdai-Delivery"] = "dlv_wrk"

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.3f errors=%d\n", summary.requests, summary.duration / 1e6, errors))
end

-- wrk script for the ingest benchmark: POST one order_pay_hook event per request.
-- The token comes from the environment (BENCH_TOKEN); wrk's summary has the latency distribution.
wrk.method = "POST"
wrk.body = '{"event": "order_pay_hook", "data": {"order": {"order_no": "AP2026112718000001", "status": "paid", "amount": "128.00", "currency": "CNY", "buyer_email": "buyer@example.com"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")

done = function(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_ms=%.2f p99_ms=%.2f errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end

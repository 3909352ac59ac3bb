-- report.lua — wrk script of the http_get figure (bench/bench_http.c runs wrk with it).
-- It changes nothing in how wrk sends its requests (no request() or response()
-- function, so wrk keeps its fast path); it only prints, once the run is over, one
-- machine-readable line that bench_http parses:
--   wrk-result requests=N duration_us=N bytes=N connect=N read=N write=N status=N timeout=N
-- status counts responses with a status above 399; bench_http fails the round when any
-- error count is not zero.
done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "wrk-result requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout))
end

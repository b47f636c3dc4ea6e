"""Harness overhead of `presil mlperf` on the real LoadGen, with the NullBackend
(a fixed result at once, so everything measured is harness):

- per-query overhead in SingleStream: LoadGen's issue -> our IssueQuery ->
  SUT worker -> backend future -> QuerySamplesComplete, as LoadGen times it
  (goal <= 50 us);
- the same round trip in-process without LoadGen (sut.measure_dispatch_overhead,
  what the estimate adds as host overhead by default);
- Server: LoadGen's issue-thread wake-up lag on top;
- the Offline ceiling: samples/s when the backend costs nothing.

    python benchmarks/harness_overhead.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from presil.host.mlperf.run import make_spec, run_test
from presil.host.mlperf.sut import measure_dispatch_overhead

GOAL_US = 50.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0, help="min_duration of each LoadGen test")
    a = ap.parse_args()
    ms = int(a.seconds * 1000)
    with tempfile.TemporaryDirectory(prefix="presil-bench-") as d:
        out = Path(d)

        def null(scenario, settings):
            spec = make_spec("digits_cnn", scenario, "performance", out / scenario, backend="null", count=64,
                             settings=dict({"min_duration_ms": ms, "min_query_count": 100}, **settings))
            return run_test(spec, quiet=True)

        # LoadGen pre-generates duration / expected latency queries: tell it ~10 us.
        ss = null("SingleStream", {"single_stream_expected_latency_ns": 10_000})
        srv = null("Server", {"server_target_qps": 1000})
        off = null("Offline", {"offline_expected_qps": 2e5})
    inproc = measure_dispatch_overhead(1000) * 1e6
    lat = ss.latencies_ms
    print("presil mlperf harness overhead (NullBackend, real LoadGen 6.x, this machine)")
    print(f"  SingleStream per-query overhead: p50 {lat['p50'] * 1e3:.1f} us, p90 {lat['p90'] * 1e3:.1f} us, "
          f"p99 {lat['p99'] * 1e3:.1f} us, mean {lat['mean'] * 1e3:.1f} us "
          f"({ss.detail.get('result_query_count')} queries) -> goal <= {GOAL_US:.0f} us: "
          f"{'MET' if lat['p50'] * 1e3 <= GOAL_US else 'NOT MET'} (p50)")
    qps = float(ss.detail.get("result_qps_with_loadgen_overhead", 0))
    if qps:
        print(f"  SingleStream issue-to-issue incl. LoadGen's own work: {1e6 / qps:.1f} us ({qps:,.0f} queries/s)")
    print(f"  in-process SUT round trip (no LoadGen): {inproc:.1f} us")
    print(f"  Server at 1000 q/s: p50 {srv.latencies_ms['p50'] * 1e3:.1f} us, p99 {srv.latencies_ms['p99'] * 1e3:.1f} us "
          "(includes LoadGen's issue-thread wake-up)")
    print(f"  Offline ceiling: {off.metric:,.0f} samples/s "
          f"({off.detail.get('generated_samples_per_query')} samples in one query)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

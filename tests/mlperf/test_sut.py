"""The SUT without LoadGen: IssueQuery never blocks, every sample completes once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from presil.host.mlperf.backend import Backend, NullBackend
from presil.host.mlperf.datasets import synthetic
from presil.host.mlperf.qsl import QSL
from presil.host.mlperf.sut import SUT, measure_dispatch_overhead


class _Sample:
    def __init__(self, i):
        self.id, self.index = 1000 + i, i % 4


class SlowBackend(Backend):
    name = "slow"

    def infer(self, data):
        time.sleep(0.05)
        return b"\x01\x02\x03\x04"


def _qsl():
    q = QSL(synthetic((1, 3), count=4))
    q.load(range(4))
    return q


def test_issue_query_returns_immediately_with_a_slow_backend():
    done, lock, ev = [], threading.Lock(), threading.Event()

    def complete(sid, result):
        with lock:
            done.append((sid, bytes(result)))
            if len(done) == 6:
                ev.set()

    sut = SUT(SlowBackend(), _qsl(), complete=complete)
    t0 = time.perf_counter()
    for i in range(3):
        sut.issue_query([_Sample(2 * i), _Sample(2 * i + 1)])
    issue_s = time.perf_counter() - t0
    assert issue_s < 0.02, f"IssueQuery blocked for {issue_s * 1e3:.1f} ms (backend needs 300 ms)"
    assert ev.wait(5)
    assert sorted(s for s, _ in done) == list(range(1000, 1006))
    assert all(r == b"\x01\x02\x03\x04" for _, r in done)
    sut.close()


def test_backend_errors_still_complete_the_sample():
    class Broken(Backend):
        def submit(self, index, data, issued_ns=None):
            f = Future()
            f.set_exception(RuntimeError("device on fire"))
            return f

    got = []
    sut = SUT(Broken(), _qsl(), complete=lambda sid, r: got.append((sid, r)))
    sut.issue_query([_Sample(0)])
    for _ in range(100):
        if got:
            break
        time.sleep(0.01)
    assert got == [(1000, b"")] and "device on fire" in sut.errors[0]
    sut.close()


def test_dispatch_overhead_is_small():
    # Goal 50 us per query; generous bound for a loaded 2-core CI machine.
    assert measure_dispatch_overhead(200) < 500e-6
    assert NullBackend().submit(0, None).result() == bytes(4)

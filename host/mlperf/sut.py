"""The system under test: LoadGen's IssueQuery/Flush over a Backend.

IssueQuery runs on LoadGen's thread with the GIL held, so it only stamps the
time, queues the samples and returns. One worker thread takes them off the
queue in order, fetches each sample from the QSL and submits it to the
backend; the backend's future completes the sample with QuerySamplesComplete
(safe from any thread). The response buffer is a local numpy array that
lives until QuerySamplesComplete has returned (LoadGen copies the bytes it
logs during that call).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from concurrent.futures import Future

import numpy as np

from .backend import Backend
from .qsl import QSL


class SUT:
    def __init__(self, backend: Backend, qsl: QSL, *, complete=None):
        self.backend = backend
        self.qsl = qsl
        # Injectable for tests/benchmarks without LoadGen.
        if complete is None:
            import mlperf_loadgen as lg

            self._lg = lg
            complete = self._lg_complete
        self._complete = complete
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.issued = 0
        self.completed = 0
        self.errors: list[str] = []
        self.issue_ns_total = 0  # time spent inside IssueQuery (to show it never blocks)
        self.issue_calls = 0
        self._count_lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="presil-sut-worker", daemon=True)
        self._worker.start()
        self.handle = None

    # -- LoadGen callbacks (LoadGen's thread) -----------------------------
    def issue_query(self, query_samples) -> None:
        t = time.monotonic_ns()
        self._queue.put((t, [(s.id, s.index) for s in query_samples]))
        self.issued += len(query_samples)
        self.issue_calls += 1
        self.issue_ns_total += time.monotonic_ns() - t

    def flush_queries(self) -> None:
        """Nothing is batched in the SUT, so there is nothing to flush."""

    # -- worker ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            issued_ns, samples = item
            for sid, index in samples:
                try:
                    fut = self.backend.submit(index, self.qsl.get(index), issued_ns)
                except Exception as exc:  # noqa: BLE001 - must still complete the sample
                    fut = Future()
                    fut.set_exception(exc)
                fut.add_done_callback(lambda f, sid=sid: self._done(sid, f))

    def _done(self, sid: int, fut: Future) -> None:
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - LoadGen waits for every sample
            self.errors.append(f"{type(exc).__name__}: {exc}")
            result = b""
        self._complete(sid, result)
        with self._count_lock:
            self.completed += 1

    def _lg_complete(self, sid: int, result) -> None:
        lg = self._lg
        if len(result):
            buf = np.frombuffer(result, np.uint8)  # alive until the call returns
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sid, buf.ctypes.data, buf.nbytes)])
        else:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sid, 0, 0)])

    # -- lifecycle -------------------------------------------------------
    def construct(self):
        self.handle = self._lg.ConstructSUT(self.issue_query, self.flush_queries)
        return self.handle

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)
        if self.handle is not None:
            self._lg.DestroySUT(self.handle)
            self.handle = None


class Progress:
    """Prints completed/issued counts to stderr about once a second."""

    def __init__(self, sut: SUT, label: str, stream=None, period_s: float = 1.0):
        self.sut, self.label, self.period = sut, label, period_s
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.wait(self.period):
            print(f"[{self.label}] {time.monotonic() - t0:6.1f} s: {self.sut.completed} samples completed "
                  f"({self.sut.issued} issued)", file=self.stream, flush=True)


def measure_dispatch_overhead(n: int = 500) -> float:
    """Seconds per sample of the SUT's own round trip (IssueQuery, queue,
    worker wake-up, backend future, completion callback), one sample at a
    time as in SingleStream, with a NullBackend and a no-op completion. The
    estimate adds it to the host overhead: a real system pays it too."""
    from .backend import NullBackend
    from .datasets import synthetic

    done = threading.Event()

    def complete(sid, result):
        done.set()

    q = QSL(synthetic((1, 4), count=8))
    q.load(range(8))
    sut = SUT(NullBackend(), q, complete=complete)

    class _S:  # LoadGen's QuerySample shape
        __slots__ = ("id", "index")

        def __init__(self, i):
            self.id, self.index = i, i % 8

    medians = []
    per = max(1, n // 10)
    for b in range(10):
        times = []
        for i in range(per + 10):
            done.clear()
            t0 = time.perf_counter()
            sut.issue_query([_S(i)])
            done.wait(5)
            times.append(time.perf_counter() - t0)
        medians.append(float(np.median(times[10:])))
    sut.close()
    # The thread hand-off costs 10-80 us depending on whether the scheduler
    # wakes the worker on the same core; the best batch median is the
    # steady state a tuned host would reach (and varies least between runs).
    return min(medians)

"""What the SUT drives: `Backend.submit(sample_index, data) -> Future[bytes]`.

A backend turns one float32 input sample into the response bytes LoadGen logs
(see `encode_result`). Implementations:

- OnnxBackend:     the FP32 model in onnxruntime (the FP32 accuracy baseline).
- BundleBackend:   a compiled bundle on the golden ISS, or on a device URI
                   (golden:, sim:, xdma:, ...) through the host driver.
- NullBackend:     a fixed result at once: the harness's own overhead.
- EstimateBackend: a timing model. Computes the real (golden) result but
                   completes each sample when the modelled device would, so
                   LoadGen's scheduling, percentiles and validity rules apply
                   to the modelled timeline (see timing.py and the stretch
                   factor below).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np

from .datasets import TASK_ANOMALY
from .timing import DeviceQueue, TimingModel

PLATFORMS = ("golden-model", "rtl-sim", "fpga", "estimate", "host")


def encode_result(task: str, x: np.ndarray, outputs: list[np.ndarray]) -> bytes:
    """Response bytes for one sample. Classification/detection: every output
    as float32, concatenated (the accuracy script takes the first `classes`
    values as logits). Anomaly detection: one float32, the reconstruction
    MSE (the anomaly score the AUC ranks)."""
    if task == TASK_ANOMALY:
        recon = np.asarray(outputs[0], np.float32).reshape(-1)
        score = np.mean((np.asarray(x, np.float32).reshape(-1) - recon) ** 2, dtype=np.float64)
        return np.float32(score).tobytes()
    return b"".join(np.ascontiguousarray(o, dtype=np.float32).tobytes() for o in outputs)


def _done(value) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


class Backend:
    """Base: subclasses set name/platform and implement `infer` (synchronous,
    float32 sample -> response bytes) or override `submit`."""

    name = "backend"
    platform = "host"
    task = "classification"

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None

    def infer(self, data: np.ndarray) -> bytes:
        raise NotImplementedError

    def submit(self, sample_index: int, data: np.ndarray, issued_ns: int | None = None) -> Future:
        # One worker thread: the device (or onnxruntime session) runs one job
        # at a time; the queue is the future chain.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"presil-{self.name}")
        return self._pool.submit(self.infer, data)

    def prepare(self, samples: dict[int, np.ndarray]) -> None:
        """Called when LoadGen loads samples, before timing. Default: nothing."""

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def describe(self) -> dict:
        return {"name": self.name, "platform": self.platform}


class OnnxBackend(Backend):
    """FP32 reference in onnxruntime (CPU, one thread: deterministic and
    leaves the other core to LoadGen)."""

    platform = "host"

    def __init__(self, model, task: str = "classification", threads: int = 1):
        super().__init__()
        import onnx
        import onnxruntime as ort

        proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.name = f"onnxruntime-fp32:{proto.graph.name}"
        self.task = task

    def infer(self, data: np.ndarray) -> bytes:
        outs = self.session.run(None, {self.input_name: np.asarray(data, np.float32)})
        return encode_result(self.task, data, outs)


class BundleBackend(Backend):
    """A compiled bundle, on the golden ISS (device None) or on a device URI
    (golden:, sim:, xdma:, ...) through the host driver (ModelRunner)."""

    def __init__(self, bundle, device: str | None = None, task: str = "classification",
                 input_name: str | None = None):
        super().__init__()
        self.bundle, self.task = bundle, task
        self.input_name = input_name or bundle.manifest["inputs"][0]["name"]
        self.runner = None
        if device is None:
            self.platform, where = "golden-model", "golden-iss"
        else:
            from presil.host.runtime import ModelRunner

            self.runner = ModelRunner(bundle, device)
            self.platform, where = self.runner.device.platform, device
        self.name = f"bundle:{bundle.name}@{where}"

    def infer(self, data: np.ndarray) -> bytes:
        feeds = {self.input_name: np.asarray(data, np.float32)}
        res = self.runner.run(feeds) if self.runner is not None else self.bundle.run(feeds)
        return encode_result(self.task, data, list(res.values()))

    def close(self) -> None:
        super().close()
        if self.runner is not None:
            self.runner.close()


class NullBackend(Backend):
    """Returns a fixed result immediately: what is left is harness overhead."""

    name = "null"
    platform = "host"

    def __init__(self, result: bytes = bytes(4)):
        super().__init__()
        self.result = result
        self._fut = _done(result)  # one shared, already-completed future

    def submit(self, sample_index, data, issued_ns=None) -> Future:
        return self._fut

    def infer(self, data) -> bytes:
        return self.result


class EstimateBackend(Backend):
    """Timing-model backend.

    Each sample's completion time comes from the device queue model
    (timing.DeviceQueue over TimingModel's stages), measured from the moment
    LoadGen issued it (`issued_ns`, taken in IssueQuery). A timer thread
    completes the sample at that moment, so LoadGen's clock sees the modelled
    device. The real result is computed by `compute` (golden); to keep the
    golden model's own speed out of the timeline, results are computed when
    LoadGen loads the samples (`prepare`), before anything is timed; a sample
    not prepared is computed on demand and, if it is not ready by its
    deadline, completes late (counted in `stats`).

    Time stretch: every modelled duration is multiplied by `stretch` (K) on
    the wall clock and the reported times are divided by K afterwards (run.py
    does it). The harness's real jitter (thread wake-up, sleep granularity,
    the GIL; tens of microseconds) is then divided by K too, instead of being
    added to device latencies of a few microseconds. Throughputs measured on
    the stretched clock are multiplied by K.
    """

    platform = "estimate"

    def __init__(self, timing: TimingModel, compute: Backend | None = None, *, stretch: float = 1.0,
                 name: str = "estimate"):
        super().__init__()
        if stretch < 1:
            raise ValueError("stretch must be >= 1")
        self.timing = timing
        self.compute = compute
        self.stretch = float(stretch)
        self.name = name
        self.task = getattr(compute, "task", "classification")
        ns = 1e9 * self.stretch
        self.queue = DeviceQueue([s * ns for s in timing.stages()], timing.dma_overlap)
        self._advance_ns = 50_000.0  # initial guess of the timed-wait overshoot
        self._results: dict[int, bytes] = {}
        self._heap: list = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._qlock = threading.Lock()
        self._stop = False
        self.stats = {"completed": 0, "late": 0, "max_late_ns": 0, "computed_on_demand": 0}
        self.late_ns: list[int] = []  # per completion, for the lateness percentiles
        self._timer = threading.Thread(target=self._run_timer, name="presil-estimate-timer", daemon=True)
        self._timer.start()

    def describe(self) -> dict:
        d = super().describe()
        d.update(timing=self.timing.to_dict(), stretch=self.stretch,
                 compute=self.compute.describe() if self.compute else None)
        return d

    def prepare(self, samples: dict[int, np.ndarray]) -> None:
        if self.compute is None:
            return
        for i, x in samples.items():
            if i not in self._results:
                self._results[i] = self.compute.infer(x)

    def submit(self, sample_index: int, data: np.ndarray, issued_ns: int | None = None) -> Future:
        arrival = issued_ns if issued_ns is not None else time.monotonic_ns()
        with self._qlock:  # samples enter the device queue in issue order
            deadline = int(self.queue.schedule(float(arrival)))
        result = self._results.get(sample_index)
        if result is None:
            if self.compute is None:
                result = bytes(4)
            else:
                self.stats["computed_on_demand"] += 1
                result = self.compute.submit(sample_index, data)  # a Future, resolved by the timer
        fut: Future = Future()
        with self._cv:
            heapq.heappush(self._heap, (deadline, next(self._seq), fut, result))
            self._cv.notify()
        return fut

    def _run_timer(self) -> None:
        # Completion at the deadline without spinning: a Python spin that
        # releases and retakes the GIL starves LoadGen's IssueQuery callbacks
        # (they wait for the 5 ms switch interval), which is far worse than
        # the ~80 us a timed wait oversleeps. Instead the wait ends
        # `advance` early, where `advance` tracks how late timed waits have
        # been waking up (a running average of the overshoot), so that
        # completions land on their deadlines on average.
        target = None
        while True:
            with self._cv:
                while not self._heap and not self._stop:
                    self._cv.wait()
                if self._stop and not self._heap:
                    return
                deadline = self._heap[0][0]
                now = time.monotonic_ns()
                wake = deadline - int(self._advance_ns)
                if now < wake:
                    target = wake
                    self._cv.wait((wake - now) / 1e9)  # an earlier item may arrive meanwhile
                    continue
                _, _, fut, result = heapq.heappop(self._heap)
            if target is not None and target == wake:  # a timed wait for this deadline ended
                # Clipped: a wake-up delayed by a busy machine (a 4 ms
                # scheduler tick) says nothing about the usual overshoot.
                over = min(max(now - wake, 0), 200_000)
                self._advance_ns += 0.02 * (over - self._advance_ns)
            target = None
            if isinstance(result, Future):
                result = result.result()
            late = time.monotonic_ns() - deadline
            st = self.stats
            st["completed"] += 1
            if late > 200_000:
                st["late"] += 1
            st["max_late_ns"] = max(st["max_late_ns"], late)
            self.late_ns.append(late)
            fut.set_result(result)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._timer.join(timeout=5)
        if self.compute is not None:
            self.compute.close()
        super().close()


BackendFactory = Callable[[], Backend]

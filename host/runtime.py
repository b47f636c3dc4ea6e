"""Running a program many times: `Runner.run(inputs)` (sync) and
`Runner.submit(inputs) -> Future` (a queue served by one worker thread that owns
the device; results come back in submission order). The queue keeps two copies
of the program resident and writes request i+1's inputs while request i runs,
so transfers overlap compute on devices that run asynchronously."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from presil.golden.program import Program, TensorRole
from presil.host.driver import Device, LoadedProgram

_STOP = object()


class Runner:
    def __init__(self, device: Device, program: Program, *, slots: int = 2, timeout: float = 10.0):
        self.device, self.program, self.timeout = device, program, timeout
        self.slots: list[LoadedProgram] = [device.load(program) for _ in range(max(1, slots))]
        self._outputs = [t.name for t in program.tensors if t.role == TensorRole.OUTPUT]
        self._q: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()  # the sync API and the worker never drive the device together
        self.completed = 0

    # -- sync -------------------------------------------------------------------------
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self.device.run(self.slots[0], inputs, self.timeout)

    # -- async ------------------------------------------------------------------------
    def submit(self, inputs: dict[str, np.ndarray]) -> Future:
        fut: Future = Future()
        if self._worker is None:
            self._worker = threading.Thread(target=self._serve, name="presil-runner", daemon=True)
            self._worker.start()
        self._q.put((inputs, fut))
        return fut

    def _serve(self) -> None:
        inflight = None  # (slot, future) of the program running on the device
        k = 0
        while True:
            item = self._q.get() if inflight is None else self._get_nowait_or_block(inflight)
            if item is _STOP:
                if inflight is not None:
                    self._finish(*inflight)
                return
            if item is None:  # queue empty: finish the running request first
                self._finish(*inflight)
                inflight = None
                continue
            inputs, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            lp = self.slots[k % len(self.slots)]
            k += 1
            with self._lock:
                try:
                    for name, x in inputs.items():  # overlaps the running request's compute
                        self.device.write_tensor(lp, name, x)
                except BaseException as e:
                    fut.set_exception(e)
                    continue
            if inflight is not None:
                self._finish(*inflight)
                inflight = None
            with self._lock:
                try:
                    self.device.submit(lp)
                    inflight = (lp, fut)
                except BaseException as e:
                    fut.set_exception(e)

    def _get_nowait_or_block(self, inflight):
        try:
            return self._q.get_nowait()
        except queue.Empty:
            return None

    def _finish(self, lp: LoadedProgram, fut: Future) -> None:
        with self._lock:
            try:
                self.device.wait(self.timeout)
                fut.set_result({n: self.device.read_tensor(lp, n) for n in self._outputs})
                self.completed += 1
            except BaseException as e:
                fut.set_exception(e)

    def close(self) -> None:
        """Drain the queue, stop the worker, free the device memory."""
        if self._worker is not None:
            self._q.put(_STOP)
            self._worker.join()
            self._worker = None
        for lp in self.slots:
            self.device.unload(lp)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class ModelRunner:
    """A compiled model (presil.host.compiler Bundle) on a device: its NPU
    segments run through the driver (one Runner per program, loaded once),
    its host segments in onnxruntime. `run` is synchronous; `submit` queues a
    request on one worker thread and returns a Future (results in order)."""

    def __init__(self, bundle, device: Device | str, *, timeout: float = 30.0):
        self.bundle = bundle
        self._own_device = not isinstance(device, Device)
        self.device = Device.open(device) if self._own_device else device
        self.runners: dict[int, Runner] = {}
        self._pool = None
        try:
            for i, prog in bundle.programs.items():
                self.runners[i] = Runner(self.device, prog, slots=1, timeout=timeout)
        except BaseException:
            self.close()
            raise

    def _execute(self, index: int, program: Program, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runners[index].run(feeds)

    def run(self, inputs) -> dict[str, np.ndarray]:
        """Float NCHW inputs -> {ONNX output name: float array}, as Bundle.run."""
        return self.bundle.run(inputs, npu_executor=self._execute)

    def submit(self, inputs) -> Future:
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="presil-model")
        return self._pool.submit(self.run, inputs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for r in self.runners.values():
            r.close()
        if self._own_device:
            self.device.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

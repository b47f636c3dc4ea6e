"""The query sample library: LoadGen's view of a dataset.

LoadGen calls `load` / `unload` with sample indices before and after it times
anything; loaded samples stay in host memory so that the timed path never
touches the disk or the preprocessing. In accuracy mode LoadGen loads the
dataset in chunks of the performance sample count, so `load` is called
several times.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable

import numpy as np

from .datasets import Dataset


class QSL:
    """Samples of `dataset` in memory while loaded.

    on_load: optional hook called with {index: sample} after each load, before
    LoadGen starts issuing (the estimate backend uses it to compute golden
    results ahead of the timed path).
    """

    def __init__(self, dataset: Dataset, performance_count: int | None = None,
                 on_load: Callable[[dict[int, np.ndarray]], None] | None = None):
        self.dataset = dataset
        self.total_count = len(dataset)
        # The performance set must fit in memory; for the small sets we use,
        # the whole set is the natural choice.
        self.performance_count = min(performance_count or self.total_count, self.total_count)
        self.on_load = on_load
        self._samples: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.load_calls = 0
        self.handle = None

    # -- LoadGen callbacks ----------------------------------------------
    def load(self, indices: Iterable[int]) -> None:
        new = {int(i): self.dataset.load(int(i)) for i in indices}
        with self._lock:
            self._samples.update(new)
            self.load_calls += 1
        if self.on_load is not None:
            self.on_load(new)

    def unload(self, indices: Iterable[int]) -> None:
        with self._lock:
            for i in indices:
                self._samples.pop(int(i), None)

    # -- the SUT's access ----------------------------------------------
    def get(self, index: int) -> np.ndarray:
        try:
            return self._samples[index]
        except KeyError:
            raise KeyError(f"sample {index} is not loaded (LoadGen did not load it)") from None

    def __len__(self) -> int:
        return len(self._samples)

    # -- LoadGen handle ----------------------------------------------------
    def construct(self):
        import mlperf_loadgen as lg

        self.handle = lg.ConstructQSL(self.total_count, self.performance_count, self.load, self.unload)
        return self.handle

    def destroy(self) -> None:
        if self.handle is not None:
            import mlperf_loadgen as lg

            lg.DestroyQSL(self.handle)
            self.handle = None

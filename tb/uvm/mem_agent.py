"""Device-memory agent: the DPI memory model (presil.tb.memory.AxiMem) seen as
whole tensors. Backdoor load/dump (one memcpy each, no Python per beat),
per-test timing (latency, seeded back-pressure) and the AXI4 protocol check
(the C++ model counts burst-rule violations as they happen)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyuvm import uvm_component

from presil.tb.memory import AxiMem


@dataclass(frozen=True)
class MemConfig:
    rd_latency: int = 1
    wr_latency: int = 1
    stall: float = 0.0      # probability per cycle that the slave withholds a ready/valid
    seed: int = 1

    @property
    def backpressure(self) -> bool:
        return self.stall > 0 or self.rd_latency > 1 or self.wr_latency > 1


class MemAgent(uvm_component):
    def build_phase(self):
        self.mem: AxiMem | None = None
        self.config = MemConfig()

    def bind(self) -> None:
        self.mem = AxiMem()      # only resolvable inside the simulator process

    def configure(self, cfg: MemConfig) -> None:
        self.config = cfg
        self.mem.configure(cfg.rd_latency, cfg.wr_latency, cfg.stall, cfg.seed)

    def load(self, addr: int, data) -> None:
        self.mem.write(addr, data)

    def dump(self, addr: int, n: int) -> np.ndarray:
        return self.mem.read(addr, n)

    def error_range(self, lo: int | None = None, hi: int | None = None) -> None:
        if lo is None:
            self.mem.error_range()
        else:
            self.mem.error_range(lo, hi)

    def violations(self) -> int:
        return int(self.mem.violations())

    def beats(self) -> tuple[int, int]:
        return int(self.mem.beats(0)), int(self.mem.beats(1))

"""The program sequence item: a golden Program + its inputs + how to run it, and
what the driver observed (filled in after the run)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyuvm import uvm_sequence_item

from presil.golden.layout import pack_activation
from presil.golden.program import Program, TensorRole
from presil.tb.uvm.mem_agent import MemConfig


@dataclass
class Observed:
    status: int = 0
    err_code: int = 0
    err_pc: int = 0
    err_addr: int = 0
    irq: int = 0
    timed_out: bool = False
    perf: dict = field(default_factory=dict)     # BUSY_CYCLES, MAC_ACTIVE_CYCLES, DMA_RD_BYTES, ...
    window: np.ndarray | None = None              # the DMA window after the run
    violations: int = 0


class ProgramItem(uvm_sequence_item):
    """name: label in reports; capture: also compare every intermediate tensor
    (and localise a mismatch through the ISS's per-instruction capture);
    mem: device-memory timing; image_seed: the window's bytes outside the
    constants and inputs are seeded junk, so a read of never-written memory
    shows up; expect_error: the error code when the ISS cannot model it
    (a watchdog expiry, a bus error); error_range: device-memory byte range answering SLVERR
    (relative to the window); watchdog: WATCHDOG register value."""

    def __init__(self, name: str, program: Program, inputs: dict[str, np.ndarray] | None = None, *,
                 capture: bool = True, mem: MemConfig | None = None, image_seed: int = 7,
                 error_range: tuple[int, int] | None = None, watchdog: int = 0, meta: dict | None = None,
                 expect_error: str | None = None):
        super().__init__(name)
        self.program = program
        self.inputs = dict(inputs or {})
        self.capture = capture
        self.mem = mem or MemConfig()
        self.image_seed = image_seed
        self.error_range = error_range
        self.watchdog = watchdog
        self.expect_error = expect_error  # ErrorCode name, for errors the ISS does not model
        self.meta = dict(meta or {})    # e.g. the model layer this program was cut from
        self.observed: Observed | None = None

    def image(self) -> np.ndarray:
        """The DMA window before the run: junk, then constants and inputs placed
        exactly as presil.golden.iss.run places them."""
        p = self.program
        win = np.random.default_rng(self.image_seed).integers(0, 256, p.dram_size, dtype=np.uint8)
        win[p.const_dram_offset: p.const_dram_offset + len(p.const)] = np.frombuffer(p.const, np.uint8)
        for t in p.tensors:
            if t.role == TensorRole.INPUT and t.name in self.inputs:
                win[t.dram_offset: t.dram_offset + t.size_bytes] = pack_activation(
                    np.asarray(self.inputs[t.name], np.int8).reshape(t.shape), p.rows)
        return win

    def __str__(self) -> str:
        return f"{self.get_name()} ({len(self.program.instructions)} instructions)"

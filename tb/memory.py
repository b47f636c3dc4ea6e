"""Python side of the simulated device memory (rtl/sim/axi_mem.sv + axi_mem_dpi.cpp).

The memory lives in C++ inside the simulator process; its backdoor functions
are exported from the simulator executable (built with ``-Wl,--export-dynamic``)
and called here through ctypes, so moving a tensor is one memcpy, not a VPI
call per word. Only usable from a cocotb test running in that process.

    mem = AxiMem()
    mem.write(0x1000, np.arange(64, dtype=np.uint8))    # or bytes
    data = mem.read(0x1000, 64)                          # -> np.ndarray uint8
    mem.configure(rd_latency=8, wr_latency=4, stall=0.3, seed=1)
    mem.error_range(0x2000, 0x3000)                      # SLVERR there
"""

from __future__ import annotations

import ctypes

import numpy as np

_U64 = ctypes.c_uint64


class AxiMemError(RuntimeError):
    """The DPI backdoor is missing or an access is out of range."""


class AxiMem:
    def __init__(self) -> None:
        lib = ctypes.CDLL(None)          # the simulator executable itself
        try:
            self._write = lib.axi_mem_write
            self._read = lib.axi_mem_read
            self._fill = lib.axi_mem_fill
            self._config = lib.axi_mem_config
            self._err = lib.axi_mem_error_range
            size = lib.axi_mem_size
            self._beats = lib.axi_mem_beats
            self._viol = lib.axi_mem_violations
        except AttributeError as e:
            raise AxiMemError("axi_mem DPI functions not found in the simulator: build with "
                              "rtl/sim/axi_mem_dpi.cpp and -LDFLAGS -Wl,--export-dynamic") from e
        self._write.argtypes = [_U64, ctypes.c_void_p, _U64]
        self._read.argtypes = [_U64, ctypes.c_void_p, _U64]
        self._fill.argtypes = [ctypes.c_uint8]
        self._config.argtypes = [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, _U64]
        self._err.argtypes = [_U64, _U64]
        size.restype = _U64
        self._beats.restype = _U64
        self._beats.argtypes = [ctypes.c_int]
        self._viol.restype = _U64
        self.size = int(size())

    def write(self, addr: int, data) -> None:
        """Copy bytes (a numpy array of any dtype, bytes, bytearray) to `addr`."""
        buf = np.ascontiguousarray(np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray))
                                   else np.asarray(data).reshape(-1).view(np.uint8))
        if self._write(addr, buf.ctypes.data, buf.size):
            raise AxiMemError(f"write of {buf.size} bytes at 0x{addr:x} leaves the {self.size}-byte memory")

    def read(self, addr: int, n: int) -> np.ndarray:
        out = np.empty(n, np.uint8)
        if self._read(addr, out.ctypes.data, n):
            raise AxiMemError(f"read of {n} bytes at 0x{addr:x} leaves the {self.size}-byte memory")
        return out

    def fill(self, value: int = 0) -> None:
        self._fill(value & 0xFF)

    def configure(self, rd_latency: int = 1, wr_latency: int = 1, stall: float = 0.0, seed: int = 1) -> None:
        """Read latency (AR accepted -> first R beat), write latency (last W
        beat -> B), and the probability per cycle that the slave withholds a
        ready/valid it controls (seeded, reproducible)."""
        if not 0.0 <= stall < 1.0:
            raise ValueError("stall must be in [0, 1)")
        self._config(max(1, rd_latency), max(1, wr_latency), int(stall * 1_000_000), seed)

    def error_range(self, lo: int = 1, hi: int = 0) -> None:
        """Answer SLVERR for beats in [lo, hi) (writes there are dropped); no
        arguments: no error range."""
        self._err(lo, hi)

    def beats(self, write: bool) -> int:
        """Data beats transferred so far (reads or writes)."""
        return int(self._beats(1 if write else 0))

    def violations(self) -> int:
        """AXI rule breaks seen so far: a burst over 16 beats or across a 4 KiB
        boundary, WLAST not on the last beat of its burst."""
        return int(self._viol())

"""First-fit allocator of device memory: the driver hands each program a
contiguous, aligned region (its DMA window) and a place for its instructions."""

from __future__ import annotations

import threading

from presil.host.errors import DmaWindowError


class DeviceMemory:
    """Allocations in [base, base + size). Addresses are device byte addresses."""

    def __init__(self, base: int, size: int):
        if size <= 0:
            raise ValueError(f"device memory size must be positive, got {size}")
        self.base, self.size = base, size
        self._free: list[tuple[int, int]] = [(base, size)]  # (addr, size), sorted, coalesced
        self._used: dict[int, tuple[int, str]] = {}  # addr -> (size, what)
        self._lock = threading.Lock()

    def alloc(self, size: int, align: int = 4096, what: str = "buffer") -> int:
        if size <= 0:
            raise ValueError(f"{what}: allocation size must be positive, got {size}")
        if align <= 0 or align & (align - 1):
            raise ValueError(f"{what}: alignment {align} is not a power of two")
        with self._lock:
            for i, (addr, n) in enumerate(self._free):
                start = -(-addr // align) * align
                if start + size <= addr + n:
                    pieces = [(addr, start - addr), (start + size, addr + n - start - size)]
                    self._free[i: i + 1] = [p for p in pieces if p[1] > 0]
                    self._used[start] = (size, what)
                    return start
            largest = max((n for _, n in self._free), default=0)
            raise DmaWindowError(
                f"out of device memory: {what} needs {size} bytes aligned to {align}; "
                f"{self.free_bytes()} of {self.size} bytes free, largest free block {largest} bytes")

    def free(self, addr: int) -> None:
        with self._lock:
            if addr not in self._used:
                raise ValueError(f"free of 0x{addr:x}: not an allocated address (double free?)")
            size, _ = self._used.pop(addr)
            self._free.append((addr, size))
            self._free.sort()
            merged: list[tuple[int, int]] = []
            for a, n in self._free:
                if merged and merged[-1][0] + merged[-1][1] == a:
                    merged[-1] = (merged[-1][0], merged[-1][1] + n)
                else:
                    merged.append((a, n))
            self._free = merged

    def free_bytes(self) -> int:
        return sum(n for _, n in self._free)

    def allocations(self) -> dict[int, tuple[int, str]]:
        with self._lock:
            return dict(self._used)

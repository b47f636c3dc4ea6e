"""Async register model: the generated register map (presil.host.regs.regmap_info)
bound to an async 32-bit access function.

The peakrdl-python layer in presil.host.regs was generated with synchronous
callbacks, and a cocotb bus access must be awaited, so this thin adapter
takes the same tables (offsets, fields) and exposes read/write by name.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from presil.host.regs import regmap_info

ReadFn = Callable[[int], Awaitable[int]]
WriteFn = Callable[[int, int], Awaitable[None]]


class RegModel:
    def __init__(self, read32: ReadFn, write32: WriteFn):
        self._rd, self._wr = read32, write32
        self.map = regmap_info.REGISTERS

    def _reg(self, name: str):
        try:
            return self.map[name]
        except KeyError:
            raise KeyError(f"no register {name!r} in the register map") from None

    async def read(self, name: str) -> int:
        return await self._rd(self._reg(name).offset)

    async def write(self, name: str, value: int) -> None:
        await self._wr(self._reg(name).offset, value & 0xFFFF_FFFF)

    async def read_fields(self, name: str) -> dict[str, int]:
        v = await self.read(name)
        return {f.name: (v >> f.lsb) & ((1 << f.width) - 1) for f in self._reg(name).fields}

    async def write_fields(self, name: str, **fields: int) -> None:
        r = self._reg(name)
        by_name = {f.name: f for f in r.fields}
        v = 0
        for k, x in fields.items():
            f = by_name[k]
            v |= (int(x) & ((1 << f.width) - 1)) << f.lsb
        await self.write(name, v)

    async def read64(self, counter: str) -> int:
        """A 64-bit PERF_* counter: hi, lo, hi again, so a carry between the
        two halves is never seen torn."""
        while True:
            hi = await self.read(f"PERF_{counter}_HI")
            lo = await self.read(f"PERF_{counter}_LO")
            if await self.read(f"PERF_{counter}_HI") == hi:
                return hi << 32 | lo

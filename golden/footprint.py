"""What each instruction touches: its SRAM word sets and DMA byte rows, plus the
static (data-independent) field checks that isa.toml's descriptions imply.

Shared by the program validator, the builder (minimum depths, window size) and
the ISS (bounds, race tracking), so the three agree on one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from presil.golden.arith import Q31_MIN
from presil.golden.device_errors import ErrorCode, IsaError
from presil.golden.isa import ISA, DecodedInstr


@dataclass(frozen=True)
class SramAccess:
    mem: str  # ACT, WGT, PAR, ACC
    write: bool
    lo: int  # smallest word touched
    hi: int  # largest word touched
    build: object  # () -> np.ndarray of word indices (built lazily: can be big)

    def words(self) -> np.ndarray:
        return self.build()


@dataclass(frozen=True)
class DmaRows:
    write: bool  # True: writes device memory (STORE)
    offset: int
    stride: int
    count: int
    row_bytes: int

    @property
    def end(self) -> int:
        """One past the last byte touched."""
        return self.offset + (self.count - 1) * self.stride + self.row_bytes

    @property
    def nbytes(self) -> int:
        return self.count * self.row_bytes


def _strided(addr: int, stride: int, count: int, width: int) -> tuple:
    """(lo, hi, build) of count rows of width words, stride apart."""
    hi = addr + (count - 1) * stride + width - 1

    def build() -> np.ndarray:
        if count == 1 or stride <= width:  # rows touch or overlap: one contiguous range
            return np.arange(addr, hi + 1, dtype=np.int64)
        return np.add.outer(addr + stride * np.arange(count, dtype=np.int64),
                            np.arange(width, dtype=np.int64)).ravel()

    return addr, hi, build


def _window_lines(out_n: int, stride: int, k: int, pad: int, size: int) -> np.ndarray:
    """Input rows (or columns) that some output window reads inside the tile."""
    lines = np.add.outer(np.arange(out_n, dtype=np.int64) * stride, np.arange(k, dtype=np.int64)) - pad
    lines = np.unique(lines)
    return lines[(lines >= 0) & (lines < size)]


def _tile_read(addr: int, in_h: int, in_w: int, in_cb: int, cb0: int, ncb: int,
               f: Mapping[str, int], k_h: int, k_w: int):
    rows = _window_lines(f["out_h"], f["stride_h"], k_h, f["pad_t"], in_h)
    cols = _window_lines(f["out_w"], f["stride_w"], k_w, f["pad_l"], in_w)
    if rows.size == 0 or cols.size == 0:
        return None
    lo = addr + (int(rows[0]) * in_w + int(cols[0])) * in_cb + cb0
    hi = addr + (int(rows[-1]) * in_w + int(cols[-1])) * in_cb + cb0 + ncb - 1

    def build() -> np.ndarray:
        pix = (rows[:, None] * in_w + cols[None, :]).ravel() * in_cb
        return (addr + pix[:, None] + cb0 + np.arange(ncb, dtype=np.int64)[None, :]).ravel()

    return lo, hi, build


def sram_accesses(d: DecodedInstr, rows: int, cols: int) -> list[SramAccess]:
    """Every SRAM access of an instruction (reads before writes)."""
    f = d.fields
    out: list[tuple[str, bool, tuple | None]] = []
    if d.name in ("LOAD", "STORE"):
        mem = ISA.memory_by_id(f["mem"]).name
        out.append((mem, d.name == "LOAD", _strided(f["sram_addr"], f["sram_stride"], f["y_count"], f["x_words"])))
    elif d.name == "GEMM":
        out.append(("ACT", False, _tile_read(f["in_addr"], f["in_h"], f["in_w"], f["in_cb"], f["cb_start"],
                                             f["cb_count"], f, f["k_h"], f["k_w"])))
        n_tiles = f["k_h"] * f["k_w"] * f["cb_count"]
        out.append(("WGT", False, _strided(f["wgt_addr"], 1, 1, n_tiles * rows)))
        acc = _strided(f["acc_addr"], 1, 1, f["out_h"] * f["out_w"])
        if f["accumulate"]:
            out.append(("ACC", False, acc))
        out.append(("ACC", True, acc))
    elif d.name == "POST":
        out.append(("ACC", False, _strided(f["acc_addr"], 1, 1, f["count"])))
        out.append(("PAR", False, _strided(f["par_addr"], 1, 1, 3)))
        out.append(("ACT", True, _strided(f["out_addr"], f["out_stride"], f["count"], 1)))
    elif d.name == "ADD":
        out.append(("ACT", False, _strided(f["a_addr"], 1, 1, f["count"])))
        out.append(("ACT", False, _strided(f["b_addr"], 1, 1, f["count"])))
        out.append(("ACT", True, _strided(f["out_addr"], 1, 1, f["count"])))
    elif d.name == "POOL":
        out.append(("ACT", False, _tile_read(f["in_addr"], f["in_h"], f["in_w"], f["in_cb"], 0, f["in_cb"],
                                             f, f["k_h"], f["k_w"])))
        out.append(("ACT", True, _strided(f["out_addr"], 1, 1, f["out_h"] * f["out_w"] * f["in_cb"])))
    return [SramAccess(m, w, *t) for m, w, t in out if t is not None]


def dma_rows(d: DecodedInstr, rows: int, cols: int) -> DmaRows | None:
    """The device-memory rows a LOAD reads or a STORE writes."""
    if d.name not in ("LOAD", "STORE"):
        return None
    f = d.fields
    wb = ISA.memory_by_id(f["mem"]).word_bytes(rows, cols)
    return DmaRows(d.name == "STORE", f["dram_offset"], f["dram_stride"], f["y_count"], f["x_words"] * wb)


def _bad(d: DecodedInstr, msg: str) -> IsaError:
    return IsaError(ErrorCode.BAD_FIELD, f"{d.name}: {msg}")


def check_static(d: DecodedInstr, rows: int, cols: int, depths: Mapping[str, int] | None = None) -> None:
    """Raise IsaError(BAD_FIELD) for field combinations isa.toml forbids and, if
    depths are given, for SRAM accesses beyond a memory's depth."""
    f = d.fields
    if d.name in ("LOAD", "STORE"):
        wb = ISA.memory_by_id(f["mem"]).word_bytes(rows, cols)
        for k in ("dram_offset", "dram_stride"):
            if f[k] % wb:
                raise _bad(d, f"{k} = {f[k]} is not a multiple of the {wb}-byte word")
    if d.name == "GEMM" and f["cb_start"] + f["cb_count"] > f["in_cb"]:
        raise _bad(d, f"cb_start + cb_count = {f['cb_start'] + f['cb_count']} > in_cb = {f['in_cb']}")
    if d.name in ("POST", "ADD") and f["clamp_min"] > f["clamp_max"]:
        raise _bad(d, f"clamp_min {f['clamp_min']} > clamp_max {f['clamp_max']}")
    for k in ("a_mult", "b_mult", "out_mult", "mult"):
        if k in f and f[k] != 0 and f[k] < Q31_MIN:
            raise _bad(d, f"{k} = {f[k]} is neither 0 nor in [2^30, 2^31)")
    if depths is not None:
        for a in sram_accesses(d, rows, cols):
            if a.hi >= depths[a.mem]:
                raise _bad(d, f"{a.mem} word {a.hi} beyond depth {depths[a.mem]}")

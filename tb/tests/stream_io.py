"""Backdoor stimulus/response files for tb_stream_player (rtl/tb/).

The Python side of a block test builds the whole cycle-by-cycle stimulus as
numpy arrays, packs each cycle into one wide word (fields LSB first, lanes
LSB first, the layout each *_tb_top.sv documents), writes it for $readmemh,
and lets the simulator play it without Python in the loop; see tb/README.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

CLK_NS = 10


def pack(fields: list[tuple[np.ndarray, int]]) -> list[int]:
    """Pack fields into one int per cycle.

    Each field is (values, bits): values of shape (N,) or (N, lanes), signed
    or unsigned; each lane takes `bits` bits (two's complement), lanes and
    fields in order from bit 0 upward.
    """
    n = len(np.asarray(fields[0][0]))
    words = np.zeros(n, dtype=object)
    off = 0
    for values, bits in fields:
        v = np.asarray(values, dtype=np.int64)
        if v.ndim == 1:
            v = v[:, None]
        if len(v) != n:
            raise ValueError("all fields need one row per cycle")
        mask = (1 << bits) - 1
        for lane in range(v.shape[1]):
            # object arrays: Python ints, so words wider than 64 bits are exact
            words = words + ((v[:, lane] & mask).astype(object) << off)
            off += bits
    return [int(w) for w in words]


def unpack(words: list[int], lanes: int, bits: int, signed: bool = True) -> np.ndarray:
    """Inverse of pack for one field of `lanes` x `bits` starting at bit 0."""
    out = np.zeros((len(words), lanes), dtype=np.int64)
    mask = (1 << bits) - 1
    for i, w in enumerate(words):
        for lane in range(lanes):
            out[i, lane] = (w >> (lane * bits)) & mask
    if signed:
        out = np.where(out >= 1 << (bits - 1), out - (1 << bits), out)
    return out


def write_hex(path: str | Path, words: list[int], width: int) -> None:
    digits = (width + 3) // 4
    Path(path).write_text("".join(f"{w:0{digits}x}\n" for w in words))


def read_hex(path: str | Path) -> list[int]:
    text = Path(path).read_text() if Path(path).is_file() else ""
    return [int(line, 16) for line in text.split() if line and not line.startswith("//")]


async def reset(dut) -> None:
    """Start the clock and apply the synchronous reset."""
    cocotb.start_soon(Clock(dut.clk, CLK_NS, unit="ns").start())
    dut.rst_n.value = 0
    dut.load.value = 0
    dut.start.value = 0
    dut.n_stim.value = 0
    dut.n_rep.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst_n.value = 1
    await ClockCycles(dut.clk, 1)


async def play(dut, in_file: str, out_file: str, words: list[int], width: int,
               n_rep: int = 1) -> dict:
    """Load `words`, play them n_rep times, wait for done; return the last
    pass's output words and the player's counters."""
    Path(out_file).unlink(missing_ok=True)
    write_hex(in_file, words, width)
    dut.load.value = 1
    await RisingEdge(dut.clk)
    dut.load.value = 0
    dut.n_stim.value = len(words)
    dut.n_rep.value = n_rep
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    t0 = time.perf_counter()
    await RisingEdge(dut.done)
    wall = time.perf_counter() - t0
    await RisingEdge(dut.clk)       # $writememh ran in the done cycle
    return {
        "out": read_hex(out_file),
        "n_out": int(dut.n_out.value),
        "cycles": int(dut.cycles.value),
        "latency": int(dut.latency.value),
        "wall_s": wall,
    }

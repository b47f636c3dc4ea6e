"""cocotb tests of npu_array (through rtl/tb/array_tb_top.sv).

Python builds a cycle-accurate schedule (pixels, swaps, weight-row loads)
that follows the array's weight-load rule, the simulator plays it from a
$readmemh file, and the recorded output words are compared bit-exactly with
a numpy int32 matmul per tile.
"""

from __future__ import annotations

import os

import numpy as np

import cocotb

from presil.tb.runner import sim_params, write_metrics
from stream_io import pack, play, reset, unpack

P = sim_params()
ROWS, COLS = int(P.get("ROWS", 16)), int(P.get("COLS", 16))
RW = max(1, (ROWS - 1).bit_length())
IN_W = 3 + RW + ROWS * 8 + COLS * 8
LATENCY = ROWS + COLS


def schedule(rng, tiles, *, bubbles: float = 0.0, max_gap: int = 0):
    """Cycle-by-cycle stimulus for `tiles` = [(W (ROWS, COLS), X (M, ROWS))].

    Tile i's rows load in order starting at L(i) >= max(swap(i-1), end of the
    previous load); its first pixel carries in_swap at swap(i) > L(i) and
    after the previous tile's last pixel. `bubbles` is the probability of an
    idle cycle between pixels, `max_gap` the largest random extra delay of a
    load or a swap. Returns (packed words, expected outputs in order).
    """
    loads, pixels = {}, {}          # cycle -> (row, tile) / (tile, pixel, swap)
    prev_swap, prev_load_end, t_pix = 0, -1, 0
    for i, (w, x) in enumerate(tiles):
        lstart = max(prev_swap, prev_load_end + 1) + int(rng.integers(0, max_gap + 1))
        for r in range(ROWS):
            loads[lstart + r] = (i, r)
        prev_load_end = lstart + ROWS - 1
        t = max(lstart + 1, t_pix) + int(rng.integers(0, max_gap + 1))
        prev_swap = t
        for p in range(len(x)):
            pixels[t] = (i, p, p == 0)
            t += 1
            while rng.random() < bubbles:
                t += 1
        t_pix = t
    n = max(max(loads), max(pixels)) + 1 + LATENCY + 4    # drain inside the pass
    # Idle cycles carry random data: the valid/row-select gating must hide it.
    valid = np.zeros(n, np.int64)
    swap = np.zeros(n, np.int64)
    wv = np.zeros(n, np.int64)
    wrow = rng.integers(0, 1 << RW, n)
    act = rng.integers(-128, 128, (n, ROWS))
    wdat = rng.integers(-128, 128, (n, COLS))
    for t, (i, r) in loads.items():
        wv[t], wrow[t], wdat[t] = 1, r, tiles[i][0][r]
    expected = []
    for t in sorted(pixels):
        i, p, first = pixels[t]
        valid[t], swap[t], act[t] = 1, int(first), tiles[i][1][p]
        expected.append(tiles[i][1][p].astype(np.int64) @ tiles[i][0].astype(np.int64))
    words = pack([(valid, 1), (swap, 1), (wv, 1), (wrow, RW), (act, 8), (wdat, 8)])
    return words, np.array(expected, np.int64).reshape(-1, COLS)


def random_tiles(rng, sizes):
    return [(rng.integers(-128, 128, (ROWS, COLS)), rng.integers(-128, 128, (m, ROWS)))
            for m in sizes]


async def check(dut, words, expected, n_rep=1):
    res = await play(dut, "array_stim.hex", "array_out.hex", words, IN_W, n_rep)
    got = unpack(res["out"], COLS, 32)
    assert res["n_out"] == len(expected), f"{res['n_out']} output words, expected {len(expected)}"
    assert got.shape == expected.shape, f"read {got.shape} words, expected {expected.shape}"
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"{len(bad)} wrong sums; first at pixel {bad[0][0]} col {bad[0][1]}: "
                          f"got {got[tuple(bad[0])]}, expected {expected[tuple(bad[0])]}")
    assert res["latency"] == LATENCY, f"latency {res['latency']}, expected {LATENCY}"
    return res


@cocotb.test()
async def tiles_back_to_back(dut):
    """Several tiles with M < ROWS, = ROWS and > ROWS, loads as early as the
    rule allows (next tile loads from the swap cycle), no bubbles."""
    rng = np.random.default_rng(1)
    await reset(dut)
    sizes = [ROWS, 1, ROWS - 1, ROWS + 1, 2 * ROWS + 3, 2, ROWS, 5]
    words, expected = schedule(rng, random_tiles(rng, sizes))
    await check(dut, words, expected)


@cocotb.test()
async def tiles_with_bubbles_and_gaps(dut):
    """Random tile sizes, idle cycles between pixels and delayed loads/swaps."""
    rng = np.random.default_rng(2)
    await reset(dut)
    for _ in range(3):
        sizes = rng.integers(1, 3 * ROWS, 6)
        words, expected = schedule(rng, random_tiles(rng, sizes), bubbles=0.3, max_gap=4)
        await check(dut, words, expected)


@cocotb.test()
async def extremes(dut):
    """Largest magnitudes: -128 * -128 everywhere (largest positive sum), and
    mixed +127/-128 (most negative)."""
    rng = np.random.default_rng(3)
    await reset(dut)
    full = np.full
    tiles = [(full((ROWS, COLS), -128), full((3, ROWS), -128)),
             (full((ROWS, COLS), 127), full((ROWS + 2, ROWS), -128)),
             (rng.choice([-128, 127, 0, -1, 1], (ROWS, COLS)),
              rng.choice([-128, 127, 0, -1, 1], (2 * ROWS, ROWS)))]
    words, expected = schedule(rng, tiles)
    await check(dut, words, expected)


@cocotb.test()
async def throughput(dut):
    """Back-to-back tiles of 4*ROWS pixels (array always busy), replayed
    PRESIL_ARRAY_REPS times by the player to measure simulation speed."""
    reps = int(os.environ.get("PRESIL_ARRAY_REPS", "1"))
    rng = np.random.default_rng(4)
    await reset(dut)
    n_tiles = max(1, 3000 // (4 * ROWS + 1))
    words, expected = schedule(rng, random_tiles(rng, [4 * ROWS] * n_tiles))
    res = await check(dut, words, expected, n_rep=reps)
    rate = res["cycles"] / res["wall_s"]
    dut._log.info("%d cycles in %.3f s: %.0f cycles/s", res["cycles"], res["wall_s"], rate)
    write_metrics(cycles=res["cycles"], wall_s=res["wall_s"], cycles_per_s=rate,
                  macs_per_cycle=len(expected) * ROWS * COLS / len(words))

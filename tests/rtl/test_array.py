"""npu_array on Verilator: bit-exact against numpy, one cached build per size."""

from __future__ import annotations

import pytest

from presil.tb.runner import RTL_DIR, run_cocotb

SOURCES = [RTL_DIR / "npu_pe.sv", RTL_DIR / "npu_array.sv",
           RTL_DIR / "tb" / "tb_stream_player.sv", RTL_DIR / "tb" / "array_tb_top.sv"]


# 8x4 is not a legal NPU configuration (the contract needs ROWS == COLS) but
# catches any ROWS/COLS mix-up in the skew, de-skew and weight paths.
@pytest.mark.parametrize("rows,cols", [(4, 4), (8, 4), (16, 16)])
def test_array(rows, cols, tmp_path):
    b, res = run_cocotb("array_tb_top", SOURCES, "test_array_cocotb", tmp_path,
                        {"ROWS": rows, "COLS": cols})
    m = res.metrics
    print(f"\narray {rows}x{cols}: build {'cached' if b.cached else f'{b.seconds:.1f} s'}, "
          f"{m['cycles']} cycles at {m['cycles_per_s']:.0f} cycles/s")


def test_array_16x16_speed(tmp_path):
    """Simulation speed of the 16x16 array with the RTL player (no Python per cycle)."""
    b, res = run_cocotb("array_tb_top", SOURCES, "test_array_cocotb", tmp_path,
                        {"ROWS": 16, "COLS": 16}, testcase="throughput",
                        env={"PRESIL_ARRAY_REPS": "100"})
    m = res.metrics
    print(f"\narray 16x16 speed: build {'cached' if b.cached else f'{b.seconds:.1f} s'}; "
          f"{m['cycles']} cycles in {m['wall_s']:.2f} s = {m['cycles_per_s']:.0f} cycles/s "
          f"({m['macs_per_cycle']:.0f} MAC/cycle useful)")
    assert m["cycles"] >= 100_000

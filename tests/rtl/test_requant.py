"""npu_requant on Verilator: bit-exact against presil.golden.arith."""

from __future__ import annotations

import pytest

from presil.tb.runner import RTL_DIR, run_cocotb

SOURCES = [RTL_DIR / "npu_requant.sv",
           RTL_DIR / "tb" / "tb_stream_player.sv", RTL_DIR / "tb" / "requant_tb_top.sv"]


@pytest.mark.parametrize("cols", [16])
def test_requant(cols, tmp_path):
    b, res = run_cocotb("requant_tb_top", SOURCES, "test_requant_cocotb", tmp_path,
                        {"COLS": cols})
    print(f"\nrequant COLS={cols}: build {'cached' if b.cached else f'{b.seconds:.1f} s'}, "
          f"{len(res.tests)} cocotb tests passed")

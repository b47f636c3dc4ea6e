"""npu_compute on Verilator: GEMM/POST/ADD/POOL bit-exact against the golden ISS."""

from __future__ import annotations

import pytest

from presil.tb.runner import RTL_DIR, run_cocotb

SOURCES = [RTL_DIR / "npu_compute.vlt",
           RTL_DIR / "generated" / "npu_isa_pkg.sv", RTL_DIR / "generated" / "npu_regmap_pkg.sv",
           RTL_DIR / "npu_pe.sv", RTL_DIR / "npu_array.sv", RTL_DIR / "npu_requant.sv",
           RTL_DIR / "npu_mbqm.sv", RTL_DIR / "npu_sram.sv", RTL_DIR / "npu_wr_queue.sv",
           RTL_DIR / "npu_gemm_ctrl.sv", RTL_DIR / "npu_postadd.sv", RTL_DIR / "npu_pool.sv",
           RTL_DIR / "npu_compute.sv", RTL_DIR / "tb" / "compute_tb_top.sv"]
PARAMS = {"ROWS": 16, "COLS": 16, "ACT_DEPTH": 4096, "WGT_DEPTH": 4096, "PAR_DEPTH": 256, "ACC_DEPTH": 1024}


def test_compute(tmp_path):
    b, res = run_cocotb("compute_tb_top", SOURCES, "test_compute_cocotb", tmp_path, PARAMS)
    print(f"\ncompute 16x16: build {'cached' if b.cached else f'{b.seconds:.1f} s'}, "
          f"{len(res.tests)} cocotb tests passed")
    print(f"{'instr':5} {'shape':32} {'rtl':>6} {'model':>6}")
    m = res.metrics
    for name, desc, rtl, model in m.get("cycles", []) + m.get("cycles_add", []) + m.get("cycles_pool", []):
        print(f"{name:5} {desc:32} {rtl:6d} {model:6d}  ({100.0 * (rtl - model) / model:+.1f} %)")


@pytest.mark.slow
def test_compute_random_long(tmp_path):
    run_cocotb("compute_tb_top", SOURCES, "test_compute_cocotb", tmp_path, PARAMS,
               testcase="random_conv", env={"PRESIL_COMPUTE_SEEDS": "40"})

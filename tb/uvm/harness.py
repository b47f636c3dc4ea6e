"""The pytest/CLI side of the pyuvm tests: picks the npu_tb_top build
(presil.tb.npu_tb_top: the cached plain build, a separate FST build for waves,
a separate coverage build), runs one uvm test, re-runs a failing one once with
waves, and merges coverage across runs into build/coverage/ (functional:
cocotb-coverage YAML; code: coverage.dat)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from presil import rtl
from presil.tb import coverage as cov
from presil.tb.npu_tb_top import top_build
from presil.tb.runner import run
from presil.tb.uvm.jobs import JOBS_ENV, read_results

MODULE = "test_uvm_cocotb"
COVERAGE_DIR = rtl.work_root() / "coverage"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "no", "false")


@dataclass
class UvmRun:
    testcase: str
    directory: Path
    tests: list
    verdicts: list
    metrics: dict
    waves: Path | None = None
    functional: str = ""            # merged functional coverage report (text)
    code: str = ""                  # merged code coverage summary (text)
    failures: list = field(default_factory=list)


def _collect_coverage(d: Path, tag: str, code: bool) -> tuple[str, str]:
    COVERAGE_DIR.mkdir(parents=True, exist_ok=True)
    with FileLock(str(COVERAGE_DIR / ".lock")):
        fdir = COVERAGE_DIR / "functional"
        fdir.mkdir(exist_ok=True)
        for y in d.glob("coverage_*.yml"):
            shutil.copy(y, fdir / f"{tag}.yml")
        ftxt = ""
        if any(fdir.glob("*.yml")):
            try:
                _, ftxt = cov.merge_reports(sorted(fdir.glob("*.yml")), COVERAGE_DIR / "functional_merged.yml")
            except KeyError:        # runs from an older coverage model: start over with this one
                for y in fdir.glob("*.yml"):
                    if y.name != f"{tag}.yml":
                        y.unlink()
                _, ftxt = cov.merge_reports([fdir / f"{tag}.yml"], COVERAGE_DIR / "functional_merged.yml")
        ctxt = ""
        dat = d / "coverage.dat"
        if code and dat.is_file():
            cdir = COVERAGE_DIR / "code"
            cdir.mkdir(exist_ok=True)
            shutil.copy(dat, cdir / f"{tag}.dat")
            counts = cov.merge_dat(sorted(cdir.glob("*.dat")), COVERAGE_DIR / "coverage_merged.dat")
            ctxt = cov.dat_report(counts)
            (COVERAGE_DIR / "code_summary.txt").write_text(ctxt)
    return ftxt, ctxt


def run_uvm(testcase: str, test_dir, *, env: dict | None = None, jobs_dir=None, tag: str | None = None,
            waves: bool | None = None, retry_with_waves: bool = True) -> UvmRun:
    d = Path(test_dir)
    env = dict(env or {})
    if jobs_dir is not None:
        env[JOBS_ENV] = str(Path(jobs_dir).resolve())
    waves = env_flag("PRESIL_WAVES") if waves is None else waves
    code = env_flag("PRESIL_COVERAGE")
    b = top_build(waves=waves, coverage=code and not waves)
    res = run(b, MODULE, d, testcase=testcase, env=env)
    out = UvmRun(testcase, d, res.tests, read_results(d), res.metrics)
    out.failures = [f"{t['name']}: {t['message']}" for t in res.failed] + (
        [] if res.tests else [f"no cocotb test ran ({res.xml})"])
    out.functional, out.code = _collect_coverage(d, tag or testcase, code and not waves)
    if waves:
        out.waves = next(iter(sorted(d.glob("*.fst"))), None)
    elif out.failures and retry_with_waves:
        # The same test again on the FST build, so the failure comes with a waveform.
        wd = d / "waves"
        rerun = run(top_build(waves=True), MODULE, wd, testcase=testcase, env=env)
        out.waves = next(iter(sorted(wd.glob("*.fst"))), None)
        if not rerun.failed:
            out.failures.append("(passed when re-run with waves: timing-dependent?)")
    return out


def assert_passed(r: UvmRun) -> None:
    if r.failures:
        bad = [f"  {v['name']}: {v['message']}" for v in r.verdicts if not v["passed"]]
        raise AssertionError("\n".join(r.failures + bad) + f"\n(log {r.directory / 'sim.log'}"
                             + (f"; waves {r.waves}" if r.waves else "") + ")")


def table(verdicts: list) -> str:
    """Per-program table: RTL cycles (PERF_BUSY_CYCLES), cost-model cycles, match."""
    w = max([len(v["name"]) for v in verdicts] + [8])
    lines = [f"{'program':<{w}} {'RTL cyc':>9} {'model':>9} {'err%':>7} {'MAC util':>8}  result"]
    for v in verdicts:
        rc, gc = v["rtl_cycles"], v["golden_cycles"]
        err = f"{100 * (gc - rc) / rc:+.1f}" if rc and gc else "-"
        util = f"{100 * v['golden_mac'] / rc:.1f}%" if rc and v["golden_mac"] else "-"
        res = "match" if v["passed"] else "MISMATCH"
        if v.get("error"):
            res += f" ({v['error']})"
        lines.append(f"{v['name']:<{w}} {rc:>9} {gc:>9} {err:>7} {util:>8}  {res}")
    return "\n".join(lines)

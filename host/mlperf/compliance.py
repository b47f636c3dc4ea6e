"""MLPerf compliance tests TEST01 and TEST04: audit.config and verification.

A compliance test is a performance-mode LoadGen run with an `audit.config`
in its working directory that overrides some TestSettings:

- TEST01 (results are real in performance mode): LoadGen writes the
  responses of a random subset of performance-mode samples to the accuracy
  log. They must equal the accuracy-mode responses for the same samples, and
  the run's performance must be within 10% of the submission's run.
- TEST04 (no caching of results): every query issues the same sample. A
  system that caches results would get faster; the run must not be more than
  10% faster than the submission's run.

MLCommons ships its verification scripts in the inference repository, not in
the LoadGen wheel; the checks below follow their documented criteria. One
deliberate difference: TEST01 requires every logged response to equal the
accuracy-mode response byte for byte (our devices are deterministic: the
golden model and the RTL are bit-exact), instead of falling back to an
accuracy recomputation when responses differ.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

TESTS = ("TEST01", "TEST04")
PERF_TOLERANCE = 0.10
# LoadGen's audit.config keys (read by the wheel: `*.*.<key> = <value>`). mode 2 = PerformanceOnly.
# The seed is the one MLCommons' TEST01 configs use; the sampling target is ours (MLCommons picks one
# per benchmark by its response size): about this many responses land in the accuracy log.
TEST01_RNG_SEED = 720381539243781796
TEST01_SAMPLING_TARGET = 128
TEST04_SAMPLE_INDEX = 3


class ComplianceError(ValueError):
    """A compliance test cannot be run or verified as asked (missing run, bad log)."""


def audit_config(test: str) -> str:
    """The audit.config text of a compliance test."""
    if test == "TEST01":
        keys = {"mode": 2, "accuracy_log_rng_seed": TEST01_RNG_SEED,
                "accuracy_log_sampling_target": TEST01_SAMPLING_TARGET}
    elif test == "TEST04":
        keys = {"mode": 2, "performance_issue_same": 1, "performance_issue_same_index": TEST04_SAMPLE_INDEX}
    else:
        raise ComplianceError(f"unknown compliance test {test!r}; presil runs {', '.join(TESTS)}")
    return f"# {test} (written by presil mlperf --compliance)\n" + "".join(
        f"*.*.{k} = {v}\n" for k, v in keys.items())


@dataclass
class Verdict:
    test: str
    passed: bool
    performance: list[str] = field(default_factory=list)   # verify_performance.txt
    accuracy: list[str] = field(default_factory=list)      # verify_accuracy.txt (TEST01)

    @property
    def text(self) -> str:
        return "\n".join(self.accuracy + self.performance + [f"{self.test} {'PASS' if self.passed else 'FAIL'}"]) + "\n"


def _responses(path: Path) -> list[tuple[int, bytes]]:
    from .accuracy import AccuracyError, read_log

    try:
        return [(int(e["qsl_idx"]), bytes.fromhex(e["data"])) for e in read_log(path)]
    except (AccuracyError, KeyError, ValueError, TypeError) as exc:
        raise ComplianceError(f"{path}: not a LoadGen accuracy log ({exc})") from None


def verify_accuracy(test_log: Path, accuracy_log: Path) -> tuple[bool, list[str]]:
    """TEST01, part 1: every response logged in performance mode equals the
    accuracy-mode response of the same sample."""
    reference = dict(_responses(accuracy_log))
    logged = _responses(test_log)
    if not logged:
        return False, [f"{test_log}: no response was logged", "TEST01 accuracy check: FAIL"]
    missing = sorted({i for i, _ in logged if i not in reference})
    differ = sorted({i for i, d in logged if i in reference and reference[i] != d})
    same = sum(1 for i, d in logged if reference.get(i) == d)
    lines = [f"responses logged in performance mode: {len(logged)} ({len({i for i, _ in logged})} samples)",
             f"equal to the accuracy-mode response of the same sample: {same}"]
    if missing:
        lines.append(f"samples absent from the accuracy-mode log: {missing[:10]}")
    if differ:
        lines.append(f"samples whose response differs from accuracy mode: {differ[:10]}"
                     f"{' ...' if len(differ) > 10 else ''}")
    ok = not missing and not differ
    lines.append(f"TEST01 accuracy check: {'PASS' if ok else 'FAIL'}")
    return ok, lines


def _score(res) -> tuple[float, bool]:
    """(metric, higher_is_better) of a performance RunResult."""
    if res.metric is None:
        raise ComplianceError(f"{res.out}: the run has no {res.metric_key}")
    return float(res.metric), "latency" not in res.metric_key


def verify_performance(test: str, test_res, ref_res) -> tuple[bool, list[str]]:
    """TEST01: within 10% of the reference either way. TEST04: not more than
    10% better than the reference (same-sample queries must not be cheaper)."""
    t, higher = _score(test_res)
    r, _ = _score(ref_res)
    gain = (t / r - 1.0) if higher else (r / t - 1.0)   # > 0: the test run was better
    lines = [f"reference {ref_res.metric_key}: {r:g}", f"{test} {test_res.metric_key}: {t:g}",
             f"{test} better than the reference by {100 * gain:+.2f}% (allowed: "
             + ("within +-10%)" if test == "TEST01" else "at most +10%)")]
    ok = abs(gain) <= PERF_TOLERANCE if test == "TEST01" else gain <= PERF_TOLERANCE
    if test_res.errors:
        lines.append(f"{test}: LoadGen reported errors: {test_res.errors[:3]}")
        ok = False
    if test_res.validity != "VALID":
        lines.append(f"{test} run is {test_res.validity or 'not a performance run'}: {test_res.explanation}")
        ok = False
    lines.append(f"{test} performance check: {'PASS' if ok else 'FAIL'}")
    return ok, lines


def verify(test: str, test_res, ref_res, accuracy_dir: Path | None = None) -> Verdict:
    """Both checks of a compliance run; `accuracy_dir` (the accuracy-mode run) for TEST01."""
    pok, plines = verify_performance(test, test_res, ref_res)
    if test != "TEST01":
        return Verdict(test, pok, plines)
    if accuracy_dir is None:
        raise ComplianceError("TEST01 compares with the accuracy-mode run: use --mode both")
    aok, alines = verify_accuracy(Path(test_res.out) / "mlperf_log_accuracy.json",
                                  Path(accuracy_dir) / "mlperf_log_accuracy.json")
    return Verdict(test, pok and aok, plines, alines)


def write_tree(root: Path, verdict: Verdict, test_res, copy_accuracy_log) -> Path:
    """ROOT/<TEST>/ (ROOT = compliance/<system>/<benchmark>/<scenario> of the
    submission tree): verify_performance.txt, the run's LoadGen logs in
    performance/run_1/; TEST01 also verify_accuracy.txt and its accuracy log."""
    d = Path(root) / verdict.test
    run1 = d / "performance" / "run_1"
    run1.mkdir(parents=True, exist_ok=True)
    src = Path(test_res.out)
    for f in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        shutil.copyfile(src / f, run1 / f)
    (d / "verify_performance.txt").write_text("\n".join(verdict.performance) + "\n")
    if verdict.accuracy:
        (d / "accuracy").mkdir(exist_ok=True)
        copy_accuracy_log(src / "mlperf_log_accuracy.json", d / "accuracy" / "mlperf_log_accuracy.json")
        (d / "verify_accuracy.txt").write_text("\n".join(verdict.accuracy) + "\n")
    return d

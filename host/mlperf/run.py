"""Run one LoadGen test in its own process and parse what it wrote.

Each test is a subprocess (`python -m presil.host.mlperf.worker`) because
the wheel loads its embedded mlperf.conf only on the first FromConfig of a
process. The subprocess's working directory is a fresh empty folder, so a
stray ./audit.config of the caller is never read (and the worker also passes
LoadGen an audit-config path that does not exist). The output folder exists
before the test starts.

`run_test` returns a RunResult: the metric of the scenario, validity, early
stopping, latency percentiles, all from mlperf_log_detail.txt, with the
estimate's stretch factor undone (latencies / K, rates x K).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

# The metric key of each scenario in the detail log (MLPerf's checker parses these).
METRIC_KEYS = {
    "SingleStream": "early_stopping_latency_ss",
    "MultiStream": "early_stopping_latency_ms",
    "Offline": "result_samples_per_second",
    "Server": "result_completed_samples_per_sec",
}
METRIC_UNITS = {"SingleStream": "ms (p90, early stopping)", "MultiStream": "ms (p99, early stopping)",
                "Offline": "samples/s", "Server": "samples/s"}
_RATE_KEYS = ("result_samples_per_second", "result_completed_samples_per_sec",
              "result_scheduled_samples_per_sec", "result_completed_tokens_per_second")


class RunError(RuntimeError):
    """The test process failed; the message carries its traceback/stderr."""


@dataclass
class RunResult:
    scenario: str
    mode: str
    out: str
    metric_key: str
    metric: float | None  # ms for latency scenarios, samples/s otherwise; stretch undone
    valid: bool | None
    validity: str  # "VALID" / "INVALID" / "" (accuracy mode)
    stretch: float
    latencies_ms: dict = field(default_factory=dict)  # percentile name -> ms, stretch undone
    rates: dict = field(default_factory=dict)  # samples/s keys, stretch undone
    early_stopping: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)  # LoadGen ERROR lines
    warnings: list = field(default_factory=list)
    detail: dict = field(default_factory=dict, repr=False)  # raw key -> value (as logged)
    run: dict = field(default_factory=dict, repr=False)  # the worker's presil_run.json

    @property
    def explanation(self) -> str:
        """Why a result is INVALID, in LoadGen's words."""
        if self.validity != "INVALID":
            return ""
        d = self.detail
        parts = [str(d.get("result_invalid_reason") or "").strip()]
        for flag, text in (("result_min_duration_met", "min duration not met"),
                           ("result_min_queries_met", "min query count not met"),
                           ("result_perf_constraints_met", "latency constraint not met")):
            if d.get(flag) is False:
                parts.append(text)
        if d.get("early_stopping_met") is False:
            parts.append(" ".join(str(d.get("early_stopping_result", "early stopping not met")).split()))
        return "; ".join(p for p in parts if p)

    @property
    def platform(self) -> str:
        return self.run.get("backend", {}).get("platform", "")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("detail")
        return d


def parse_detail(path: str | Path) -> tuple[dict, list, list]:
    """mlperf_log_detail.txt -> ({key: value} (last one wins), errors, warnings)."""
    values, errors, warnings = {}, [], []
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG"):
            continue
        try:
            rec = json.loads(line[len(":::MLLOG"):].strip())
        except json.JSONDecodeError:
            continue
        key, val = rec.get("key"), rec.get("value")
        md = rec.get("metadata", {}) or {}
        if key == "error" or md.get("is_error"):
            errors.append(val)
        elif key == "warning" or md.get("is_warning"):
            warnings.append(val)
        if key is not None:
            values[key] = val
    return values, errors, warnings


def result_from_logs(out: str | Path, scenario: str, mode: str, stretch: float = 1.0,
                     run: dict | None = None) -> RunResult:
    out = Path(out)
    detail_file = out / "mlperf_log_detail.txt"
    if not detail_file.is_file():
        raise RunError(f"{detail_file} was not written")
    d, errors, warnings = parse_detail(detail_file)
    k = stretch
    validity = str(d.get("result_validity", "")) if mode != "accuracy" else ""
    key = METRIC_KEYS[scenario]
    metric = None
    if mode != "accuracy" and key in d:
        v = float(d[key])
        metric = v / k / 1e6 if key.startswith("early_stopping") else v * k
    lat = {}
    for name, v in d.items():
        # result_{min,max,mean}_latency_ns, result_90.00_percentile_latency_ns,
        # MultiStream's *_query_latency_ns / *_per_query_latency_ns, ...
        if name.startswith("result_") and name.endswith("latency_ns") and isinstance(v, (int, float)):
            short = (name[len("result_"):-len("_latency_ns")].replace("_percentile", "")
                     .replace(".00", "").replace("_per_query", "_query"))
            short = short if not short[0].isdigit() else "p" + short
            if short.endswith("_query") and short[0] == "p":
                short = "query_" + short[:-len("_query")]
            lat[short] = float(v) / k / 1e6
    rates = {name: float(d[name]) * k for name in _RATE_KEYS if isinstance(d.get(name), (int, float))}
    es = {kk: v for kk, v in d.items() if "early_stopping" in kk}
    return RunResult(scenario, mode, str(out), key, metric,
                     (validity == "VALID") if validity else None, validity, k, lat, rates, es,
                     errors, warnings, d, run or {})


def run_test(spec: dict, *, timeout: float | None = None, quiet: bool = False, env: dict | None = None
             ) -> RunResult:
    """Run the test described by `spec` (see worker.py) in a fresh process.
    spec["out"] is created; LoadGen's logs and presil_run.json land there."""
    out = Path(spec["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = dict(spec, out=str(out))
    if spec.get("user_conf"):
        spec["user_conf"] = str(Path(spec["user_conf"]).resolve())
    for stale in ("presil_run.json", "presil_error.txt", "audit.config"):
        (out / stale).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="presil-lg-") as cwd:
        spec_file = Path(cwd) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        e = dict(os.environ if env is None else env)
        e.setdefault("OMP_NUM_THREADS", "1")
        proc = subprocess.run([sys.executable, "-m", "presil.host.mlperf.worker", str(spec_file)],
                              cwd=cwd, env=e, timeout=timeout, text=True,
                              stdout=subprocess.PIPE, stderr=None if not quiet else subprocess.PIPE)
    err_file = out / "presil_error.txt"
    if proc.returncode != 0:
        msg = err_file.read_text() if err_file.is_file() else (proc.stderr or "")
        raise RunError(f"LoadGen test process exited with {proc.returncode}:\n{msg[-4000:]}")
    run = json.loads((out / "presil_run.json").read_text())
    res = result_from_logs(out, spec["scenario"], spec["mode"], float(run.get("stretch", 1.0)), run)
    if run["sut"]["n_errors"]:
        raise RunError(f"{run['sut']['n_errors']} samples failed in the backend, e.g. {run['sut']['errors'][:3]}")
    return res


def make_spec(model: str, scenario: str, mode: str, out, *, backend: str = "estimate", device: str = "golden:",
              dataset: str | None = None, dataset_path=None, count: int | None = None, user_conf=None,
              settings: dict | None = None, estimate: dict | None = None, benchmark: str | None = None,
              performance_sample_count: int | None = None, cache_dir=None, compliance: str | None = None) -> dict:
    from .datasets import MODEL_DATASETS

    if scenario not in METRIC_KEYS:
        raise ValueError(f"scenario must be one of {list(METRIC_KEYS)}, not {scenario!r}")
    if mode not in ("performance", "accuracy", "submission", "findpeak"):
        raise ValueError(f"mode must be performance or accuracy, not {mode!r}")
    return {
        "model": model, "scenario": scenario, "mode": mode, "out": str(out), "backend": backend,
        "device": device,
        "dataset": {"kind": dataset or MODEL_DATASETS.get(Path(model).stem, "synthetic"),
                    "path": str(dataset_path) if dataset_path else None, "count": count},
        "user_conf": str(user_conf) if user_conf else None, "settings": settings or {},
        "estimate": estimate or {}, "benchmark": benchmark or mlperf_benchmark_name(model),
        "performance_sample_count": performance_sample_count,
        "cache_dir": str(Path(cache_dir).resolve()) if cache_dir else None,
        "compliance": compliance,
    }


def mlperf_benchmark_name(model: str) -> str:
    """The name mlperf.conf / user.conf / the submission tree use."""
    stem = Path(model).stem
    return {"resnet50_v1_5": "resnet50", "ssd_mobilenet_v1": "ssd-mobilenet",
            "resnet8": "ic", "dscnn": "kws", "mobilenet_v1_025_vww": "vww",
            "autoencoder_ad": "ad"}.get(stem, stem)

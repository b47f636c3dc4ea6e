"""One LoadGen test in this process: `python -m presil.host.mlperf.worker SPEC.json`.

run.py starts this module in a fresh process for every test, with a fresh
working directory, because the LoadGen wheel loads its embedded mlperf.conf
only once per process and reads ./audit.config from the working directory.

SPEC (JSON): model, backend (onnx|golden|device|estimate|null), device,
dataset {kind, path, count}, scenario, mode, out, user_conf, settings
(TestSettings attribute overrides, in *modelled* units for latencies and
rates), estimate {clock_hz, array, pcie, ...}, benchmark (the name looked up
in mlperf.conf / user.conf), compliance (TEST01|TEST04: the audit.config this
test runs with, see compliance.py). Writes OUT/presil_run.json; LoadGen writes
its logs to OUT.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

SCENARIOS = ("SingleStream", "MultiStream", "Offline", "Server")
MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly", "submission": "SubmissionRun",
         "findpeak": "FindPeakPerformance"}
# TestSettings fields in time units / rates: scaled by the stretch factor.
_LATENCY_FIELDS = ("server_target_latency_ns", "single_stream_expected_latency_ns",
                   "multi_stream_expected_latency_ns")
_RATE_FIELDS = ("server_target_qps", "offline_expected_qps")
AUDIT_CONFIG_NONE = "presil-no-audit.config"  # a file that does not exist: no compliance test


def _log(msg: str) -> None:
    print(f"[presil mlperf] {msg}", file=sys.stderr, flush=True)


def build_backend(spec: dict, model, dataset):
    """-> (backend, info dict)."""
    from .backend import BundleBackend, EstimateBackend, NullBackend, OnnxBackend

    kind = spec.get("backend", "golden")
    info: dict = {"backend": kind}
    if kind == "onnx":
        return OnnxBackend(model.proto, task=model.task), info
    if kind == "null":
        return NullBackend(), info

    from .models import calibration_data, compile_model, measured_cycles, model_cycles, rtl_cycles

    est = spec.get("estimate") or {}
    rows, cols = (int(v) for v in str(est.get("array", "16x16")).lower().split("x"))
    t0 = time.perf_counter()
    compiled = compile_model(model, lambda: calibration_data(model, spec["dataset"].get("kind"),
                                                             spec["dataset"].get("path")),
                             rows=rows, cols=cols, cache_dir=spec.get("cache_dir"),
                             cache_key=json.dumps([spec["dataset"].get("kind"), spec["dataset"].get("path")]))
    info["compile_s"] = round(time.perf_counter() - t0, 3)
    _log(f"compiled {model.name} for {rows}x{cols} in {info['compile_s']} s "
         f"({len(compiled.programs)} NPU program(s){', bundle' if compiled.bundle else ''})")

    def golden():
        return BundleBackend(compiled.bundle, None, task=model.task, input_name=model.input_name)

    if kind == "golden":
        return golden(), info
    if kind == "device":
        return BundleBackend(compiled.bundle, spec["device"], task=model.task,
                             input_name=model.input_name), info
    if kind != "estimate":
        raise ValueError(f"unknown backend {kind!r}")

    from .sut import measure_dispatch_overhead
    from .timing import DEFAULT_LAUNCH_S, PcieLink, TimingModel

    cost = model_cycles(compiled)
    if est.get("cycles_source", "model") == "rtl":
        if est.get("rtl_cycles") is not None:
            cost = rtl_cycles(est["rtl_cycles"], cost)
        else:
            rtl_device = est.get("rtl_device") or "sim:"
            _log(f"measuring device cycles on {rtl_device} (BUSY_CYCLES of each NPU program)")
            cost = measured_cycles(compiled, rtl_device, cost)
    host_s = est.get("host_overhead_us")
    measured = None
    if host_s is None:
        measured = measure_dispatch_overhead()
        host_s = measured
    else:
        host_s = float(host_s) * 1e-6
    link = PcieLink.parse(est.get("pcie", "gen3x8"),
                          **{k: v for k, v in (("efficiency", est.get("pcie_efficiency")),
                                               ("latency_s", _us(est.get("transfer_latency_us"))))
                             if v is not None})
    timing = TimingModel(cycles=cost.cycles, in_bytes=cost.in_bytes, out_bytes=cost.out_bytes,
                         clock_hz=float(est.get("clock_hz", 1e9)), link=link, host_overhead_s=host_s,
                         launch_s=_us(est.get("launch_us")) or DEFAULT_LAUNCH_S,
                         dma_overlap=bool(est.get("dma_overlap", True)),
                         cycles_source=est.get("cycles_source", "model"), array=f"{rows}x{cols}",
                         transfers_per_sample=max(1, cost.segments))
    stretch = est.get("stretch", "auto")
    if stretch in (None, "auto"):
        # Enough that a sample's modelled latency, and the bottleneck stage
        # that spaces Offline/Server completions, last >= stretch_target_ms of
        # wall clock: the harness's own tens of microseconds per query (GIL,
        # thread wake-up, pybind) then shrink to ~1% once divided by K.
        target = float(est.get("stretch_target_ms", 2.0)) * 1e-3
        stretch = max(1.0, float(round(target / min(timing.latency_s, max(timing.stages())))))
    info.update(device_cost=cost.to_dict(), timing=timing.to_dict(), stretch=float(stretch),
                host_overhead_measured_s=measured, assumptions=timing.assumptions())
    _log(f"estimate: {timing.assumptions()}; stretch x{float(stretch):g}")
    return EstimateBackend(timing, golden(), stretch=float(stretch)), info


def _us(v):
    return None if v is None else float(v) * 1e-6


def apply_settings(spec: dict, stretch: float):
    """TestSettings: embedded mlperf.conf, then user.conf, then overrides;
    latency/rate fields scaled by the stretch factor."""
    import mlperf_loadgen as lg

    scenario, mode = spec["scenario"], spec["mode"]
    bench = spec.get("benchmark") or spec["model"]
    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, scenario)
    s.mode = getattr(lg.TestMode, MODES[mode])
    # conf_type 0: the wheel's embedded mlperf.conf (first call in a fresh process).
    s.FromConfig("", bench, scenario, 0)
    loaded = {"mlperf_conf": True, "qsl_rng_seed": int(s.qsl_rng_seed)}
    if spec.get("user_conf"):
        rc = s.FromConfig(str(spec["user_conf"]), bench, scenario, 2)
        if rc != 0:
            raise FileNotFoundError(f"user.conf {spec['user_conf']}: LoadGen could not read it (rc {rc})")
        loaded["user_conf"] = str(spec["user_conf"])
    for k, v in (spec.get("settings") or {}).items():
        if not hasattr(s, k):
            raise ValueError(f"unknown TestSettings field {k!r}")
        setattr(s, k, type(getattr(s, k))(v))
    for k in _LATENCY_FIELDS:
        setattr(s, k, type(getattr(s, k))(getattr(s, k) * stretch))
    for k in _RATE_FIELDS:
        setattr(s, k, getattr(s, k) / stretch)
    return s, loaded


def _tight_timer_slack() -> bool:
    """Linux rounds every timed sleep up by the thread's timer slack (50 us
    by default). Threads inherit it from their creator, so setting it to
    1 ns here, before any thread exists, also tightens LoadGen's own issue
    thread (Server) and our estimate timer."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0) == 0  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        return False


def run(spec: dict) -> dict:
    import mlperf_loadgen as lg

    slack = _tight_timer_slack()

    from .datasets import open_dataset
    from .models import resolve_model
    from .qsl import QSL
    from .sut import SUT, Progress

    out = Path(spec["out"]).resolve()
    out.mkdir(parents=True, exist_ok=True)  # LoadGen writes nothing into a missing folder
    if Path("audit.config").exists():
        raise RuntimeError(f"{Path.cwd()}/audit.config exists: LoadGen would run a compliance test")
    audit = AUDIT_CONFIG_NONE
    if spec.get("compliance"):
        from .compliance import audit_config

        audit = "audit.config"   # written only now, in this test's own fresh folder
        Path(audit).write_text(audit_config(spec["compliance"]))
        (out / "audit.config").write_text(Path(audit).read_text())   # kept with the logs
    model = resolve_model(spec["model"])
    ds = spec["dataset"]
    dataset = open_dataset(ds["kind"], path=ds.get("path"), input_shape=model.input_shape,
                           count=ds.get("count"), classes=model.classes or 10,
                           task=model.task)
    backend, info = build_backend(spec, model, dataset)
    stretch = float(info.get("stretch", 1.0))
    settings, loaded = apply_settings(spec, stretch)
    if spec.get("auto_expected", True) and "timing" in info:
        _expected_from_model(settings, spec, info["timing"], stretch)

    qsl = QSL(dataset, spec.get("performance_sample_count"), on_load=backend.prepare)
    sut = SUT(backend, qsl)
    log = lg.LogSettings()
    log.log_output.outdir = str(out)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    label = f"{spec['scenario']}/{spec.get('compliance') or spec['mode']}"
    _log(f"{label}: {model.name} on {backend.name} ({backend.platform}), dataset {dataset.name} "
         f"({len(dataset)} samples) -> {out}")
    # A cyclic-GC pass over the compiler's and onnx's objects holds the GIL
    # for milliseconds, which would show up as latency tails: collect once,
    # freeze what exists, and keep the collector off while LoadGen runs.
    gc.collect()
    gc.freeze()
    gc.disable()
    t0 = time.perf_counter()
    try:
        with Progress(sut, label):
            lg.StartTestWithLogSettings(sut.construct(), qsl.construct(), settings, log, audit)
    finally:
        gc.enable()
    wall = time.perf_counter() - t0
    sut.close()
    qsl.destroy()
    stats = dict(getattr(backend, "stats", {}) or {})
    late = getattr(backend, "late_ns", None)
    if late:
        import numpy as np

        q = np.percentile(np.asarray(late, np.float64) / 1e3, [50, 90, 99, 100])
        stats["late_us_p50_p90_p99_max"] = [round(float(v), 1) for v in q]
    backend.close()
    result = {
        "spec": spec, "info": info, "backend": backend.describe(), "wall_s": wall,
        "conf": loaded, "stretch": stretch, "timer_slack_1ns": slack,
        "sut": {"issued": sut.issued, "completed": sut.completed, "errors": sut.errors[:20],
                "n_errors": len(sut.errors), "issue_calls": sut.issue_calls,
                "issue_mean_us": sut.issue_ns_total / max(1, sut.issue_calls) / 1e3},
        "qsl": {"load_calls": qsl.load_calls, "total": qsl.total_count, "performance": qsl.performance_count},
        "estimate_stats": stats,
    }
    (out / "presil_run.json").write_text(json.dumps(result, indent=1, default=str))
    _log(f"{label}: done in {wall:.1f} s, {sut.completed} samples")
    return result


def _expected_from_model(s, spec: dict, timing: dict, stretch: float) -> None:
    """Size LoadGen's queries from the model unless the user set the field:
    expected latencies and Offline's expected rate (stretched clock)."""
    user = set(spec.get("settings") or {}) | _conf_keys(spec.get("user_conf"))
    lat_ns = timing["latency_s"] * 1e9 * stretch
    if "single_stream_expected_latency_ns" not in user:
        s.single_stream_expected_latency_ns = int(lat_ns)
    if "multi_stream_expected_latency_ns" not in user:
        per_q = (timing["latency_s"] + (s.multi_stream_samples_per_query - 1)
                 / timing["throughput_samples_s"]) * 1e9 * stretch
        s.multi_stream_expected_latency_ns = int(per_q)
    if "offline_expected_qps" not in user:
        s.offline_expected_qps = timing["throughput_samples_s"] / stretch
    if "server_target_qps" not in user and spec["scenario"] == "Server":
        # Half the modelled capacity: a load the device should sustain.
        s.server_target_qps = 0.5 * timing["throughput_samples_s"] / stretch


def _conf_keys(path) -> set[str]:
    """Field names a user.conf sets ('model.scenario.key = value' lines)."""
    if not path or not Path(path).is_file():
        return set()
    keys = set()
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0]
        if "=" in line:
            keys.add(line.split("=", 1)[0].strip().rsplit(".", 1)[-1])
    # user.conf uses LoadGen's conf names; map the ones we size ourselves.
    names = {"target_latency": {"server_target_latency_ns"},
             "target_qps": {"server_target_qps", "offline_expected_qps"},
             "target_latency_percentile": set()}
    return keys.union(*(names.get(k, set()) for k in keys))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m presil.host.mlperf.worker SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        run(spec)
    except Exception as exc:  # noqa: BLE001 - reported to the parent through the file
        import traceback

        Path(spec["out"]).mkdir(parents=True, exist_ok=True)
        (Path(spec["out"]) / "presil_error.txt").write_text(traceback.format_exc())
        _log(f"error: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())

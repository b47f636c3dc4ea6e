"""The harness on the real LoadGen (each test in its own process).

The estimate backend is deterministic, so every expected latency here is
computed by hand from the program's ISS cycles and the link parameters.
Tolerances: the emulation can only add delay (thread wake-ups, the GIL, a
loaded machine) and the stretch factor K divides it, so medians must sit
within -0.5%..+3% of the model; tail percentiles get 10% because on a
shared 2-core machine other processes steal milliseconds now and then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from presil.host.mlperf import accuracy
from presil.host.mlperf.datasets import digits
from presil.host.mlperf.run import RunError, make_spec, run_test

HOST_US = 10.0  # fixed host overhead: the expected values must not depend on a measurement
EMBEDDED_QSL_SEED = 2085463073848966840  # mlperf.conf's qsl_rng_seed (v6.1 round)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A bundle cache shared by this module's test processes (compiled once here)."""
    from presil.host.mlperf.models import calibration_data, compile_model, resolve_model

    d = tmp_path_factory.mktemp("bundle-cache")
    m = resolve_model("digits_cnn")
    compile_model(m, calibration_data(m, "digits"), cache_dir=d, cache_key=json.dumps(["digits", None]))
    return d


def _est(**kw):
    return dict({"host_overhead_us": HOST_US, "clock_hz": 1e9, "array": "16x16", "pcie": "gen3x8"}, **kw)


def _expected(cache) -> tuple[float, float]:
    """(single-sample latency, bottleneck stage) in seconds, by hand."""
    from presil.golden import iss
    from presil.golden.program import TensorRole
    from presil.host.compiler.bundle import Bundle

    (bundle_file,) = cache.glob("*.bundle")
    (prog,) = Bundle.load(bundle_file).programs.values()
    zeros = {t.name: np.zeros(t.shape, np.int8) for t in prog.tensors if t.role == TensorRole.INPUT}
    cycles = iss.run(prog, zeros).cycles
    n_in = sum(t.size_bytes for t in prog.tensors if t.role == TensorRole.INPUT)
    n_out = sum(t.size_bytes for t in prog.tensors if t.role == TensorRole.OUTPUT)
    bw = 8e9 * 128 / 130 / 8 * 8 * 0.80  # Gen3 x8 at 80% efficiency
    stages = [HOST_US * 1e-6, 2e-6 + n_in / bw, 1e-6 + cycles / 1e9, 2e-6 + n_out / bw]
    return sum(stages), max(stages)


def _perf(tmp_path, cache, scenario, settings, **est):
    spec = make_spec("digits_cnn", scenario, "performance", tmp_path / scenario, count=32,
                     settings=settings, estimate=_est(**est), cache_dir=cache)
    return run_test(spec, quiet=True)


def test_single_stream_estimate_matches_model(tmp_path, cache):
    r = _perf(tmp_path, cache, "SingleStream", {"min_duration_ms": 500, "min_query_count": 200})
    lat, _ = _expected(cache)
    assert r.run["info"]["timing"]["latency_s"] == pytest.approx(lat, rel=1e-9)
    assert r.validity == "VALID", r.explanation
    assert 0.99 * lat * 1e3 <= r.latencies_ms["p50"] <= 1.03 * lat * 1e3
    # The metric is LoadGen's early-stopping p90 estimate, un-stretched.
    assert r.metric == pytest.approx(r.detail["early_stopping_latency_ss"] / r.stretch / 1e6)
    assert r.metric >= 0.99 * lat * 1e3
    _tail_ok_or_explained(r, r.metric, lat, 0.90)
    assert r.stretch > 1 and r.run["sut"]["issue_mean_us"] < 200  # IssueQuery only queues


def _tail_ok_or_explained(r, value_ms, model_s, quantile):
    """A tail percentile matches the model within 10% unless enough samples
    completed late (> 200 us: the machine was busy) to reach that tail; one
    late sample makes its whole query late."""
    st = r.run["estimate_stats"]
    queries = st["completed"] / int(r.detail.get("effective_samples_per_query", 1))
    if st["late"] < (1 - quantile) / 2 * queries:
        assert value_ms <= 1.10 * model_s * 1e3, f"tail {value_ms} ms vs model {model_s * 1e3} ms ({st})"


def test_multi_stream_estimate_matches_model(tmp_path, cache):
    # 662 queries are needed for MultiStream's early stopping; K = 50 keeps it short
    # (4.5 ms of wall clock per query), at the price of a +5% bound on the median.
    r = _perf(tmp_path, cache, "MultiStream", {"min_duration_ms": 200, "min_query_count": 662}, stretch=50)
    lat, bottleneck = _expected(cache)
    query = lat + 7 * bottleneck  # 8 samples through the pipeline
    assert 0.99 * query * 1e3 <= r.latencies_ms["query_p50"] <= 1.05 * query * 1e3, r.run["estimate_stats"]
    if r.validity != "VALID":
        assert r.explanation, "an INVALID result must say why"
    else:
        _tail_ok_or_explained(r, r.metric, query, 0.99)


def test_offline_estimate_matches_model(tmp_path, cache):
    r = _perf(tmp_path, cache, "Offline", {"min_duration_ms": 500, "min_query_count": 100})
    lat, bottleneck = _expected(cache)
    n = int(r.detail["generated_samples_per_query"])
    expect = n / (lat + (n - 1) * bottleneck)
    assert r.validity == "VALID", r.explanation
    assert r.metric == pytest.approx(expect, rel=0.02)


def _server(tmp_path, cache, stretch):
    _, bottleneck = _expected(cache)
    # 20% of the modelled capacity. Only the first (host) stage is the
    # bottleneck and can queue, and an arrival finds it busy with
    # probability 0.2 < 0.5, so the median latency is the unqueued one.
    # Early stopping needs ~460 queries when all meet the bound.
    qps = 0.2 / bottleneck
    r = _perf(tmp_path, cache, "Server", {"min_duration_ms": 500, "min_query_count": 600,
                                          "server_target_qps": qps}, stretch=stretch)
    assert r.validity == "VALID", r.explanation
    assert r.metric == pytest.approx(qps, rel=0.15)  # Poisson arrivals over 600 queries
    return r


def test_server_estimate_at_light_load_never_beats_the_model(tmp_path, cache):
    # A completion can only come late, never before its modelled time. How late
    # depends on how busy the host is (LoadGen's issue thread wakes ~50-100 us
    # after each arrival when idle, milliseconds when the other core runs tests),
    # so the accuracy bound is checked by the slow test below, run alone.
    r = _server(tmp_path, cache, 100)
    lat, _ = _expected(cache)
    assert r.latencies_ms["p50"] >= 0.99 * lat * 1e3


@pytest.mark.slow
def test_server_estimate_median_within_3_percent_at_large_stretch(tmp_path, cache):
    r = _server(tmp_path, cache, 400)
    lat, _ = _expected(cache)
    assert 0.99 * lat * 1e3 <= r.latencies_ms["p50"] <= 1.03 * lat * 1e3


@pytest.mark.parametrize("backend,device", [
    ("golden", "golden:"),                  # the golden ISS directly
    ("device", "golden:?mem=32M"),          # the golden device model through the host driver
])
def test_accuracy_on_golden_matches_independent_top1(tmp_path, cache, backend, device):
    from presil.host.compiler.bundle import compile_model
    from presil.host.mlperf.models import calibration_data, resolve_model

    n = 40
    spec = make_spec("digits_cnn", "SingleStream", "accuracy", tmp_path / "acc", backend=backend, device=device,
                     count=n, cache_dir=cache)
    run_test(spec, quiet=True)
    ds = digits()
    r = accuracy.score(tmp_path / "acc" / "mlperf_log_accuracy.json", ds.labels, "classification", classes=10)
    accuracy.write_accuracy_txt(r, tmp_path / "acc" / "accuracy.txt")
    # Independently: compile the same way and run every sample through Bundle.run.
    m = resolve_model("digits_cnn")
    b = compile_model(m.proto, calibration_data(m, "digits"))
    good = sum(int(np.argmax(next(iter(b.run(ds.load(i)).values())))) == ds.labels[i] for i in range(n))
    text = (tmp_path / "acc" / "accuracy.txt").read_text()
    assert text.startswith(f"accuracy={100 * good / n:.3f}%, good={good}, total={n}")
    assert "hash=" in text


def _null(tmp_path, name, cwd=None):
    spec = make_spec("digits_cnn", "SingleStream", "performance", tmp_path / name, backend="null", count=16,
                     settings={"min_duration_ms": 100, "min_query_count": 50})
    return run_test(spec, quiet=True)


def test_stray_audit_config_is_not_picked_up_and_each_test_loads_mlperf_conf(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "audit.config").write_text("*.*.min_query_count = 777\n*.*.performance_issue_same = 1\n")
    first = _null(tmp_path, "one")
    second = _null(tmp_path, "two")
    for r in (first, second):
        assert int(r.detail["effective_min_query_count"]) == 50
        assert r.detail["effective_performance_issue_same"] in (False, 0)
        # mlperf.conf's seeds: loaded in each test's own process.
        assert int(r.detail["effective_qsl_rng_seed"]) == EMBEDDED_QSL_SEED
        assert r.run["conf"]["mlperf_conf"] is True


def test_worker_refuses_to_run_next_to_an_audit_config(tmp_path):
    # Negative control: started in a folder holding audit.config, the worker stops.
    spec = make_spec("digits_cnn", "SingleStream", "performance", tmp_path / "out", backend="null", count=4)
    (tmp_path / "audit.config").write_text("*.*.min_query_count = 777\n")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    p = subprocess.run([sys.executable, "-m", "presil.host.mlperf.worker", "spec.json"], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ))
    assert p.returncode == 1 and "audit.config" in (tmp_path / "out" / "presil_error.txt").read_text()


def test_backend_failure_is_reported(tmp_path):
    spec = make_spec("digits_cnn", "SingleStream", "performance", tmp_path / "x", backend="device",
                     device="nosuch:0", count=4)
    with pytest.raises(RunError):
        run_test(spec, quiet=True)

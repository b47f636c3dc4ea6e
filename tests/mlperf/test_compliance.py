"""MLPerf compliance tests TEST01 / TEST04: the audit.config LoadGen reads, the
verification of their logs, and one real run of each on the estimate."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from presil.host.mlperf import compliance
from presil.host.mlperf.run import make_spec, run_test


def _log(path, entries):
    path.write_text(json.dumps([{"seq_id": k, "qsl_idx": i, "data": d.hex()} for k, (i, d) in enumerate(entries)]))
    return path


def _res(metric, key="result_samples_per_second", validity="VALID", errors=()):
    return SimpleNamespace(metric=metric, metric_key=key, validity=validity, explanation="", errors=list(errors),
                           out="/nowhere")


def test_audit_configs():
    t1 = compliance.audit_config("TEST01")
    assert "*.*.mode = 2\n" in t1 and "*.*.accuracy_log_sampling_target = 128\n" in t1
    assert "*.*.accuracy_log_rng_seed = 720381539243781796\n" in t1
    t4 = compliance.audit_config("TEST04")
    assert "*.*.performance_issue_same = 1\n" in t4 and "*.*.performance_issue_same_index = 3\n" in t4
    with pytest.raises(compliance.ComplianceError, match="TEST05"):
        compliance.audit_config("TEST05")


def test_test01_accuracy_check(tmp_path):
    ref = _log(tmp_path / "acc.json", [(0, b"\x01\x02"), (1, b"\x03\x04"), (2, b"\x05\x06")])
    ok, lines = compliance.verify_accuracy(_log(tmp_path / "same.json", [(2, b"\x05\x06"), (0, b"\x01\x02")]), ref)
    assert ok, lines
    ok, lines = compliance.verify_accuracy(_log(tmp_path / "bad.json", [(2, b"\x05\x06"), (1, b"\x03\x05")]), ref)
    assert not ok and any("differs" in ln and "[1]" in ln for ln in lines)
    ok, lines = compliance.verify_accuracy(_log(tmp_path / "gone.json", [(7, b"\x00")]), ref)
    assert not ok and any("absent" in ln and "[7]" in ln for ln in lines)
    ok, _ = compliance.verify_accuracy(_log(tmp_path / "empty.json", []), ref)
    assert not ok
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(compliance.ComplianceError, match="junk.json"):
        compliance.verify_accuracy(tmp_path / "junk.json", ref)


@pytest.mark.parametrize("test, metric, key, ok", [
    ("TEST01", 105.0, "result_samples_per_second", True),
    ("TEST01", 89.0, "result_samples_per_second", False),      # 11% slower: not the same system
    ("TEST01", 112.0, "result_samples_per_second", False),     # 12% faster
    ("TEST04", 50.0, "result_samples_per_second", True),       # slower with one sample: fine
    ("TEST04", 115.0, "result_samples_per_second", False),     # faster with one sample: caching
    ("TEST04", 0.85, "early_stopping_latency_ss", False),      # latency: lower is better (ref 1.0)
    ("TEST04", 1.05, "early_stopping_latency_ss", True),
])
def test_performance_checks(test, metric, key, ok):
    ref = _res(100.0 if "samples" in key else 1.0, key)
    got, lines = compliance.verify_performance(test, _res(metric, key), ref)
    assert got is ok, lines


def test_invalid_or_erroneous_run_fails():
    ok, lines = compliance.verify_performance("TEST04", _res(100.0, errors=["bad settings"]), _res(100.0))
    assert not ok and any("errors" in ln for ln in lines)
    ok, _ = compliance.verify_performance("TEST01", _res(100.0, validity="INVALID"), _res(100.0))
    assert not ok


def test_real_loadgen_runs_both_tests(tmp_path):
    """LoadGen reads the audit.config written into the test's fresh folder:
    TEST01 logs performance-mode responses equal to accuracy mode, TEST04
    issues one sample over and over, and both verify."""
    est = {"host_overhead_us": 10.0, "clock_hz": 1e9, "array": "16x16", "pcie": "gen3x8"}
    common = dict(count=64, estimate=est, cache_dir=tmp_path / "cache", settings={"min_duration_ms": 500})
    acc = run_test(make_spec("digits_cnn", "Offline", "accuracy", tmp_path / "acc", **common), quiet=True)
    ref = run_test(make_spec("digits_cnn", "Offline", "performance", tmp_path / "perf", **common), quiet=True)
    assert json.loads((tmp_path / "perf" / "mlperf_log_accuracy.json").read_text()) == []
    for test in compliance.TESTS:
        res = run_test(make_spec("digits_cnn", "Offline", "performance", tmp_path / test, compliance=test,
                                 **common), quiet=True)
        assert res.detail.get("effective_performance_issue_same") is (test == "TEST04")
        v = compliance.verify(test, res, ref, tmp_path / "acc")
        assert v.passed, v.text
        if test == "TEST01":
            assert json.loads((tmp_path / test / "mlperf_log_accuracy.json").read_text())
    assert acc.validity == ""


def test_cli_refuses_impossible_combinations(tmp_path, capsys):
    from presil.cli import main
    assert main(["mlperf", "--model", "digits_cnn", "--out", str(tmp_path), "--compliance", "TEST01"]) == 2
    assert "--mode both" in capsys.readouterr().err
    assert main(["mlperf", "--model", "digits_cnn", "--out", str(tmp_path), "--compliance", "TEST09"]) == 2
    assert "TEST09" in capsys.readouterr().err


def test_tree_has_the_verification_files(tmp_path):
    from presil.host.mlperf import submission
    run = tmp_path / "run"
    run.mkdir()
    for f in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json"):
        (run / f).write_text("[]" if f.endswith(".json") else "x")
    root = submission.compliance_dir(tmp_path / "tree", "open", "presil", "sys", "digits_cnn", "Offline")
    v = compliance.Verdict("TEST01", True, ["perf PASS"], ["acc PASS"])
    d = compliance.write_tree(root, v, SimpleNamespace(out=str(run)), submission.copy_accuracy_log)
    assert (d / "verify_accuracy.txt").read_text() == "acc PASS\n"
    assert submission.check_tree(tmp_path / "tree", "open", "presil") == ["no systems/<system>.json"]
    (d / "verify_performance.txt").unlink()
    assert any("verify_performance.txt" in p for p in submission.check_tree(tmp_path / "tree", "open", "presil"))

"""presil compile / run / verify: the happy path and named one-line errors (exit 2)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import compiler_models as cm
from presil.cli import main


def _one_line_error(capsys, code, name):
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert code == 2, err
    assert len(lines) == 1 and name in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits.presil"
    assert main(["compile", "digits_cnn", "-o", str(out)]) == 0
    return out


def test_compile_zoo_prints_partition_and_calibration(digits_bundle, capsys, tmp_path):
    out = tmp_path / "r8.presil"
    assert main(["compile", "resnet8", "-o", str(out)]) == 0
    cap = capsys.readouterr()
    assert "segment" in cap.out and "npu0" in cap.out and "host1" in cap.out
    assert "seeded synthetic" in cap.err  # announced
    assert out.stat().st_size > 0


def test_run_golden(digits_bundle, tmp_path, capsys):
    from presil.host.zoo.digits import digits_split
    x = digits_split()[2][:1]
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(digits_bundle), "--device", "golden:", "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (1, 10)
    assert "cycles" in capsys.readouterr().err


def test_run_on_a_device_through_the_driver_equals_golden(digits_bundle, tmp_path, capsys):
    from presil.host.zoo.digits import digits_split
    np.save(tmp_path / "x.npy", digits_split()[2][:1])
    for dev, out in (("golden:", "iss.npy"), ("golden:?mem=16M", "dev.npy")):
        assert main(["run", str(digits_bundle), "--device", dev, "--input", str(tmp_path / "x.npy"),
                     "-o", str(tmp_path / out)]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "dev.npy"), np.load(tmp_path / "iss.npy"))
    assert "BUSY_CYCLES" in capsys.readouterr().err


def test_run_unknown_device_is_a_named_error(digits_bundle, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    code = main(["run", str(digits_bundle), "--device", "fpga:0", "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npy")])
    line = _one_line_error(capsys, code, "BadDeviceURI")
    assert "fpga" in line


def test_verify_digits_json(tmp_path, capsys):
    import json
    code = main(["verify", "digits_cnn", "--against", "onnxruntime", "--samples", "5",
                 "--json", str(tmp_path / "r.json")])
    cap = capsys.readouterr()
    assert code == 0, cap.out + cap.err
    assert "% <=1" in cap.out and "PASS" in cap.out and "top-1 agreement: 5/5" in cap.out
    assert "sample 5/5" in cap.err  # progress
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["passed"] and rep["samples"] == 5 and rep["layers"]


def test_verify_exit_1_when_targets_missed(tmp_path, capsys, monkeypatch):
    from presil.host.compiler import verify
    monkeypatch.setattr(verify, "TARGET_WITHIN_1", 100.1)  # unreachable
    assert main(["verify", "digits_cnn", "--samples", "2"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_error_unsupported_op(tmp_path, capsys):
    onnx.save(cm.custom_op(), str(tmp_path / "m.onnx"))
    np.save(tmp_path / "c.npy", np.zeros((2, 1, 3, 6, 6), np.float32))
    code = main(["compile", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npy"),
                 "-o", str(tmp_path / "o.presil")])
    assert "FancyActivation" in _one_line_error(capsys, code, "UnsupportedOpError")


def test_error_dynamic_shape(tmp_path, capsys):
    b = cm.Builder(0)
    y = b.relu(b.conv("x", 3, 4, 3))
    onnx.save(b.model((1, 3, 6, 6), [y], dynamic_batch=True), str(tmp_path / "m.onnx"))
    np.save(tmp_path / "c.npy", np.zeros((2, 1, 3, 6, 6), np.float32))
    code = main(["compile", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "c.npy"),
                 "-o", str(tmp_path / "o.presil")])
    _one_line_error(capsys, code, "DynamicShapeError")


def test_error_missing_calibration(tmp_path, capsys):
    onnx.save(cm.conv_bn_relu(), str(tmp_path / "m.onnx"))
    code = main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.presil")])
    assert "--calib" in _one_line_error(capsys, code, "CalibrationError")
    code = main(["compile", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "nope.npy"),
                 "-o", str(tmp_path / "o.presil")])
    _one_line_error(capsys, code, "CalibrationError")


def test_error_malformed_onnx(tmp_path, capsys):
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 10)
    code = main(["compile", str(tmp_path / "bad.onnx"), "--calib", "x.npy", "-o", str(tmp_path / "o")])
    _one_line_error(capsys, code, "ModelError")
    code = main(["verify", "no_such_model_or_file"])
    _one_line_error(capsys, code, "error")


def test_error_bad_bundle(tmp_path, capsys):
    (tmp_path / "b.presil").write_bytes(b"junk")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.float32))
    code = main(["run", str(tmp_path / "b.presil"), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npy")])
    _one_line_error(capsys, code, "BundleError")

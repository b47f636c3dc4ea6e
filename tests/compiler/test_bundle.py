"""bundle.py: the bundle file, Bundle.run on the golden ISS (+ host segments in
onnxruntime), and every zoo model compiled and verified against onnxruntime."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

import compiler_models as cm
from presil.host import zoo
from presil.host.compiler import zoodata
from presil.host.compiler.bundle import Bundle, BundleError, DeviceUnavailableError, compile_model
from presil.host.compiler.reference import run_ir
from presil.host.compiler.verify import verify_bundle


@pytest.fixture(scope="module")
def host_middle():
    rng = np.random.default_rng(3)
    return compile_model(cm.host_middle(), [rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
                                            for _ in range(8)])


def test_bundle_file_roundtrip(host_middle, tmp_path):
    b = host_middle
    path = tmp_path / "m.presil"
    b.save(path)
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        man = json.loads(z.read("manifest.json"))
    devices = [s["device"] for s in man["segments"]]
    assert devices == ["npu", "host", "npu", "host", "npu"]  # Concat, Sigmoid on the host
    for s in man["segments"]:
        assert s["file"] in names and s["file"].endswith(".prog" if s["device"] == "npu" else ".onnx")
    assert "quantized.onnx" in names
    assert man["inputs"][0]["name"] == "x" and man["inputs"][0]["shape"] == [1, 3, 9, 9]
    assert man["inputs"][0]["quant"]["scale"] > 0
    b2 = Bundle.load(path)
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 9)).astype(np.float32)
    o1, v1 = b.run(x, return_intermediates=True)
    o2, v2 = b2.run({"x": x}, return_intermediates=True)
    for k in o1:
        assert np.array_equal(o1[k], o2[k])
    ref = run_ir(b.graph, b.graph.quantize_inputs({"x": x}))
    for t, v in ref.items():  # every layer's tensor, NPU and host, bit-exact
        assert np.array_equal(np.asarray(v2[t]).reshape(v.shape), v), t
    assert b2.last_run["total_cycles"] > 0 and len(b2.last_run["cycles"]) == 3


def test_bundle_errors(host_middle, tmp_path):
    with pytest.raises(DeviceUnavailableError, match="fpga:0"):
        host_middle.run(np.zeros((1, 3, 9, 9), np.float32), device="fpga:0")
    with pytest.raises(BundleError, match="shape"):
        host_middle.run(np.zeros((1, 3, 8, 8), np.float32))
    bad = tmp_path / "bad.presil"
    bad.write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a zip"):
        Bundle.load(bad)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "other"}))
    with pytest.raises(BundleError, match="unsupported bundle format"):
        Bundle.from_bytes(buf.getvalue())
    with pytest.raises(BundleError, match="not found"):
        Bundle.load(tmp_path / "missing.presil")
    # A corrupted program inside the zip: the program reader's named error, wrapped.
    src = zipfile.ZipFile(io.BytesIO(host_middle.to_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in src.namelist():
            data = bytearray(src.read(n))
            if n == "npu0.prog":
                data[200] ^= 0xFF
            z.writestr(n, bytes(data))
    with pytest.raises(BundleError, match="npu0.prog: CRC mismatch"):
        Bundle.from_bytes(buf.getvalue())


# -- zoo ---------------------------------------------------------------------------

FAST_ZOO = ["digits_cnn", "resnet8", "dscnn", "autoencoder_ad", "mobilenet_v1_025_vww"]
# Measured (20 samples, single-rounding MBQM): golden == run_ir bit-exactly and every layer
# run alone on onnxruntime's inputs agrees except 3 of 4.6 M elements, each 1 LSB, each within
# 4e-6 LSB of a tie where onnxruntime's float32 multiplier fl(fl(x_s*w_s)*fl(1/y_s)) is one
# ulp low (e.g. Conv2d_3_depthwise, acc 4663: exact 46.5000023 -> 47, onnxruntime lands on
# 46.5 and rounds to even, 46).  The seeded-weight net amplifies that single element to 9 LSB
# at the 2 logits (samples 13, 14: 38/40 = 95% within 1 LSB).  Not our arithmetic: onnxruntime
# against itself (same QDQ model, fused QLinear kernels vs optimisations off) also gives 95.00%.
KNOWN_ORT_GAP = {
    "mobilenet_v1_025_vww": "2 of 40 logits > 1 LSB: one float32-tie element of onnxruntime amplified "
                            "by the model (onnxruntime fused vs unfused: also 95.00%)",
}


def _verify_zoo(name: str, n: int):
    calib, _ = zoodata.calibration(name)
    b = compile_model(zoo.build(name), calib, name=name)
    xs, labels, _ = zoodata.samples(name, n)
    # Races depend only on the (data-independent) schedule: one race-checked run below suffices.
    rep = verify_bundle(b, xs, labels=labels, classifier=zoodata.is_classifier(name), check_races=False)
    # The golden ISS must equal the IR on the golden ops exactly (same arithmetic).
    x0 = xs[0]
    _, vals = b.run(x0, return_intermediates=True, check_races=True)
    ref = run_ir(b.graph, b.graph.quantize_inputs({b.manifest["inputs"][0]["name"]: x0}))
    mism = [t for t, v in ref.items() if not np.array_equal(np.asarray(vals[t]).reshape(np.shape(v)), v)]
    top1 = f"{rep.top1_pct:.1f}%" if rep.top1_pct is not None else "n/a"
    print(f"\n[{name}] {n} samples: final {rep.final_within_1:.2f}% within 1 LSB, "
          f"{rep.final_equal:.2f}% equal (max {rep.final_max_lsb:g}); top-1 agreement {top1}; "
          f"first divergent: {rep.first_divergent}; each layer alone max {rep.alone_max:g} LSB; "
          f"cycles {rep.golden_cycles:,}")
    return rep, mism


def test_verify_names_a_layer_whose_own_arithmetic_differs(monkeypatch):
    """The 'alone' comparison must catch a layer wrong by itself (here: one layer's
    golden op made 2 LSB high), while the chained columns (the ISS) stay clean."""
    from presil.host.compiler import reference
    calib, _ = zoodata.calibration("digits_cnn")
    b = compile_model(zoo.build("digits_cnn"), calib, name="digits_cnn")
    xs, labels, _ = zoodata.samples("digits_cnn", 2)
    target = next(n for n in b.graph.nodes if n.device == "npu" and n.op == "Conv" and n is not b.graph.nodes[0])
    real = reference._run_npu_node

    def off_by_two(g, n, v):
        y = real(g, n, v)
        return np.clip(y.astype(np.int32) + 2, -128, 127).astype(np.int8) if n is target else y

    monkeypatch.setattr(reference, "_run_npu_node", off_by_two)
    rep = verify_bundle(b, xs, labels=labels, check_races=False)
    assert 2 <= rep.alone_max <= 3 and rep.first_divergent_alone == target.outputs[0], rep.table()
    assert rep.first_divergent is None and rep.passed


@pytest.mark.parametrize("name", FAST_ZOO)
def test_zoo_golden_vs_onnxruntime(name):
    rep, mism = _verify_zoo(name, 20)
    assert not mism, f"ISS differs from run_ir on {mism}"
    # Golden's own arithmetic: every layer fed onnxruntime's inputs is within 1 LSB.
    assert rep.alone_max <= 1, rep.table()
    if name in KNOWN_ORT_GAP:
        assert rep.top1_pct == 100.0
        if not rep.passed:
            pytest.xfail(f"{name}: {rep.final_within_1:.2f}% within 1 LSB: {KNOWN_ORT_GAP[name]}")
    assert rep.passed, rep.summary()


# Measured (3 samples): golden == run_ir; layers alone on onnxruntime's inputs differ in
# 143 of 50.5 M (resnet50) and 60 of 29.3 M (ssd) elements, all 1 LSB, all near a tie within
# onnxruntime's float32 requantisation error.  These seeded-weight nets amplify each one (resnet50:
# 3 -> 803 differing elements in 5 layers, 36 LSB by layer4), so the same gap appears between
# onnxruntime and itself: fused QLinear kernels vs optimisations off give 51.07% (resnet50) and
# 55.00% (ssd) within 1 LSB, against golden's 41.0% and 52.4%.
KNOWN_ORT_GAP_BIG = {
    "resnet50_v1_5": "onnxruntime fused vs unfused on the same QDQ model: 51.07% within 1 LSB",
    "ssd_mobilenet_v1": "onnxruntime fused vs unfused on the same QDQ model: 55.00% within 1 LSB",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50_v1_5", "ssd_mobilenet_v1"])
def test_zoo_big_golden_vs_onnxruntime(name):
    rep, mism = _verify_zoo(name, 3)
    assert not mism, f"ISS differs from run_ir on {mism}"
    assert rep.alone_max <= 1, rep.table()
    if rep.top1_pct is not None:
        assert rep.top1_pct == 100.0
    if not rep.passed:
        pytest.xfail(f"{name}: final {rep.final_within_1:.2f}% within 1 LSB of onnxruntime: "
                     f"float32-tie differences amplified by the model ({KNOWN_ORT_GAP_BIG[name]})")


def test_digits_int8_accuracy_mlperf_rule():
    """MLPerf closed division: int8 accuracy >= 99% of FP32 on the held-out split."""
    from presil.host.zoo.digits import digits_split, heldout_accuracy
    calib, _ = zoodata.calibration("digits_cnn")
    b = compile_model(zoo.build("digits_cnn"), calib, name="digits_cnn")
    _, _, x_test, y_test = digits_split()
    fp32 = heldout_accuracy()
    fp32 = fp32 / 100.0 if fp32 > 1 else fp32
    name = b.manifest["outputs"][0]["name"]
    pred = np.array([int(np.argmax(b.run(x_test[i:i + 1])[name])) for i in range(len(x_test))])
    int8 = float(np.mean(pred == y_test))
    print(f"\n[digits_cnn] held-out accuracy ({len(y_test)} samples): FP32 {100 * fp32:.2f}%, "
          f"int8 on golden {100 * int8:.2f}% ({100 * int8 / fp32:.2f}% of FP32)")
    assert int8 >= 0.99 * fp32

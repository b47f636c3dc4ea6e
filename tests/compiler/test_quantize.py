"""quantize.py: QDQ output format, BN folding, calibration data, named errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compiler_models import Builder, calib, conv_bn_relu, custom_op, mixed_cnn
from presil.host.compiler import (CalibrationError, DynamicShapeError, ModelError,
                                  UnsupportedOpError, quantize)
from presil.host.compiler.fold import fold_batchnorm
from presil.host.compiler.quantize import prepare_fp32


def _run(model, x):
    import onnxruntime as ort
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _dq_inits(q: onnx.ModelProto):
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    for n in q.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in inits:
            yield n, inits[n.input[0]], inits[n.input[1]], inits[n.input[2]]


def test_qdq_format_matches_the_npu():
    q = quantize(conv_bn_relu(), calib((1, 3, 12, 12)))
    ops = [n.op_type for n in q.graph.node]
    assert "BatchNormalization" not in ops and "Relu" not in ops  # folded / fused into the range
    assert ops.count("Conv") == 1
    kinds = {}
    for n, v, s, z in _dq_inits(q):
        kinds[v.dtype] = (s.shape, z)
        if v.dtype == np.int8:  # weights: per output channel, symmetric
            assert s.shape == (8,) and np.all(z == 0) and v.min() >= -127
    assert set(kinds) == {np.dtype(np.int8), np.dtype(np.int32)}  # int8 weights, int32 bias
    for n in q.graph.node:  # activations: per-tensor int8
        if n.op_type == "QuantizeLinear":
            zp = numpy_helper.to_array(next(t for t in q.graph.initializer if t.name == n.input[2]))
            assert zp.dtype == np.int8 and zp.size == 1


@pytest.mark.parametrize("make", [conv_bn_relu, mixed_cnn])
def test_bn_fold_preserves_fp32_outputs(make):
    m = make()
    folded, count = fold_batchnorm(m)
    assert count >= 1
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        ref = _run(m, x)
        for other in (folded, prepare_fp32(m)):
            got = _run(other, x)
            rel = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)
            assert rel <= 1e-4, rel


def test_gemm_bn_fold():
    b = Builder(9)
    y = b.relu(b.bn(b.gemm("x", 20, 6), 6))
    m = b.model((1, 20), [y])
    folded, count = fold_batchnorm(m)
    assert count == 1
    x = np.random.default_rng(0).standard_normal((1, 20)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(m, x), rtol=1e-4, atol=1e-5)


def _scales(q):
    return sorted(float(numpy_helper.to_array(t).reshape(-1)[0]) for t in q.graph.initializer
                  if t.name.endswith("_scale"))


def test_calibration_formats_agree(tmp_path):
    m = conv_bn_relu()
    samples = calib((1, 3, 12, 12), n=6)
    ref = _scales(quantize(m, samples))
    stacked = np.concatenate(samples)                      # (6, 3, 12, 12): a batch
    np.save(tmp_path / "c.npy", stacked)
    np.savez(tmp_path / "c.npz", x=stacked)
    for data in (stacked, {"x": samples}, tmp_path / "c.npy", str(tmp_path / "c.npz")):
        assert _scales(quantize(m, data)) == pytest.approx(ref)


@pytest.mark.parametrize("data, words", [
    (None, ["no calibration data", "'x'"]),
    ([], ["empty", "'x'"]),
    ("/nonexistent/calib.npz", ["not found"]),
    ([np.zeros((1, 3, 5, 5), np.float32)], ["'x'", "[1, 3, 5, 5]", "[1, 3, 12, 12]"]),
    ({"y": np.zeros((1, 3, 12, 12))}, ["'x'"]),
    ([np.full((1, 3, 12, 12), np.nan, np.float32)], ["NaN"]),
])
def test_missing_or_bad_calibration_is_named(data, words):
    with pytest.raises(CalibrationError) as e:
        quantize(conv_bn_relu(), data)
    for w in words:
        assert w in str(e.value)


def test_malformed_onnx_bytes():
    with pytest.raises(ModelError, match="not a valid ONNX protobuf"):
        quantize(b"\x08\x07garbage\xff\xff\x00not onnx", calib((1, 3, 12, 12)))
    with pytest.raises(ModelError, match="not found"):
        quantize("/nonexistent/model.onnx", calib((1, 3, 12, 12)))


def test_malformed_graph_names_the_problem():
    m = conv_bn_relu()
    m.graph.node[0].input[0] = "does_not_exist"
    with pytest.raises(ModelError) as e:
        quantize(m.SerializeToString(), calib((1, 3, 12, 12)))
    assert "does_not_exist" in str(e.value)


def test_dynamic_batch_then_fixed_with_input_shapes():
    b = Builder(0)
    y = b.relu(b.conv("x", 3, 4, 3))
    m = b.model((1, 3, 8, 8), [y], dynamic_batch=True)
    with pytest.raises(DynamicShapeError) as e:
        quantize(m, calib((1, 3, 8, 8)))
    msg = str(e.value)
    assert "'x'" in msg and "dimension 0" in msg and "'N'" in msg and "input_shapes" in msg
    assert e.value.input_name == "x" and e.value.dim_index == 0
    q = quantize(m, calib((1, 3, 8, 8)), input_shapes={"x": [1, 3, 8, 8]})
    assert [d.dim_value for d in q.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 8, 8]
    with pytest.raises(ModelError, match="not a model input"):
        quantize(m, calib((1, 3, 8, 8)), input_shapes={"image": [1, 3, 8, 8]})


def test_custom_domain_op_is_named_before_calibration():
    with pytest.raises(UnsupportedOpError) as e:
        quantize(custom_op(), calib((1, 3, 6, 6)))
    assert "fancyactivation" in str(e.value).lower() and "FancyActivation" in str(e.value)
    assert e.value.op_type == "FancyActivation" and e.value.node_name.startswith("fancyactivation")

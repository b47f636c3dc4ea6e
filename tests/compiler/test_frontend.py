"""frontend.py + reference.py: QDQ -> IR recognition, and the IR on golden ops
against onnxruntime on the same QDQ model."""

from __future__ import annotations

import numpy as np
import pytest

import compiler_models as cm
from presil.golden import ops
from presil.host.compiler import ModelError, UnsupportedOpError, quantize, to_ir
from presil.host.compiler import ir
from presil.host.compiler.reference import (agreement_table, compare_layers, first_divergent,
                                            run_ir, run_onnx_layers)

MODELS = {
    "conv_bn_relu": (cm.conv_bn_relu, (1, 3, 12, 12)),
    "mixed_cnn": (cm.mixed_cnn, (1, 3, 17, 17)),
    "residual_scales": (cm.residual_scales, (1, 4, 10, 10)),
    "flatten_head": (cm.flatten_head, (1, 2, 6, 6)),
    "matmul_head": (cm.matmul_head, (1, 3, 5, 5)),
    "host_middle": (cm.host_middle, (1, 3, 9, 9)),
}


def _get(measure, name):
    make, shape = MODELS[name]
    return measure(name, make, shape)


def test_mixed_cnn_recognised(measure):
    g = _get(measure, "mixed_cnn").graph
    assert [n.op for n in g.nodes] == (["Conv"] * 5 + ["Add", "MaxPool", "AvgPool", "Conv",
                                       "GlobalAvgPool", "FullyConnected", "HostOp"])
    c0, dw, pw, c7 = g.nodes[:4]
    assert c0.stride == (2, 2) and c0.pads == (0, 0, 1, 1) and c0.weights.shape == (19, 3, 3, 3)
    assert dw.depthwise and dw.groups == 19 and dw.weights.shape == (19, 3, 3, 1)
    assert pw.kernel == (1, 1) and c7.kernel == (7, 7) and c7.pads == (3, 3, 3, 3)
    for n in g.nodes[:5]:
        assert n.weights.dtype == np.int8 and n.bias.dtype == np.int32
        m, s = ops.conv_requant_params(g.tensors[n.inputs[0]].quant.scale, n.w_scales,
                                       g.tensors[n.outputs[0]].quant.scale)
        assert np.array_equal(m, n.multiplier) and np.array_equal(s, n.shift)
    assert g.nodes[7].count_include_pad
    mp = g.nodes[6]
    assert g.tensors[mp.inputs[0]].quant == g.tensors[mp.outputs[0]].quant
    host = g.nodes[-1]
    assert host.device == "host" and host.onnx_ops == "Softmax"
    assert g.tensors[g.outputs[0]].dtype == "float32"
    # NHWC shapes throughout
    assert g.tensors[g.inputs[0]].shape == (1, 17, 17, 3)
    assert g.tensors[c0.outputs[0]].shape == (1, 8, 8, 19)  # (17 + 0 + 1 - 3) // 2 + 1
    text = g.dump()
    assert "dw 3x3" in text and "pads(t,l,b,r)=(0, 0, 1, 1)" in text and "HostOp" in text
    assert "FullyConnected" in g.summary() and f"{g.macs():,}" in g.summary()


def test_residual_add_with_different_input_scales(measure):
    m = _get(measure, "residual_scales")
    add = next(n for n in m.graph.nodes if n.op == "Add")
    sa, sb = (m.graph.tensors[t].quant.scale for t in add.inputs)
    assert max(sa, sb) / min(sa, sb) > 2
    assert add.act_min == m.graph.tensors[add.outputs[0]].quant.zero_point  # ReLU clamp
    assert tuple(add.params) == ops.add_params(sa, sb, m.graph.tensors[add.outputs[0]].quant.scale)


def test_free_flatten_and_reshape(measure):
    g = _get(measure, "flatten_head").graph
    assert [n.op for n in g.nodes] == ["Conv", "FullyConnected"]  # Flatten costs nothing
    fc = g.nodes[1]
    assert g.tensors[fc.inputs[0]].shape == (1, 3, 3, 5)     # weights permuted to HWC
    assert fc.activation == "relu6" or fc.act_max <= 127
    g2 = _get(measure, "matmul_head").graph
    assert [n.op for n in g2.nodes] == ["Conv", "GlobalAvgPool", "FullyConnected"]
    assert np.all(g2.nodes[2].bias == 0)


def test_host_ops_between_npu_ops(measure):
    g = _get(measure, "host_middle").graph
    ops_ = [n.op if n.device == "npu" else n.onnx_ops for n in g.nodes]
    assert ops_ == ["Conv", "Conv", "Concat", "Conv", "Sigmoid", "Conv"]
    concat = g.nodes[2]
    assert all(g.tensors[t].dtype == "int8" for t in concat.inputs + concat.outputs)


@pytest.mark.parametrize("name", list(MODELS))
def test_golden_ir_agrees_with_onnxruntime(measure, name):
    m = _get(measure, name)
    print(m.report(name))
    assert m.pct_within_1 >= 99.0
    assert m.isolated_max <= 1, agreement_table(m.chain)  # each layer alone: <= 1 LSB
    assert m.top1_same == len(m.inputs) * len(m.graph.outputs)
    for d in m.final_float:
        assert d.max() < 0.02


def test_layer_table_and_first_divergent(measure):
    m = _get(measure, "mixed_cnn")
    g = m.graph
    feeds = m.inputs[0]
    a, b = run_ir(g, g.quantize_inputs(feeds)), run_onnx_layers(m.qdq, g, feeds)
    rows = compare_layers(a, b)
    assert [r.tensor for r in rows] == [t for t in a if t in b]
    table = agreement_table(rows)
    print(table)
    assert "max|d|" in table
    # A corrupted weight must show up as the first divergent layer.
    conv = g.nodes[2]
    conv.bias = conv.bias + 5000
    try:
        bad = first_divergent(compare_layers(run_ir(g, g.quantize_inputs(feeds)), b))
    finally:
        conv.bias = conv.bias - 5000
    assert bad is not None and bad.tensor == conv.outputs[0]


def test_folded_bias_makes_padding_free():
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (1, 5, 5, 7), dtype=np.int8)
    w = rng.integers(-127, 128, (4, 3, 3, 7), dtype=np.int8)
    xt = ir.Tensor("x", x.shape, "int8", ir.QParams(0.05, 9))
    yt = ir.Tensor("y", (1, 3, 3, 4), "int8", ir.QParams(0.5, -3))
    n = ir.Conv.build("c", xt, yt, w, np.full(4, 0.01), rng.integers(-999, 999, 4))
    raw = ops.conv2d_acc(x, w, 0).astype(np.int64) + n.folded_bias(9)
    assert np.array_equal(raw, ops.conv2d_acc(x, w, 9).astype(np.int64) + n.bias)


def test_unsupported_custom_op_names_node():
    with pytest.raises(UnsupportedOpError) as e:
        to_ir(cm.custom_op())
    assert "FancyActivation" in str(e.value) and e.value.node_name in str(e.value)


def test_malformed_qdq_model():
    with pytest.raises(ModelError):
        to_ir(b"\x01\x02\x03")


def test_clip_generic_bounds():
    b = cm.Builder(11)
    y = b.node("Clip", [b.conv("x", 3, 4, 3), b.const(np.float32(-0.5)), b.const(np.float32(0.7))])
    y = b.conv(y, 4, 4, 1, pads=[0, 0, 0, 0])
    q = quantize(b.model((1, 3, 6, 6), [y]), cm.calib((1, 3, 6, 6)))
    g = to_ir(q)
    assert [n.op for n in g.nodes] == ["Conv", "Conv"]

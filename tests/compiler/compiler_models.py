"""Small hand-made FP32 ONNX graphs (NCHW) for the compiler tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Builder:
    """Tiny graph builder: every method appends a node and returns its output name."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def _name(self, op: str) -> str:
        self.n += 1
        return f"{op.lower()}{self.n}"

    def const(self, a, name=None) -> str:
        name = name or f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(a), name))
        return name

    def node(self, op, inputs, n_out=1, domain=None, **attrs) -> str:
        name = self._name(op)
        outs = [f"{name}_out{i}" if i else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0]

    def conv(self, x, cin, cout, k, stride=1, pads=None, groups=1, bias=True, wscale=None):
        kh, kw = (k, k) if isinstance(k, int) else k
        wscale = wscale or 1.0 / np.sqrt(cin // groups * kh * kw)
        w = self.const((self.rng.standard_normal((cout, cin // groups, kh, kw)) * wscale).astype(np.float32))
        ins = [x, w]
        if bias:
            ins.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32)))
        pads = pads if pads is not None else [kh // 2, kw // 2, kh // 2, kw // 2]
        return self.node("Conv", ins, kernel_shape=[kh, kw], strides=[stride, stride],
                         pads=list(pads), group=groups)

    def bn(self, x, c):
        r = self.rng
        return self.node("BatchNormalization", [
            x, self.const((1 + 0.3 * r.standard_normal(c)).astype(np.float32)),
            self.const((0.2 * r.standard_normal(c)).astype(np.float32)),
            self.const((0.1 * r.standard_normal(c)).astype(np.float32)),
            self.const((0.5 + r.random(c)).astype(np.float32))], epsilon=1e-5)

    def relu(self, x):
        return self.node("Relu", [x])

    def relu6(self, x):
        return self.node("Clip", [x, self.const(np.float32(0)), self.const(np.float32(6))])

    def gemm(self, x, k, n):
        w = self.const((self.rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32))
        b = self.const((self.rng.standard_normal(n) * 0.1).astype(np.float32))
        return self.node("Gemm", [x, w, b], transB=1)

    def model(self, x_shape, outputs, x_name="x", dynamic_batch=False) -> onnx.ModelProto:
        shape = (["N"] + list(x_shape[1:])) if dynamic_batch else list(x_shape)
        inp = helper.make_tensor_value_info(x_name, TensorProto.FLOAT, shape)
        # Output shapes by inference (the checker wants one), symbolic batch kept.
        g = helper.make_graph(self.nodes, "test", [inp], [], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
        m.ir_version = 8
        if outputs:
            vi = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
            m.graph.output.extend(vi[o] for o in outputs)
        return m


def conv_bn_relu(seed=0):
    b = Builder(seed)
    y = b.relu(b.bn(b.conv("x", 3, 8, 3, bias=False), 8))
    return b.model((1, 3, 12, 12), [y])


def mixed_cnn(seed=1):
    """Every NPU op kind on one path: stride-2 asymmetric pad, depthwise, 1x1, 7x7,
    odd channel counts, residual add, pools, Gemm head, Softmax tail."""
    b = Builder(seed)
    y = b.relu(b.bn(b.conv("x", 3, 19, 3, stride=2, pads=[0, 0, 1, 1]), 19))   # 17x17 -> 8x8
    y = b.relu6(b.conv(y, 19, 19, 3, groups=19))                               # depthwise
    s = b.conv(y, 19, 21, 1, pads=[0, 0, 0, 0])                                # 1x1
    t = b.relu(b.conv(s, 21, 21, 7))                                           # 7x7
    t = b.conv(t, 21, 21, 3)
    y = b.relu(b.node("Add", [s, t]))                                          # residual
    y = b.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = b.node("AveragePool", [y], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
               count_include_pad=1)
    y = b.conv(y, 21, 33, 3)
    y = b.node("GlobalAveragePool", [y])
    y = b.node("Flatten", [y], axis=1)
    y = b.gemm(y, 33, 10)
    y = b.node("Softmax", [y], axis=1)
    return b.model((1, 3, 17, 17), [y])


def calib(shape, n=16, seed=123):
    return [np.random.default_rng(seed + i).standard_normal(shape).astype(np.float32) for i in range(n)]


def residual_scales(seed=2):
    """Residual Add whose inputs have very different scales (x0.1 branch)."""
    b = Builder(seed)
    s = b.relu(b.conv("x", 4, 16, 3))
    t = b.conv(s, 16, 16, 3, wscale=0.02)
    y = b.relu(b.node("Add", [s, t]))
    return b.model((1, 4, 10, 10), [y])


def flatten_head(seed=3):
    """Flatten of a 3x3x5 map (NCHW order != NHWC order) straight into a Gemm, + Relu6."""
    b = Builder(seed)
    y = b.relu(b.conv("x", 2, 5, 3, stride=2, pads=[1, 1, 1, 1]))
    y = b.node("Flatten", [y], axis=1)
    y = b.relu6(b.gemm(y, 45, 7))
    return b.model((1, 2, 6, 6), [y])


def matmul_head(seed=4):
    """GlobalAveragePool -> Reshape (free) -> MatMul without bias."""
    b = Builder(seed)
    y = b.relu(b.conv("x", 3, 12, 1, pads=[0, 0, 0, 0]))
    y = b.node("GlobalAveragePool", [y])
    y = b.node("Reshape", [y, b.const(np.array([1, 12], np.int64))])
    w = b.const((b.rng.standard_normal((12, 6)) / np.sqrt(12)).astype(np.float32))
    y = b.node("MatMul", [y, w])
    return b.model((1, 3, 5, 5), [y])


def host_middle(seed=5):
    """Host ops between NPU ops: channel Concat (NCHW axis 1) and Sigmoid."""
    b = Builder(seed)
    p = b.relu(b.conv("x", 3, 6, 3))
    q = b.conv("x", 3, 5, 1, pads=[0, 0, 0, 0])
    y = b.node("Concat", [p, q], axis=1)
    y = b.node("Sigmoid", [b.conv(y, 11, 8, 3)])
    y = b.conv(y, 8, 4, 3, stride=2, pads=[1, 1, 0, 0])
    return b.model((1, 3, 9, 9), [y])


def custom_op(seed=6):
    b = Builder(seed)
    y = b.node("FancyActivation", [b.conv("x", 3, 4, 3)], domain="com.example")
    m = b.model((1, 3, 6, 6), [], x_name="x")
    m.graph.output.extend([onnx.helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 4, 6, 6])])
    m.opset_import.extend([onnx.helper.make_opsetid("com.example", 1)])
    return m

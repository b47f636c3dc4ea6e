"""QDQ ONNX (from quantize.py or any onnxruntime QDQ model) -> presil IR.

Pattern: DequantizeLinear(int8 activation) -> op -> [Relu | Clip] ->
QuantizeLinear becomes one NPU node when the op, its attributes and its
weights fit the NPU; anything else that a standard ONNX runtime can execute
becomes a HostOp (float on the host).  Flatten/Reshape/Squeeze that merely
drop 1x1 spatial dims (identical bytes in NCHW and NHWC) become aliases.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from . import ir
from .errors import ModelError, UnsupportedOpError
from .hostexec import host_can_run
from .quantize import load_model

_ACTS = ("Relu", "Clip")
_FREE_RESHAPES = ("Flatten", "Reshape", "Squeeze")


@dataclass
class _ConstDQ:
    """A dequantised initializer: q (integer), scale, zero point, axis."""
    q: np.ndarray
    scale: np.ndarray
    zp: np.ndarray
    axis: int

    def real(self) -> np.ndarray:
        s, z = self.scale, self.zp.astype(np.int64)
        if s.ndim == 1 and s.size > 1:
            shape = [1] * self.q.ndim
            shape[self.axis] = -1
            s, z = s.reshape(shape), z.reshape(shape)
        return ((self.q.astype(np.int64) - z) * s).astype(np.float32)


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


class _Frontend:
    def __init__(self, model: onnx.ModelProto, name: str | None):
        try:
            model = shape_inference.infer_shapes(model)
        except Exception as exc:
            raise ModelError(f"shape inference failed on the QDQ model: {exc}") from exc
        self.model = model
        g = model.graph
        self.g = ir.Graph(name or g.name or "model")
        self.opset = {o.domain or "": o.version for o in model.opset_import}
        self.inits: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:  # Constant nodes are initializers in disguise
            if n.op_type == "Constant" and _attr(n, "value") is not None:
                self.inits[n.output[0]] = numpy_helper.to_array(_attr(n, "value"))
        self.shapes: dict[str, tuple] = {}
        for vi in list(g.value_info) + list(g.input) + list(g.output):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self.graph_outputs = {o.name for o in g.output}
        self.qparams: dict[str, ir.QParams] = {}  # Q output -> params
        self.dq_act: dict[str, str] = {}            # DQ float output -> int8 tensor name
        self.dq_const: dict[str, _ConstDQ] = {}     # DQ float output -> constant
        self.alias: dict[str, str] = {}             # int8 tensor -> IR tensor it equals
        self.done: set[int] = set()                 # ids of absorbed nodes
        self._index_qdq()

    # -- indexing ----------------------------------------------------------
    def _scalar_qparams(self, node) -> ir.QParams | None:
        s = self.inits.get(node.input[1])
        z = self.inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else np.int8(0)
        if s is None or z is None or s.size != 1 or z.size != 1 or z.dtype != np.int8:
            return None
        return ir.QParams(float(s.reshape(())), int(z.reshape(())))

    def _index_qdq(self):
        for n in self.model.graph.node:
            if n.op_type == "QuantizeLinear":
                qp = self._scalar_qparams(n)
                if qp is None:
                    raise UnsupportedOpError(n.name, n.op_type, "only per-tensor int8 activations "
                                             "(scalar scale, int8 zero point) are supported")
                self.qparams[n.output[0]] = qp
            elif n.op_type == "DequantizeLinear":
                if n.input[0] in self.inits:
                    # scale / zero point: scalars (per tensor) or 1-D (per channel on axis)
                    s = np.asarray(self.inits[n.input[1]], np.float64)
                    z = np.asarray(self.inits[n.input[2]] if len(n.input) > 2 and n.input[2]
                                   else np.zeros_like(s, np.int64))
                    self.dq_const[n.output[0]] = _ConstDQ(
                        self.inits[n.input[0]], s.reshape(-1) if s.ndim else s,
                        z.reshape(-1) if z.ndim else z, int(_attr(n, "axis", 1)))
                else:
                    self.dq_act[n.output[0]] = n.input[0]

    # -- helpers -------------------------------------------------------------
    def _shape(self, name: str) -> tuple:
        if name not in self.shapes:
            raise ModelError(f"tensor '{name}' has no static shape after shape inference")
        return self.shapes[name]

    def _resolve(self, q: str) -> str:
        while q in self.alias:
            q = self.alias[q]
        return q

    def _act_in(self, f: str) -> str | None:
        """IR int8 tensor behind float tensor f (a DQ of an activation), else None."""
        if f in self.dq_act:
            q = self._resolve(self.dq_act[f])
            if q in self.g.tensors and self.g.tensors[q].dtype == "int8":
                return q
        return None

    def _int8_tensor(self, q: str, shape_of: str) -> ir.Tensor:
        if q in self.g.tensors:
            return self.g.tensors[q]
        return self.g.add_tensor(ir.Tensor(q, ir.nhwc_shape(self._shape(shape_of)), "int8",
                                           self.qparams[q]))

    def _only_q(self, f: str):
        """The single QuantizeLinear consuming f (and nothing else), else None."""
        cons = self.consumers.get(f, [])
        if f in self.graph_outputs or len(cons) != 1 or cons[0].op_type != "QuantizeLinear":
            return None
        return cons[0]

    def _fused_output(self, node):
        """(Q node, activation node or None, activation, clip) after node's output."""
        f = node.output[0]
        q = self._only_q(f)
        if q is not None:
            return q, None, "none", (None, None)
        cons = self.consumers.get(f, [])
        if f in self.graph_outputs or len(cons) != 1 or cons[0].op_type not in _ACTS:
            return None
        a = cons[0]
        q = self._only_q(a.output[0])
        if q is None:
            return None
        if a.op_type == "Relu":
            return q, a, "relu", (None, None)
        lo, hi = self._clip_range(a)
        if lo == 0 and hi is None:
            return q, a, "relu", (None, None)
        if lo == 0 and hi == 6:
            return q, a, "relu6", (None, None)
        return q, a, "clip", (lo, hi)

    def _clip_range(self, a):
        if self.opset.get("", 13) < 11:
            lo, hi = _attr(a, "min"), _attr(a, "max")
        else:
            def get(i):
                if len(a.input) <= i or not a.input[i]:
                    return None
                v = self.inits.get(a.input[i])
                if v is None and a.input[i] in self.dq_const:
                    v = self.dq_const[a.input[i]].real()
                if v is None:
                    raise _NoMatch
                return float(np.asarray(v).reshape(()))
            lo, hi = get(1), get(2)
        return lo, hi

    def _absorb(self, *nodes):
        for n in nodes:
            if n is not None:
                self.done.add(id(n))

    # -- NPU patterns ----------------------------------------------------------
    def _weights(self, f: str, axis: int) -> _ConstDQ:
        c = self.dq_const.get(f)
        if c is None or c.q.dtype != np.int8 or np.any(c.zp != 0):
            raise _NoMatch  # float or asymmetric weights: not the NPU's format
        if c.scale.size > 1 and c.axis % c.q.ndim != axis:
            raise _NoMatch
        return c

    def _bias(self, node, idx: int, x_scale: float, w_scales: np.ndarray) -> np.ndarray | None:
        if len(node.input) <= idx or not node.input[idx]:
            return None
        c = self.dq_const.get(node.input[idx])
        if c is None or c.q.dtype != np.int32 or np.any(c.zp != 0):
            raise _NoMatch
        want = x_scale * w_scales
        scale = np.broadcast_to(c.scale, want.shape)
        if np.allclose(scale, want, rtol=1e-6, atol=0):
            return c.q.astype(np.int32).reshape(-1)
        # Bias quantised at another scale: re-express it at in*w (one rounding).
        return np.round(c.q.astype(np.float64) * scale / want).astype(np.int32)

    def _match(self, node) -> bool:
        try:
            fn = getattr(self, f"_npu_{node.op_type}", None)
            if fn is None:
                return False
            fn(node)
            return True
        except _NoMatch:
            return False

    def _out(self, node, allow_act=True):
        fo = self._fused_output(node)
        if fo is None or (not allow_act and fo[1] is not None):
            raise _NoMatch
        return fo

    def _x(self, f):
        x = self._act_in(f)
        if x is None:
            raise _NoMatch
        return self.g.tensors[x]

    def _npu_Conv(self, node):
        x = self._x(node.input[0])
        if len(x.shape) != 4 or any(d != 1 for d in _attr(node, "dilations", [1, 1])):
            raise _NoMatch
        wq = self._weights(node.input[1], 0)
        if wq.q.ndim != 4:
            raise _NoMatch
        o, _, kh, kw = wq.q.shape
        sh, sw = _attr(node, "strides", [1, 1])
        n, h, w, _ = x.shape
        pads = self._conv_pads(node, h, w, kh, kw, sh, sw)
        q, a, act, clip = self._out(node)
        out = self._int8_tensor(q.output[0], node.output[0])
        ws = np.broadcast_to(wq.scale.astype(np.float64), (o,))
        bias = self._bias(node, 2, x.quant.scale, ws)
        w_ohwi = np.ascontiguousarray(wq.q.transpose(0, 2, 3, 1))
        self.g.add_node(ir.Conv.build(node.name or out.name, x, out, w_ohwi, ws, bias,
                                      stride=(sh, sw), pads=pads, groups=_attr(node, "group", 1),
                                      activation=act, clip=clip))
        self._absorb(node, q, a)

    @staticmethod
    def _conv_pads(node, h, w, kh, kw, sh, sw):
        auto = _attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("NOTSET", ""):
            p = _attr(node, "pads", [0, 0, 0, 0])
            return (p[0], p[1], p[2], p[3])
        if auto == "VALID":
            return (0, 0, 0, 0)
        out = []
        for n, k, s in ((h, kh, sh), (w, kw, sw)):
            total = max(0, (-(-n // s) - 1) * s + k - n)
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return (out[0][0], out[1][0], out[0][1], out[1][1])

    def _fc(self, node, x, wq, w_nk, axis_scale_len, bias_idx):
        q, a, act, clip = self._out(node)
        out = self._int8_tensor(q.output[0], node.output[0])
        ws = np.broadcast_to(wq.scale.astype(np.float64), (axis_scale_len,))
        bias = self._bias(node, bias_idx, x.quant.scale, ws) if bias_idx is not None else None
        if len(x.shape) == 4:  # ONNX flattened NCHW (C, H, W); the IR input is (H, W, C)
            _, h, w, c = x.shape
            w_nk = w_nk.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(w_nk.shape[0], -1)
        self.g.add_node(ir.FullyConnected.build(node.name or out.name, x, out,
                                                np.ascontiguousarray(w_nk), ws, bias,
                                                activation=act, clip=clip))
        self._absorb(node, q, a)

    def _fc_input(self, f: str) -> ir.Tensor:
        x = self._x(f)
        # (B, K), or a flatten alias (B, H, W, C) NHWC of the ONNX (B, C*H*W).
        if len(x.shape) in (2, 4) and self._shape(f)[-1] == int(np.prod(x.shape[1:])):
            return x
        raise _NoMatch

    def _npu_Gemm(self, node):
        if (_attr(node, "alpha", 1.0) != 1.0 or _attr(node, "beta", 1.0) != 1.0
                or _attr(node, "transA", 0)):
            raise _NoMatch
        x = self._fc_input(node.input[0])
        trans_b = _attr(node, "transB", 0)
        wq = self._weights(node.input[1], 0 if trans_b else 1)
        w_nk = wq.q if trans_b else wq.q.T
        if len(node.input) > 2 and node.input[2] and self.dq_const.get(node.input[2]) is not None:
            if self.dq_const[node.input[2]].q.size != w_nk.shape[0]:
                raise _NoMatch  # broadcast bias shapes other than (N,)
        self._fc(node, x, wq, w_nk, w_nk.shape[0], 2)

    def _npu_MatMul(self, node):
        x = self._fc_input(node.input[0])
        wq = self._weights(node.input[1], 1)
        if wq.q.ndim != 2:
            raise _NoMatch
        self._fc(node, x, wq, wq.q.T, wq.q.shape[1], None)

    def _npu_Add(self, node):
        a, b = self._x(node.input[0]), self._x(node.input[1])
        if a.shape != b.shape:
            raise _NoMatch  # broadcasting adds run on the host
        q, act_node, act, clip = self._out(node)
        out = self._int8_tensor(q.output[0], node.output[0])
        self.g.add_node(ir.Add.build(node.name or out.name, a, b, out, activation=act, clip=clip))
        self._absorb(node, q, act_node)

    def _pool_geometry(self, node, x):
        k = _attr(node, "kernel_shape")
        if (len(x.shape) != 4 or k is None or len(k) != 2 or _attr(node, "ceil_mode", 0)
                or any(d != 1 for d in _attr(node, "dilations", [1, 1]))
                or len([o for o in node.output if o]) != 1):
            raise _NoMatch
        s = _attr(node, "strides", [1, 1])
        pads = self._conv_pads(node, x.shape[1], x.shape[2], k[0], k[1], s[0], s[1])
        if max(pads[0], pads[2]) >= k[0] or max(pads[1], pads[3]) >= k[1]:
            raise _NoMatch
        return tuple(k), tuple(s), pads

    def _npu_MaxPool(self, node):
        x = self._x(node.input[0])
        k, s, pads = self._pool_geometry(node, x)
        q, _, _, _ = self._out(node, allow_act=False)
        if self.qparams[q.output[0]] != x.quant:
            raise _NoMatch  # the NPU's max pool cannot requantise
        out = self._int8_tensor(q.output[0], node.output[0])
        self.g.add_node(ir.MaxPool(node.name or out.name, [x.name], [out.name],
                                   kernel=k, stride=s, pads=pads))
        self._absorb(node, q)

    def _npu_AveragePool(self, node):
        x = self._x(node.input[0])
        k, s, pads = self._pool_geometry(node, x)
        q, _, _, _ = self._out(node, allow_act=False)
        out = self._int8_tensor(q.output[0], node.output[0])
        self.g.add_node(ir.AvgPool.build(node.name or out.name, x, out, kernel=k, stride=s,
                                         pads=pads,
                                         count_include_pad=bool(_attr(node, "count_include_pad", 0))))
        self._absorb(node, q)

    def _npu_GlobalAveragePool(self, node):
        x = self._x(node.input[0])
        if len(x.shape) != 4:
            raise _NoMatch
        q, _, _, _ = self._out(node, allow_act=False)
        out = self._int8_tensor(q.output[0], node.output[0])
        self.g.add_node(ir.GlobalAvgPool.build(node.name or out.name, x, out))
        self._absorb(node, q)

    # -- free reshapes -------------------------------------------------------
    def _free_reshape(self, node) -> bool:
        if node.op_type not in _FREE_RESHAPES:
            return False
        x = self._act_in(node.input[0])
        if x is None:
            return False
        shape_in = self._shape(node.input[0])
        shape_out = self.shapes.get(node.output[0])
        if shape_out is None or len(shape_in) not in (2, 4) or len(shape_out) != 2:
            return False
        # (N, C, H, W) -> (N, C*H*W): the IR keeps the NHWC tensor; an FC
        # consumer permutes its weight columns from CHW to HWC order (see
        # _fc), a host consumer transposes back to NCHW before reshaping.
        if shape_out[0] != shape_in[0] or int(np.prod(shape_out)) != int(np.prod(shape_in)):
            return False
        q = self._only_q(node.output[0])
        if q is None or self.qparams[q.output[0]] != self.g.tensors[x].quant:
            return False
        self.alias[q.output[0]] = x
        self._absorb(node, q)
        return True

    # -- host ops ------------------------------------------------------------
    def _host(self, node):
        if not host_can_run(node):
            raise UnsupportedOpError(node.name or node.output[0], node.op_type,
                                     f"domain '{node.domain}' has no host implementation; "
                                     f"replace the op or export it with standard ONNX ops")
        h = ir.HostOp(node.name or node.output[0], [], [], onnx_nodes=[node], opset=self.opset)
        if node.op_type == "QuantizeLinear":
            h.onnx_nodes = []  # a bare requantisation: identity in float
        for f in (node.input[:1] if node.op_type == "QuantizeLinear" else node.input):
            if not f:
                continue
            if f in self.dq_const:
                h.constants[f] = self.dq_const[f].real()
            elif f in self.inits:
                h.constants[f] = self.inits[f]
            elif f in self.dq_act:
                h.inputs.append(self._resolve(self.dq_act[f]))
                h.onnx_inputs.append(f)
                h.onnx_input_shapes.append(self._shape(f))
            elif f in self.g.tensors and self.g.tensors[f].dtype == "float32":
                h.inputs.append(f)
                h.onnx_inputs.append(f)
                h.onnx_input_shapes.append(self._shape(f))
            else:
                raise ModelError(f"node '{node.name}' reads '{f}', which no node produces")
        outs = node.output[:1] if node.op_type == "QuantizeLinear" else [o for o in node.output if o]
        if node.op_type == "QuantizeLinear":
            q = node.output[0]
            self._int8_tensor(q, node.input[0])
            h.outputs.append(q)
            h.onnx_outputs.append(node.input[0])
        else:
            for f in outs:
                cons = self.consumers.get(f, [])
                for c in cons:
                    if c.op_type == "QuantizeLinear" and id(c) not in self.done:
                        self._int8_tensor(c.output[0], f)
                        h.outputs.append(c.output[0])
                        h.onnx_outputs.append(f)
                        self._absorb(c)
                if f in self.graph_outputs or any(c.op_type != "QuantizeLinear" for c in cons):
                    shape = self._shape(f)
                    self.g.add_tensor(ir.Tensor(f, ir.nhwc_shape(shape), "float32"))
                    h.outputs.append(f)
                    h.onnx_outputs.append(f)
        self.g.add_node(h)
        self._absorb(node)

    # -- driver ----------------------------------------------------------------
    def _inputs(self):
        for vi in self.model.graph.input:
            if vi.name in self.inits:
                continue
            cons = self.consumers.get(vi.name, [])
            elem = vi.type.tensor_type.elem_type
            qs = [c for c in cons if c.op_type == "QuantizeLinear"]
            if elem == onnx.TensorProto.FLOAT and qs and len(qs) == len(cons) and \
                    len({self.qparams[c.output[0]] for c in qs}) == 1:
                t = self._int8_tensor(qs[0].output[0], vi.name)
                self.g.inputs.append(t.name)
                self.g.onnx_inputs[t.name] = vi.name
                for c in qs[1:]:
                    self.alias[c.output[0]] = t.name
                self._absorb(*qs)
            elif elem == onnx.TensorProto.INT8 and cons and all(
                    c.op_type == "DequantizeLinear" for c in cons):
                qp = self._scalar_qparams(cons[0])
                self.qparams[vi.name] = qp
                self.g.add_input(ir.Tensor(vi.name, ir.nhwc_shape(self._shape(vi.name)),
                                           "int8", qp))
            elif elem == onnx.TensorProto.FLOAT:
                self.g.add_input(ir.Tensor(vi.name, ir.nhwc_shape(self._shape(vi.name)),
                                           "float32"))
            else:
                raise ModelError(f"input '{vi.name}': unsupported element type "
                                 f"{onnx.TensorProto.DataType.Name(elem)}")

    def run(self) -> ir.Graph:
        self._inputs()
        for node in self.model.graph.node:
            if id(node) in self.done or node.op_type in ("DequantizeLinear", "Constant"):
                continue
            if node.op_type == "QuantizeLinear" and node.input[0] in self.g.tensors:
                self._host(node)  # a quantisation of a float host tensor
                continue
            if self._match(node) or self._free_reshape(node):
                continue
            self._host(node)
        for o in self.model.graph.output:
            name = o.name
            if name in self.dq_act:
                name = self._resolve(self.dq_act[name])
            elif name in self.qparams:
                name = self._resolve(name)
            if name not in self.g.tensors:
                raise ModelError(f"graph output '{o.name}' is not produced by any node")
            self.g.add_output(name, o.name, self.shapes.get(o.name))
        self.g.validate()
        return self.g


class _NoMatch(Exception):
    """Internal: the node does not fit the NPU pattern; try the next option."""


def to_ir(qdq_model, name: str | None = None) -> ir.Graph:
    """QDQ ONNX model (path, bytes or ModelProto) -> presil IR Graph.

    Raises ModelError for malformed models and UnsupportedOpError (naming
    the node and op type) for ops neither the NPU nor the host can run.
    """
    return _Frontend(load_model(qdq_model), name).run()

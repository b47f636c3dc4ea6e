"""The presil IR: a small int8 graph the NPU back end lowers and the golden ops run.

A Graph is a list of nodes in topological order over named tensors.

- Tensors of rank 4 are NHWC (the NPU's layout); other ranks keep their ONNX
  layout.  dtype "int8" tensors carry (scale, zero point); "float32" tensors
  exist only between host ops.
- NPU nodes carry everything the back end needs, already in NPU form: int8 OHWI
  weights, per-channel float scales, int32 bias, geometry, fused activation as
  clamp bounds, and the requantisation parameters (Q31 multiplier, shift)
  computed by presil.golden (the one implementation of the arithmetic).
- HostOp nodes carry the original ONNX node(s); the host dequantises their
  int8 inputs, runs them in float, and quantises their outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import onnx

from presil.golden import arith, ops


# --------------------------------------------------------------------------
# tensors
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class QParams:
    """Affine int8 quantisation: real = scale * (q - zero_point)."""
    scale: float
    zero_point: int

    def __post_init__(self):
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be finite and > 0: {self.scale}")
        arith._check_zp(self.zero_point)

    def quantize(self, x) -> np.ndarray:
        """ONNX QuantizeLinear (float32 divide, round half to even, saturate)."""
        v = np.rint(np.asarray(x, np.float32) / np.float32(self.scale)) + self.zero_point
        return np.clip(v, arith.INT8_MIN, arith.INT8_MAX).astype(np.int8)

    def dequantize(self, q) -> np.ndarray:
        return ((np.asarray(q).astype(np.int32) - self.zero_point) * np.float32(self.scale)
                ).astype(np.float32)

    def __str__(self) -> str:
        return f"s={self.scale:.6g} zp={self.zero_point}"


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]          # NHWC when rank 4
    dtype: str = "int8"             # "int8" | "float32"
    quant: QParams | None = None    # set iff dtype == "int8"

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if self.dtype not in ("int8", "float32"):
            raise ValueError(f"tensor {self.name}: dtype must be int8 or float32")
        if (self.dtype == "int8") != (self.quant is not None):
            raise ValueError(f"tensor {self.name}: int8 tensors need quant params, float ones none")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __str__(self) -> str:
        q = f" {self.quant}" if self.quant else ""
        return f"{self.name}: {self.dtype}{list(self.shape)}{q}"


def nchw_to_nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)) if a.ndim == 4 else a


def nhwc_to_nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if a.ndim == 4 else a


def nhwc_shape(onnx_shape) -> tuple[int, ...]:
    s = tuple(int(d) for d in onnx_shape)
    return (s[0], s[2], s[3], s[1]) if len(s) == 4 else s


# --------------------------------------------------------------------------
# fused activations
# --------------------------------------------------------------------------

def clamp_bounds(activation: str, out: QParams, lo: float | None = None,
                 hi: float | None = None) -> tuple[int, int]:
    """int8 clamp bounds of a fused activation in the output's quantised domain.

    activation: "none" | "relu" | "relu6" (golden's definitions) or "clip"
    with real bounds lo/hi (None = unbounded), rounded half away from zero.
    """
    if activation in ("none", "relu", "relu6"):
        return arith.activation_bounds(activation, out.scale, out.zero_point)
    if activation != "clip":
        raise ValueError(f"unknown activation {activation!r}")

    def q(v, default):
        if v is None or not math.isfinite(v):
            return default
        r = v / out.scale
        r = math.floor(r + 0.5) if r >= 0 else -math.floor(-r + 0.5)
        return int(np.clip(out.zero_point + r, arith.INT8_MIN, arith.INT8_MAX))

    a, b = q(lo, arith.INT8_MIN), q(hi, arith.INT8_MAX)
    if a > b:
        raise ValueError(f"clip bounds [{lo}, {hi}] are empty at {out}")
    return a, b


# --------------------------------------------------------------------------
# nodes
# --------------------------------------------------------------------------

@dataclass
class Node:
    name: str
    inputs: list[str]
    outputs: list[str]

    op: ClassVar[str] = "?"
    device: ClassVar[str] = "npu"

    def macs(self, g: "Graph") -> int:
        return 0

    def describe(self) -> str:
        """One-line attributes for dump()."""
        return ""


@dataclass
class Conv(Node):
    """2-D convolution (dilation 1) + bias + requantisation + clamp.

    weights (O, KH, KW, I/groups) int8, zero point 0; w_scales (O,);
    bias (O,) int32 at scale in_scale * w_scale[o] (zero point NOT folded in:
    see folded_bias); multiplier/shift (O,) encode in*w[o]/out.
    """
    weights: np.ndarray = None
    w_scales: np.ndarray = None
    bias: np.ndarray = None
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)   # top, left, bottom, right
    groups: int = 1
    activation: str = "none"
    act_min: int = arith.INT8_MIN
    act_max: int = arith.INT8_MAX
    multiplier: np.ndarray = None
    shift: np.ndarray = None

    op: ClassVar[str] = "Conv"

    @classmethod
    def build(cls, name: str, x: Tensor, out: Tensor, weights, w_scales, bias, *,
              stride=(1, 1), pads=(0, 0, 0, 0), groups=1, activation="none",
              clip: tuple[float | None, float | None] = (None, None)) -> "Conv":
        w = np.asarray(weights)
        if w.dtype != np.int8 or w.ndim != 4:
            raise ValueError(f"{name}: weights must be int8 OHWI, got {w.dtype} {w.shape}")
        o = w.shape[0]
        ws = np.broadcast_to(np.asarray(w_scales, np.float64), (o,)).copy()
        b = np.zeros(o, np.int32) if bias is None else np.asarray(bias, np.int32).reshape(o)
        m, s = ops.conv_requant_params(x.quant.scale, ws, out.quant.scale)
        lo, hi = clamp_bounds(activation, out.quant, *clip)
        return cls(name, [x.name], [out.name], weights=w, w_scales=ws, bias=b,
                   stride=tuple(stride), pads=tuple(pads), groups=int(groups),
                   activation=activation, act_min=lo, act_max=hi, multiplier=m, shift=s)

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weights.shape[1]), int(self.weights.shape[2])

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.weights.shape[3] == 1

    def folded_bias(self, x_zp: int) -> np.ndarray:
        """bias - x_zp * sum(w): what the NPU's PAR holds, so that zero-point
        padding contributes exactly 0 (docs/architecture.md section 3)."""
        wsum = self.weights.astype(np.int64).reshape(self.weights.shape[0], -1).sum(axis=1)
        return arith.wrap_int32(self.bias.astype(np.int64) - int(x_zp) * wsum).astype(np.int32)

    def macs(self, g):
        n, oh, ow, co = g.tensors[self.outputs[0]].shape
        return int(n * oh * ow * co * int(np.prod(self.weights.shape[1:])))

    def describe(self):
        kh, kw = self.kernel
        kind = "dw " if self.depthwise else ""
        return (f"{kind}{kh}x{kw} /{self.stride[0]},{self.stride[1]} pads(t,l,b,r)={self.pads} "
                f"groups={self.groups} cout={self.weights.shape[0]} act={self.activation}"
                f"[{self.act_min},{self.act_max}]")


@dataclass
class FullyConnected(Node):
    """x (B, K) (or (B,1,1,K) NHWC) @ W.T + bias, requantised; weights (N, K) int8.

    The NPU runs it as a 1x1 convolution on a 1x1 image (see as_conv_weights).
    A 4-D input (B, H, W, C) is a flatten the front end made free: K = H*W*C
    in HWC order (weights already permuted), i.e. an HxW convolution without
    padding on an HxW image.
    """
    weights: np.ndarray = None
    w_scales: np.ndarray = None
    bias: np.ndarray = None
    activation: str = "none"
    act_min: int = arith.INT8_MIN
    act_max: int = arith.INT8_MAX
    multiplier: np.ndarray = None
    shift: np.ndarray = None

    op: ClassVar[str] = "FullyConnected"

    @classmethod
    def build(cls, name: str, x: Tensor, out: Tensor, weights, w_scales, bias, *,
              activation="none", clip=(None, None)) -> "FullyConnected":
        w = np.asarray(weights)
        if w.dtype != np.int8 or w.ndim != 2:
            raise ValueError(f"{name}: weights must be int8 (N, K), got {w.dtype} {w.shape}")
        n = w.shape[0]
        ws = np.broadcast_to(np.asarray(w_scales, np.float64), (n,)).copy()
        b = np.zeros(n, np.int32) if bias is None else np.asarray(bias, np.int32).reshape(n)
        m, s = ops.conv_requant_params(x.quant.scale, ws, out.quant.scale)
        lo, hi = clamp_bounds(activation, out.quant, *clip)
        return cls(name, [x.name], [out.name], weights=w, w_scales=ws, bias=b,
                   activation=activation, act_min=lo, act_max=hi, multiplier=m, shift=s)

    def as_conv_weights(self) -> np.ndarray:
        """(N, 1, 1, K) OHWI weights of the equivalent 1x1 convolution."""
        return self.weights.reshape(self.weights.shape[0], 1, 1, -1)

    def folded_bias(self, x_zp: int) -> np.ndarray:
        wsum = self.weights.astype(np.int64).sum(axis=1)
        return arith.wrap_int32(self.bias.astype(np.int64) - int(x_zp) * wsum).astype(np.int32)

    def macs(self, g):
        batch = g.tensors[self.outputs[0]].shape[0]
        return int(batch * self.weights.size)

    def describe(self):
        return (f"{self.weights.shape[1]}->{self.weights.shape[0]} act={self.activation}"
                f"[{self.act_min},{self.act_max}]")


@dataclass
class Add(Node):
    """Element-wise a + b (same shapes), TFLite int8 Add; params = ops.add_params(...)."""
    params: tuple[int, int, int, int, int, int] = None
    activation: str = "none"
    act_min: int = arith.INT8_MIN
    act_max: int = arith.INT8_MAX

    op: ClassVar[str] = "Add"

    @classmethod
    def build(cls, name, a: Tensor, b: Tensor, out: Tensor, *, activation="none",
              clip=(None, None)) -> "Add":
        p = ops.add_params(a.quant.scale, b.quant.scale, out.quant.scale)
        lo, hi = clamp_bounds(activation, out.quant, *clip)
        return cls(name, [a.name, b.name], [out.name], params=tuple(int(v) for v in p),
                   activation=activation, act_min=lo, act_max=hi)

    def describe(self):
        return f"act={self.activation}[{self.act_min},{self.act_max}] params={self.params}"


@dataclass
class MaxPool(Node):
    """Max pool; the output keeps the input's scale and zero point."""
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)

    op: ClassVar[str] = "MaxPool"

    def describe(self):
        return f"{self.kernel[0]}x{self.kernel[1]} /{self.stride[0]},{self.stride[1]} pads={self.pads}"


@dataclass
class AvgPool(Node):
    """Average pool; (multiplier, shift) encode in_scale / out_scale."""
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False
    multiplier: int = 0
    shift: int = 0

    op: ClassVar[str] = "AvgPool"

    @classmethod
    def build(cls, name, x: Tensor, out: Tensor, *, kernel, stride, pads,
              count_include_pad=False) -> "AvgPool":
        m, s = arith.quantize_multiplier(x.quant.scale / out.quant.scale)
        return cls(name, [x.name], [out.name], kernel=tuple(kernel), stride=tuple(stride),
                   pads=tuple(pads), count_include_pad=bool(count_include_pad),
                   multiplier=m, shift=s)

    def describe(self):
        return (f"{self.kernel[0]}x{self.kernel[1]} /{self.stride[0]},{self.stride[1]} "
                f"pads={self.pads} count_include_pad={int(self.count_include_pad)}")


@dataclass
class GlobalAvgPool(Node):
    """Mean over H x W: (N, H, W, C) -> (N, 1, 1, C); (multiplier, shift) = in/out scale."""
    multiplier: int = 0
    shift: int = 0

    op: ClassVar[str] = "GlobalAvgPool"

    @classmethod
    def build(cls, name, x: Tensor, out: Tensor) -> "GlobalAvgPool":
        m, s = arith.quantize_multiplier(x.quant.scale / out.quant.scale)
        return cls(name, [x.name], [out.name], multiplier=m, shift=s)


@dataclass
class HostOp(Node):
    """ONNX node(s) run in float on the host: dequantise -> nodes -> quantise.

    onnx_inputs[i] is the ONNX (float, NCHW) name under which IR input i enters
    the nodes, with ONNX shape onnx_input_shapes[i]; onnx_outputs[j] is the
    ONNX name of IR output j (quantised with that tensor's params if it is
    int8).  constants: float (dequantised) or integer initializers the nodes use.
    """
    onnx_nodes: list[onnx.NodeProto] = field(default_factory=list)
    onnx_inputs: list[str] = field(default_factory=list)
    onnx_input_shapes: list[tuple[int, ...]] = field(default_factory=list)
    onnx_outputs: list[str] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    opset: dict[str, int] = field(default_factory=dict)

    op: ClassVar[str] = "HostOp"
    device: ClassVar[str] = "host"

    @property
    def onnx_ops(self) -> str:
        return "+".join(n.op_type for n in self.onnx_nodes) or "Quantize"

    def describe(self):
        return f"onnx={self.onnx_ops}"


NPU_NODE_TYPES = (Conv, FullyConnected, Add, MaxPool, AvgPool, GlobalAvgPool)


# --------------------------------------------------------------------------
# graph
# --------------------------------------------------------------------------

class IRError(ValueError):
    """An inconsistent IR graph (a bug in whoever built it)."""


class Graph:
    """Tensors + nodes in topological order.

    onnx_inputs maps an IR input to the float ONNX input it quantises;
    onnx_outputs maps an IR output to the ONNX output it (de)quantises to.
    """

    def __init__(self, name: str = "model"):
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.onnx_inputs: dict[str, str] = {}
        self.onnx_outputs: dict[str, str] = {}
        self.onnx_output_shapes: dict[str, tuple[int, ...]] = {}

    # construction --------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        if t.name in self.tensors:
            raise IRError(f"tensor {t.name} defined twice")
        self.tensors[t.name] = t
        return t

    def add_input(self, t: Tensor, onnx_name: str | None = None) -> Tensor:
        self.add_tensor(t)
        self.inputs.append(t.name)
        self.onnx_inputs[t.name] = onnx_name or t.name
        return t

    def add_node(self, n: Node) -> Node:
        produced = set(self.inputs) | {o for m in self.nodes for o in m.outputs}
        for i in n.inputs:
            if i not in self.tensors:
                raise IRError(f"node {n.name}: unknown input tensor {i}")
            if i not in produced:
                raise IRError(f"node {n.name}: input {i} not produced yet (not topological)")
        for o in n.outputs:
            if o not in self.tensors:
                raise IRError(f"node {n.name}: unknown output tensor {o}")
            if o in produced:
                raise IRError(f"node {n.name}: tensor {o} already produced")
        self.nodes.append(n)
        return n

    def add_output(self, name: str, onnx_name: str | None = None,
                   onnx_shape: tuple[int, ...] | None = None) -> None:
        if name not in self.tensors:
            raise IRError(f"unknown output tensor {name}")
        if name not in self.outputs:
            self.outputs.append(name)
        self.onnx_outputs[name] = onnx_name or name
        if onnx_shape is not None:
            self.onnx_output_shapes[name] = tuple(onnx_shape)

    # queries -------------------------------------------------------------
    def producer(self, tensor: str) -> Node | None:
        return next((n for n in self.nodes if tensor in n.outputs), None)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def macs(self) -> int:
        return sum(n.macs(self) for n in self.nodes)

    def validate(self) -> None:
        """Re-check topological order, dtypes and NPU node invariants."""
        seen = set(self.inputs)
        for n in self.nodes:
            for i in n.inputs:
                if i not in seen:
                    raise IRError(f"node {n.name}: input {i} used before produced")
            seen.update(n.outputs)
            if n.device == "npu":
                for t in n.inputs + n.outputs:
                    if self.tensors[t].dtype != "int8":
                        raise IRError(f"NPU node {n.name}: tensor {t} is not int8")
            if isinstance(n, MaxPool):
                qi, qo = self.tensors[n.inputs[0]].quant, self.tensors[n.outputs[0]].quant
                if qi != qo:
                    raise IRError(f"MaxPool {n.name}: output quant {qo} != input quant {qi}")
        for o in self.outputs:
            if o not in seen:
                raise IRError(f"graph output {o} is never produced")

    # inputs / outputs in ONNX terms ----------------------------------------
    def quantize_inputs(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Float NCHW feeds keyed by ONNX input name -> IR inputs (int8 NHWC)."""
        out = {}
        for name in self.inputs:
            t = self.tensors[name]
            x = np.asarray(feeds[self.onnx_inputs[name]], np.float32)
            x = nchw_to_nhwc(x)
            out[name] = t.quant.quantize(x) if t.quant else x
        return out

    def dequantize_outputs(self, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """IR outputs -> float arrays in ONNX layout keyed by ONNX output name."""
        out = {}
        for name in self.outputs:
            t = self.tensors[name]
            v = nhwc_to_nchw(values[name]) if len(t.shape) == 4 else values[name]
            v = t.quant.dequantize(v) if t.quant else v
            if name in self.onnx_output_shapes:
                v = v.reshape(self.onnx_output_shapes[name])
            out[self.onnx_outputs[name]] = v
        return out

    # reports ---------------------------------------------------------------
    def dump(self) -> str:
        """Full text form: tensors, then one line per node with its attributes."""
        lines = [f"graph {self.name}"]
        lines += [f"  input  {self.tensors[i]}" for i in self.inputs]
        for k, n in enumerate(self.nodes):
            ins = ", ".join(n.inputs)
            outs = ", ".join(str(self.tensors[o]) for o in n.outputs)
            lines.append(f"  %{k} {n.op} '{n.name}' [{n.device}] ({ins}) -> ({outs})")
            d = n.describe()
            if d:
                lines.append(f"       {d}")
            if getattr(n, "multiplier", None) is not None and n.op != "HostOp":
                m, s = np.atleast_1d(n.multiplier), np.atleast_1d(n.shift)
                more = " ..." if m.size > 4 else ""
                lines.append(f"       requant M={m[:4].tolist()}{more} shift={s[:4].tolist()}{more}")
        lines += [f"  output {self.tensors[o]}" for o in self.outputs]
        return "\n".join(lines)

    def summary(self) -> str:
        """Table: one row per node with device, shapes, output quant and MACs."""
        rows = [("#", "node", "op", "dev", "in shape", "out shape", "out quant", "MACs")]
        for k, n in enumerate(self.nodes):
            op = n.op if n.device == "npu" else f"Host:{n.onnx_ops}"
            t_in = self.tensors[n.inputs[0]] if n.inputs else None
            t_out = self.tensors[n.outputs[0]]
            rows.append((str(k), n.name, op, n.device,
                         "x".join(map(str, t_in.shape)) if t_in else "-",
                         "x".join(map(str, t_out.shape)),
                         str(t_out.quant) if t_out.quant else "float32",
                         f"{n.macs(self):,}"))
        rows.append(("", "total", "", "", "", "", "", f"{self.macs():,}"))
        return format_table(rows)

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.nodes)} nodes, {len(self.tensors)} tensors>"


def format_table(rows: list[tuple]) -> str:
    """Fixed-width text table; the first row is the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(rows[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]])

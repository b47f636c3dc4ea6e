"""Reference executions of a compiled model and their per-layer agreement.

- run_ir: the IR on the golden reference ops (presil.golden.ops): the
  NPU's bit-exact arithmetic; host ops in float via HostRunner.
- run_onnx: the quantised QDQ model in onnxruntime, with the int8 output of
  every fused node exposed as an extra graph output (NHWC like the IR).
- compare_layers: per-tensor agreement in LSBs between the two.

onnxruntime fuses QDQ groups into QLinearConv & co., which requantise in float
with round-half-to-even; the NPU uses gemmlowp's integer MBQM.  Differences of
one LSB are therefore expected; more than one in a layer is a bug.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import onnx

from presil.golden import ops

from . import ir
from .hostexec import HostRunner


# --------------------------------------------------------------------------
# IR on golden ops
# --------------------------------------------------------------------------

def _run_npu_node(g: ir.Graph, n: ir.Node, v: dict[str, np.ndarray]) -> np.ndarray:
    ts = [g.tensors[i] for i in n.inputs]
    out = g.tensors[n.outputs[0]]
    x = v[n.inputs[0]]
    if isinstance(n, ir.Conv):
        return ops.conv2d(x, n.weights, n.bias, x_zp=ts[0].quant.zero_point,
                          multiplier=n.multiplier, shift=n.shift,
                          out_zp=out.quant.zero_point, stride=n.stride, pads=n.pads,
                          groups=n.groups, act_min=n.act_min, act_max=n.act_max)
    if isinstance(n, ir.FullyConnected):
        y = ops.fully_connected(x.reshape(x.shape[0], -1), n.weights, n.bias,
                                x_zp=ts[0].quant.zero_point, multiplier=n.multiplier,
                                shift=n.shift, out_zp=out.quant.zero_point,
                                act_min=n.act_min, act_max=n.act_max)
        return y.reshape(out.shape)
    if isinstance(n, ir.Add):
        return ops.add(x, v[n.inputs[1]], a_zp=ts[0].quant.zero_point,
                       b_zp=ts[1].quant.zero_point, out_zp=out.quant.zero_point,
                       params=n.params, act_min=n.act_min, act_max=n.act_max)
    if isinstance(n, ir.MaxPool):
        return ops.max_pool(x, n.kernel, stride=n.stride, pads=n.pads)
    if isinstance(n, ir.AvgPool):
        return ops.avg_pool(x, n.kernel, stride=n.stride, pads=n.pads,
                            in_zp=ts[0].quant.zero_point, out_zp=out.quant.zero_point,
                            multiplier=n.multiplier, shift=n.shift,
                            count_include_pad=n.count_include_pad)
    if isinstance(n, ir.GlobalAvgPool):
        return ops.global_avg_pool(x, in_zp=ts[0].quant.zero_point,
                                   out_zp=out.quant.zero_point, multiplier=n.multiplier,
                                   shift=n.shift)
    raise TypeError(f"no golden op for {n.op}")


# One HostRunner per graph, so repeated runs reuse its onnxruntime sessions
# (building them costs more than running them).
_HOST_RUNNERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _host_runner(graph: ir.Graph) -> HostRunner:
    r = _HOST_RUNNERS.get(graph)
    if r is None:
        r = _HOST_RUNNERS[graph] = HostRunner(graph)
    return r


def run_ir(graph: ir.Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the IR; inputs keyed by IR input name (int8 NHWC, see
    Graph.quantize_inputs).  Returns every tensor (inputs included) in
    execution order."""
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        t = graph.tensors[name]
        a = np.asarray(inputs[name])
        if a.shape != t.shape:
            raise ValueError(f"input {name}: shape {a.shape}, expected {t.shape}")
        values[name] = a.astype(np.int8) if t.quant else a.astype(np.float32)
    host = _host_runner(graph)
    for n in graph.nodes:
        if n.device == "host":
            values.update(host.run(n, values))
        else:
            values[n.outputs[0]] = _run_npu_node(graph, n, values)
    return values


def run_ir_isolated(graph: ir.Graph, ref_values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each node run alone on *reference* inputs (e.g. onnxruntime's values):
    separates a layer's own error from error propagated (and amplified by
    scale ratios > 1) from upstream.  Nodes whose inputs ref_values lacks are
    skipped."""
    host = _host_runner(graph)
    out: dict[str, np.ndarray] = {}
    for n in graph.nodes:
        if not all(i in ref_values for i in n.inputs):
            continue
        vals = {i: ref_values[i] for i in n.inputs}
        if n.device == "host":
            out.update(host.run(n, vals))
        else:
            out[n.outputs[0]] = _run_npu_node(graph, n, vals)
    return out


# --------------------------------------------------------------------------
# the QDQ model in onnxruntime
# --------------------------------------------------------------------------

def _session(model: onnx.ModelProto):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_onnx(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
             tensors: list[str] | None = None, *, nhwc: bool = True) -> dict[str, np.ndarray]:
    """Run the model in onnxruntime (default optimisations, so QDQ groups fuse
    into QLinear* kernels) and return the named tensors, rank-4 ones as NHWC
    (as in the IR) unless nhwc=False.

    Without `tensors`, returns the model's own outputs (unchanged graph).
    Asking for intermediates adds them as graph outputs, which can stop
    onnxruntime fusing the QuantizeLinear that produces them; the final
    outputs are therefore best taken from a run without extras.
    """
    m = onnx.ModelProto.FromString(model.SerializeToString())
    existing = {o.name for o in m.graph.output}
    if tensors:
        for t in tensors:
            if t not in existing:
                m.graph.output.append(onnx.ValueInfoProto(name=t))
    sess = _session(m)
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, sess.run(None, feeds)))
    want = tensors if tensors else [o.name for o in model.graph.output]
    return {t: ir.nchw_to_nhwc(res[t]) if nhwc else res[t] for t in want}


def run_onnx_layers(model: onnx.ModelProto, graph: ir.Graph,
                    feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime values of every IR tensor that exists in the QDQ model."""
    names = [t for t in graph.tensors if t not in graph.inputs]
    out = run_onnx(model, feeds, names)
    # Quantised graph inputs are not ONNX tensors: quantise like the model's Q.
    out.update(graph.quantize_inputs(feeds))
    return out


# --------------------------------------------------------------------------
# agreement
# --------------------------------------------------------------------------

@dataclass
class LayerAgreement:
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_diff: float     # LSB for int8 tensors
    pct_equal: float
    pct_within_1: float     # within 1 LSB (int8) or 1e-2 absolute (float)
    count: int

    @property
    def ok(self) -> bool:
        """At most one LSB anywhere (float tensors: within 1e-2)."""
        return self.pct_within_1 == 100.0


def compare_layers(ir_outputs: dict[str, np.ndarray], ort_outputs: dict[str, np.ndarray]
                   ) -> list[LayerAgreement]:
    """One LayerAgreement per tensor present in both, in ir_outputs' order."""
    rows = []
    for name, a in ir_outputs.items():
        if name not in ort_outputs:
            continue
        b = np.asarray(ort_outputs[name])
        a = np.asarray(a)
        if a.size != b.size:
            raise ValueError(f"{name}: IR has shape {a.shape}, onnxruntime {b.shape}")
        b = b.reshape(a.shape)
        if a.dtype == np.int8:
            d = np.abs(a.astype(np.int32) - b.astype(np.int32))
            within = d <= 1
        else:
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            within = d <= 1e-2
        n = max(a.size, 1)
        rows.append(LayerAgreement(name, tuple(a.shape), str(a.dtype),
                                   float(d.max()) if d.size else 0.0,
                                   100.0 * float(np.sum(d == 0)) / n,
                                   100.0 * float(np.sum(within)) / n, int(a.size)))
    return rows


def first_divergent(rows: list[LayerAgreement]) -> LayerAgreement | None:
    """The first layer with a difference above one LSB, or None."""
    return next((r for r in rows if not r.ok), None)


def agreement_table(rows: list[LayerAgreement]) -> str:
    """Text table of compare_layers rows.  For a chained run (run_ir vs
    run_onnx_layers) the first divergent row may be propagation; compare
    run_ir_isolated's rows to find a layer's own error."""
    tab = [("tensor", "shape", "max|d|", "% equal", "% <=1", "")]
    bad = first_divergent(rows)
    for r in rows:
        tab.append((r.tensor, "x".join(map(str, r.shape)),
                    f"{r.max_abs_diff:g}", f"{r.pct_equal:.2f}", f"{r.pct_within_1:.2f}",
                    "<- first divergent" if r is bad else ""))
    return ir.format_table(tab)

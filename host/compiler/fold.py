"""FP32 graph rewrite: fold BatchNormalization into the preceding Conv or Gemm.

Done on the float model before calibration, so the quantiser sees (and
calibrates) the folded weights the NPU will actually run; onnxruntime's
quant_pre_process also folds Conv+BN in its optimiser, but only when
optimisation is enabled, so we never rely on it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def fold_batchnorm(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold every Conv/Gemm -> BatchNormalization pair; returns (new model, pairs folded).

    A BN whose input is not a Conv/Gemm with constant weights, or whose Conv output
    has other consumers (or is a graph output), is left alone.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    consumers = _consumers(g)
    graph_outputs = {o.name for o in g.output}
    folded = 0
    drop: list[onnx.NodeProto] = []
    for bn in list(g.node):
        if bn.op_type != "BatchNormalization" or len([o for o in bn.output if o]) != 1:
            continue
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type not in ("Conv", "Gemm") or conv.input[1] not in inits:
            continue
        if conv.op_type == "Gemm" and (_attr(conv, "alpha", 1.0) != 1.0
                                       or _attr(conv, "beta", 1.0) != 1.0):
            continue
        if len(consumers.get(conv.output[0], [])) != 1 or conv.output[0] in graph_outputs:
            continue
        if not all(name in inits for name in bn.input[1:5]):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64)
                                  for n in bn.input[1:5])
        w = numpy_helper.to_array(inits[conv.input[1]]).astype(np.float64)
        has_b = len(conv.input) > 2 and conv.input[2] != ""
        if has_b and conv.input[2] not in inits:
            continue
        b = (numpy_helper.to_array(inits[conv.input[2]]).astype(np.float64) if has_b
             else np.zeros(gamma.size))
        k = gamma / np.sqrt(var + eps)
        # Output channels: axis 0 of Conv (O, I, kh, kw) and of Gemm's B when
        # transB=1 (N, K); axis 1 of Gemm's B (K, N) otherwise.
        if conv.op_type == "Gemm" and not _attr(conv, "transB", 0):
            w2 = (w * k.reshape(1, -1)).astype(np.float32)
        else:
            w2 = (w * k.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        try:  # Gemm's C may be a scalar or (1, N): per output channel from here on
            b = np.broadcast_to(b.reshape(1, -1) if b.ndim else b, (1, k.size)).reshape(-1)
        except ValueError:
            continue
        b2 = ((b - mean) * k + beta).astype(np.float32)
        # Fresh initializer names: the originals may be shared with other nodes.
        wname, bname = f"{conv.name or conv.output[0]}_bnfold_W", f"{conv.name or conv.output[0]}_bnfold_B"
        g.initializer.extend([numpy_helper.from_array(w2, wname), numpy_helper.from_array(b2, bname)])
        x = conv.input[0]
        del conv.input[:]
        conv.input.extend([x, wname, bname])
        conv.output[0] = bn.output[0]
        drop.append(bn)
        folded += 1
    for bn in drop:
        g.node.remove(bn)
    _prune_initializers(g)
    return model, folded


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _prune_initializers(g: onnx.GraphProto) -> None:
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)

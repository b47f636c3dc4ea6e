"""Execution of HostOp nodes: dequantise -> ONNX node(s) in onnxruntime -> quantise.

Each HostOp becomes a tiny float ONNX model (its nodes, its constants as
initializers) whose session is built once and cached.  IR tensors are NHWC at
rank 4; the ONNX nodes see NCHW, reshaped to the shape they had in the model
(which also undoes a free flatten alias).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import ir

# Domains onnxruntime implements (standard ONNX and its contrib ops).
HOST_DOMAINS = ("", "ai.onnx", "com.microsoft")


def host_can_run(node: onnx.NodeProto) -> bool:
    """Whether the host fallback (onnxruntime) has a kernel for this node's op."""
    dom = node.domain or ""
    if dom not in HOST_DOMAINS:
        return False
    return dom == "com.microsoft" or onnx.defs.has(node.op_type, dom)


class HostRunner:
    """Runs the HostOps of one graph; sessions are cached per node."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self._sessions: dict[str, object] = {}

    def _session(self, node: ir.HostOp):
        if node.name in self._sessions:
            return self._sessions[node.name]
        import onnxruntime as ort
        ins = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(s))
               for n, s in zip(node.onnx_inputs, node.onnx_input_shapes)]
        outs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                for n in dict.fromkeys(node.onnx_outputs)]
        inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in node.constants.items()]
        nodes = list(node.onnx_nodes)
        if not nodes:  # bare quantisation: pass the float through
            nodes = [helper.make_node("Identity", [node.onnx_inputs[0]], [node.onnx_outputs[0] + "__id"])]
            outs = [helper.make_tensor_value_info(node.onnx_outputs[0] + "__id",
                                                  onnx.TensorProto.FLOAT, None)]
        g = helper.make_graph(nodes, f"host_{node.name}", ins, outs, inits)
        opsets = [helper.make_opsetid(d, v) for d, v in node.opset.items()]
        m = helper.make_model(g, opset_imports=opsets)
        m.ir_version = min(m.ir_version, 9)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        self._sessions[node.name] = sess
        return sess

    def run(self, node: ir.HostOp, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """IR input values -> IR output values of one HostOp."""
        feeds = {}
        for name, oname, oshape in zip(node.inputs, node.onnx_inputs, node.onnx_input_shapes):
            t = self.graph.tensors[name]
            v = values[name]
            v = t.quant.dequantize(v) if t.quant else np.asarray(v, np.float32)
            feeds[oname] = ir.nhwc_to_nchw(v).reshape(oshape)
        sess = self._session(node)
        names = [o.name for o in sess.get_outputs()]
        res = dict(zip(names, sess.run(None, feeds)))
        if not node.onnx_nodes:
            res = {node.onnx_outputs[0]: res[names[0]]}
        out = {}
        for name, oname in zip(node.outputs, node.onnx_outputs):
            t = self.graph.tensors[name]
            v = ir.nchw_to_nhwc(np.asarray(res[oname], np.float32))
            out[name] = t.quant.quantize(v) if t.quant else v
        return out

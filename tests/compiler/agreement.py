"""Agreement of a hand-made or zoo model between the golden IR and onnxruntime,
measured once per model (a plain module, not conftest: test modules import it
by a name no other test folder uses)."""

from __future__ import annotations

import numpy as np

from presil.host.compiler import quantize, to_ir
from presil.host.compiler.reference import (compare_layers, run_ir, run_ir_isolated,
                                            run_onnx, run_onnx_layers)


class Measured:
    """Agreement of a model over several inputs."""

    def __init__(self, fp32, input_shape, n_inputs=4, n_calib=16, seed=7, input_name="x"):
        rng = np.random.default_rng(seed)
        calib = [rng.standard_normal(input_shape).astype(np.float32) for _ in range(n_calib)]
        self.qdq = quantize(fp32, calib)
        self.graph = to_ir(self.qdq)
        self.inputs = [{input_name: rng.standard_normal(input_shape).astype(np.float32)}
                       for _ in range(n_inputs)]
        self.final_lsb: list[np.ndarray] = []   # |IR - ORT| in LSB, int8 outputs
        self.final_float: list[np.ndarray] = []  # |IR - ORT|, float outputs
        self.isolated_max = 0.0
        self.top1_same = 0
        g = self.graph
        for feeds in self.inputs:
            ir_vals = run_ir(g, g.quantize_inputs(feeds))
            ort = run_onnx(self.qdq, feeds, nhwc=False)  # unmodified model: fused QLinear kernels
            ir_f = g.dequantize_outputs(ir_vals)
            for t in g.outputs:
                oname = g.onnx_outputs[t]
                q = g.tensors[t].quant
                if q is not None:
                    a = q.quantize(ir_f[oname]).astype(np.int32)
                    b = q.quantize(np.asarray(ort[oname]).reshape(ir_f[oname].shape)).astype(np.int32)
                    self.final_lsb.append(np.abs(a - b).ravel())
                else:
                    self.final_float.append(np.abs(ir_f[oname] - ort[oname]).ravel())
                self.top1_same += int(np.argmax(ir_f[oname]) == np.argmax(ort[oname]))
            # A float output (host Softmax...): judge the int8 tensors feeding it.
            feeding = [i for t in g.outputs if g.tensors[t].dtype == "float32"
                       for i in g.producer(t).inputs if g.tensors[i].dtype == "int8"]
            if feeding:
                ort_in = run_onnx(self.qdq, feeds, feeding)
                for t in feeding:
                    self.final_lsb.append(np.abs(ir_vals[t].astype(np.int32)
                                                 - ort_in[t].astype(np.int32)).ravel())
            layers = run_onnx_layers(self.qdq, g, feeds)
            iso = compare_layers(run_ir_isolated(g, layers), layers)
            self.isolated_max = max([self.isolated_max] + [r.max_abs_diff for r in iso
                                                           if r.dtype == "int8"])
            self.chain = compare_layers(ir_vals, layers)

    @property
    def pct_within_1(self) -> float:
        d = np.concatenate(self.final_lsb) if self.final_lsb else np.zeros(1)
        return 100.0 * float(np.mean(d <= 1))

    @property
    def pct_equal(self) -> float:
        d = np.concatenate(self.final_lsb) if self.final_lsb else np.zeros(1)
        return 100.0 * float(np.mean(d == 0))

    def report(self, name: str) -> str:
        fl = (f", float outputs max|d| {max(float(d.max()) for d in self.final_float):.3g}"
              if self.final_float else "")
        return (f"[{name}] final int8 outputs: {self.pct_within_1:.2f}% within 1 LSB, "
                f"{self.pct_equal:.2f}% equal; isolated per-layer max {self.isolated_max:g} LSB; "
                f"top-1 same {self.top1_same}/{len(self.inputs) * len(self.graph.outputs)}{fl}")

"""Golden (the compiled bundle on the ISS) against onnxruntime running the same
quantised QDQ model: per-layer agreement, final-output agreement in LSB and
top-1 agreement over several samples, with pass/fail targets.

Targets: >= 99% of final int8 elements within +-1 LSB and the same top-1 on
>= 99% of samples (classifiers). A float graph output (a host Softmax, say)
is judged on the int8 tensors feeding it: the NPU's contract is int8.

Each layer is compared twice: chained (golden fed its own outputs, as the
device runs) and alone (golden's op fed onnxruntime's inputs for that layer).
A deep model can miss the final target through propagation alone: onnxruntime
rounds exact ties in float32, and one differing element spreads downstream.
The alone column separates that from a layer whose own arithmetic differs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import onnx

from . import ir
from .bundle import Bundle
from .reference import LayerAgreement, compare_layers, first_divergent, run_ir_isolated

TARGET_WITHIN_1 = 99.0
TARGET_TOP1 = 99.0


class _Ort:
    """onnxruntime on the QDQ model: one session for the final outputs (no
    extra outputs, so every QDQ group fuses) and one exposing every IR tensor."""

    def __init__(self, qdq: onnx.ModelProto, graph: ir.Graph):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.graph = graph
        self.final = ort.InferenceSession(qdq.SerializeToString(), so, providers=["CPUExecutionProvider"])
        m = onnx.ModelProto.FromString(qdq.SerializeToString())
        have = {o.name for o in m.graph.output}
        onnx_tensors = {v.name for v in m.graph.value_info} | {o for n in m.graph.node for o in n.output}
        self.names = [t for t in graph.tensors if t not in graph.inputs and t in onnx_tensors]
        for t in self.names:
            if t not in have:
                m.graph.output.append(onnx.ValueInfoProto(name=t))
        self.layers = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def run_final(self, feeds):
        names = [o.name for o in self.final.get_outputs()]
        return dict(zip(names, self.final.run(None, feeds)))

    def run_layers(self, feeds):
        names = [o.name for o in self.layers.get_outputs()]
        res = dict(zip(names, self.layers.run(None, feeds)))
        out = {t: ir.nchw_to_nhwc(res[t]) for t in self.names}
        out.update(self.graph.quantize_inputs(feeds))
        return out


@dataclass
class LayerStats:
    tensor: str
    shape: tuple
    max_abs_diff: float = 0.0
    equal: int = 0
    within_1: int = 0
    count: int = 0
    alone_max: float | None = None   # max |d| with this layer fed onnxruntime's inputs

    @property
    def pct_equal(self) -> float:
        return 100.0 * self.equal / max(self.count, 1)

    @property
    def pct_within_1(self) -> float:
        return 100.0 * self.within_1 / max(self.count, 1)

    def add(self, r: LayerAgreement) -> None:
        self.max_abs_diff = max(self.max_abs_diff, r.max_abs_diff)
        self.equal += round(r.pct_equal * r.count / 100.0)
        self.within_1 += round(r.pct_within_1 * r.count / 100.0)
        self.count += r.count

    def add_alone(self, r: LayerAgreement) -> None:
        self.alone_max = max(self.alone_max or 0.0, r.max_abs_diff)

    def as_agreement(self) -> LayerAgreement:
        return LayerAgreement(self.tensor, self.shape, "int8", self.max_abs_diff, self.pct_equal,
                              self.pct_within_1, self.count)


@dataclass
class VerifyReport:
    model: str
    samples: int
    layers: list[LayerStats] = field(default_factory=list)
    final_within_1: float = 0.0
    final_equal: float = 0.0
    final_max_lsb: float = 0.0
    final_float_max_abs: float | None = None
    top1_same: int | None = None
    top1_pct: float | None = None
    accuracy_int8: float | None = None  # vs labels, when the data has labels
    accuracy_onnxruntime: float | None = None
    golden_cycles: int = 0
    seconds: dict = field(default_factory=dict)

    @property
    def first_divergent(self) -> str | None:
        r = first_divergent([s.as_agreement() for s in self.layers])
        return r.tensor if r else None

    @property
    def alone_max(self) -> float:
        """Largest difference of any layer run alone on onnxruntime's inputs."""
        return max((s.alone_max for s in self.layers if s.alone_max is not None), default=0.0)

    @property
    def first_divergent_alone(self) -> str | None:
        """The first layer whose own arithmetic differs by more than one LSB."""
        return next((s.tensor for s in self.layers if s.alone_max is not None and s.alone_max > 1), None)

    @property
    def passed(self) -> bool:
        ok = self.final_within_1 >= TARGET_WITHIN_1
        if self.top1_pct is not None:
            ok = ok and self.top1_pct >= TARGET_TOP1
        return ok

    def table(self) -> str:
        bad = self.first_divergent
        tab = [("tensor", "shape", "max|d|", "% equal", "% <=1", "alone max|d|", "")]
        for s in self.layers:
            tab.append((s.tensor, "x".join(map(str, s.shape)), f"{s.max_abs_diff:g}", f"{s.pct_equal:.2f}",
                        f"{s.pct_within_1:.2f}", "-" if s.alone_max is None else f"{s.alone_max:g}",
                        "<- first divergent" if s.tensor == bad else ""))
        return ir.format_table(tab)

    def summary(self) -> str:
        lines = [f"final int8 elements: {self.final_within_1:.2f}% within +-1 LSB "
                 f"(target >= {TARGET_WITHIN_1:g}%), {self.final_equal:.2f}% equal, max {self.final_max_lsb:g} LSB"]
        if self.final_float_max_abs is not None:
            lines.append(f"float outputs (host tail): max |golden - onnxruntime| = {self.final_float_max_abs:.4g}")
        if self.top1_pct is not None:
            lines.append(f"top-1 agreement: {self.top1_same}/{self.samples} = {self.top1_pct:.1f}% "
                         f"(target >= {TARGET_TOP1:g}%)")
        else:
            lines.append("top-1 agreement: n/a (not a classifier)")
        if self.accuracy_int8 is not None:
            lines.append(f"accuracy vs labels: golden int8 {self.accuracy_int8:.2f}%, "
                         f"onnxruntime int8 {self.accuracy_onnxruntime:.2f}%")
        lines.append(f"first divergent layer (> 1 LSB): {self.first_divergent or 'none'}")
        lines.append(f"each layer alone on onnxruntime's inputs: max {self.alone_max:g} LSB"
                     + (f", first > 1 LSB: {self.first_divergent_alone}" if self.first_divergent_alone
                        else " (differences above are propagated, not a layer's own arithmetic)"
                        if self.first_divergent else ""))
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        d["layers"] = [dict(asdict(s), pct_equal=s.pct_equal, pct_within_1=s.pct_within_1) for s in self.layers]
        d.update(first_divergent=self.first_divergent, alone_max=self.alone_max,
                 first_divergent_alone=self.first_divergent_alone, passed=self.passed,
                 targets={"final_within_1_pct": TARGET_WITHIN_1, "top1_pct": TARGET_TOP1})
        return d


def _final_int8(graph: ir.Graph) -> list[str]:
    """int8 graph outputs, and for float outputs the int8 tensors feeding their producer."""
    out = []
    for t in graph.outputs:
        if graph.tensors[t].dtype == "int8":
            out.append(t)
        else:
            p = graph.producer(t)
            out += [i for i in (p.inputs if p else []) if graph.tensors[i].dtype == "int8"]
    return list(dict.fromkeys(out))


def verify_bundle(bundle: Bundle, inputs: list, *, labels=None, classifier: bool = True,
                  progress=None, check_races: bool = True) -> VerifyReport:
    """Run every input through golden and onnxruntime and compare."""
    g, qdq = bundle.graph, bundle.qdq
    if g is None or qdq is None:
        raise ValueError("verify needs a bundle fresh from compile_model (IR and QDQ model in memory)")
    in_name = bundle.manifest["inputs"][0]["name"]
    out_name = bundle.manifest["outputs"][0]["name"]
    t0 = time.perf_counter()
    ort = _Ort(qdq, g)
    rep = VerifyReport(bundle.name, len(inputs))
    stats: dict[str, LayerStats] = {}
    finals = _final_int8(g)
    diffs, fdiff, top1, correct_g, correct_o = [], [], 0, 0, 0
    t_golden = t_ort = 0.0
    for k, x in enumerate(inputs):
        feeds = x if isinstance(x, dict) else {in_name: x}
        t = time.perf_counter()
        outs, vals = bundle.run(feeds, return_intermediates=True, check_races=check_races)
        t_golden += time.perf_counter() - t
        rep.golden_cycles = bundle.last_run["total_cycles"]
        t = time.perf_counter()
        o_final = ort.run_final(feeds)
        o_layers = ort.run_layers(feeds)
        t_ort += time.perf_counter() - t
        for r in compare_layers({n: v for n, v in vals.items() if g.tensors[n].dtype == "int8"
                                 and n not in g.inputs}, o_layers):
            stats.setdefault(r.tensor, LayerStats(r.tensor, r.shape)).add(r)
        for r in compare_layers(run_ir_isolated(g, o_layers), o_layers):
            if r.tensor in stats:
                stats[r.tensor].add_alone(r)
        # Final int8 tensors: graph outputs from the fused session, feeders of float outputs
        # from the layer session.
        for t_ in finals:
            a = vals[t_].astype(np.int32)
            if t_ in g.outputs:
                q = g.tensors[t_].quant
                b = q.quantize(ir.nchw_to_nhwc(np.asarray(o_final[g.onnx_outputs[t_]]))
                               .reshape(a.shape)).astype(np.int32)
            else:
                b = np.asarray(o_layers[t_]).reshape(a.shape).astype(np.int32)
            diffs.append(np.abs(a - b).ravel())
        for t_ in g.outputs:
            if g.tensors[t_].dtype != "int8":
                on = g.onnx_outputs[t_]
                fdiff.append(float(np.max(np.abs(outs[on] - np.asarray(o_final[on]).reshape(outs[on].shape)))))
        pg, po = int(np.argmax(outs[out_name])), int(np.argmax(o_final[out_name]))
        top1 += pg == po
        if labels is not None:
            correct_g += pg == int(labels[k])
            correct_o += po == int(labels[k])
        if progress:
            progress(f"verify {bundle.name}: sample {k + 1}/{len(inputs)} "
                     f"(golden {t_golden:.1f}s, onnxruntime {t_ort:.1f}s)")
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    rep.layers = list(stats.values())
    rep.final_within_1 = 100.0 * float(np.mean(d <= 1))
    rep.final_equal = 100.0 * float(np.mean(d == 0))
    rep.final_max_lsb = float(d.max())
    rep.final_float_max_abs = max(fdiff) if fdiff else None
    if classifier:
        rep.top1_same, rep.top1_pct = top1, 100.0 * top1 / max(len(inputs), 1)
    if labels is not None:
        rep.accuracy_int8 = 100.0 * correct_g / len(inputs)
        rep.accuracy_onnxruntime = 100.0 * correct_o / len(inputs)
    rep.seconds = {"golden": t_golden, "onnxruntime": t_ort, "total": time.perf_counter() - t0}
    return rep


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

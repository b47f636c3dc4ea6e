"""The compiled model: a bundle file and its runtime.

A bundle is a zip:
- manifest.json: model name, array size, inputs/outputs (ONNX names and
  shapes, the IR tensors behind them and their quantisation), every IR tensor
  crossing a segment boundary, and the ordered segments (an NPU segment's
  "input_layouts": inputs the host packs into another layout before the run,
  e.g. space-to-depth for a stem conv, keyed by program tensor descriptor);
- npu<i>.prog: the program file of NPU segment i (docs/program-format.md);
- host<i>.onnx: the float ONNX nodes of host segment i (the manifest says how
  they split into host ops, each dequantise -> nodes -> quantise);
- quantized.onnx: the int8 QDQ model the bundle was compiled from (what
  `presil verify` runs in onnxruntime).

Bundle.run quantises float NCHW inputs with the input tensors' qparams, runs
NPU segments on a device (today only the golden ISS, "golden:") and host
segments in onnxruntime (hostexec.HostRunner), and dequantises the outputs.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from presil.golden import iss
from presil.golden.device_errors import ProgramFormatError
from presil.golden.program import Program

from . import ir
from .errors import CompilerError
from .frontend import to_ir
from .hostexec import HostRunner
from .lower import lower_segment, program_feeds
from .partition import partition, partition_table
from .quantize import quantize
from .tiling import NpuConfig

FORMAT = "presil-bundle"
VERSION = 1
DEVICES = ("golden:",)


class BundleError(CompilerError):
    """A bundle file that cannot be read, or inputs that do not match it."""


class DeviceUnavailableError(CompilerError):
    """A device string naming a target this version cannot run on."""


def check_device(device: str) -> str:
    d = device if device.endswith(":") or ":" in device else device + ":"
    if d != "golden:":
        raise DeviceUnavailableError(f"device '{device}' is not available yet (available: {', '.join(DEVICES)})")
    return d


def _q(t: ir.Tensor) -> dict | None:
    return {"scale": t.quant.scale, "zero_point": t.quant.zero_point} if t.quant else None


def _onnx_shape(nhwc: tuple) -> list[int]:
    s = list(nhwc)
    return [s[0], s[3], s[1], s[2]] if len(s) == 4 else s


def _host_model(graph: ir.Graph, nodes: list[ir.HostOp]) -> tuple[onnx.ModelProto, list[dict]]:
    """All host ops of a segment in one float ONNX model + how to split it again."""
    onodes, inits, entries, opset = [], {}, [], {}
    produced = {o for h in nodes for n in h.onnx_nodes for o in n.output}
    g_inputs: dict[str, tuple] = {}
    for h in nodes:
        idx = list(range(len(onodes), len(onodes) + len(h.onnx_nodes)))
        onodes.extend(h.onnx_nodes)
        for k, v in h.constants.items():
            inits.setdefault(k, np.asarray(v))
        for name, shape in zip(h.onnx_inputs, h.onnx_input_shapes):
            if name not in produced:
                g_inputs.setdefault(name, tuple(shape))
        opset.update(h.opset)
        entries.append({"name": h.name, "inputs": list(h.inputs), "outputs": list(h.outputs),
                        "onnx_inputs": list(h.onnx_inputs),
                        "onnx_input_shapes": [list(s) for s in h.onnx_input_shapes],
                        "onnx_outputs": list(h.onnx_outputs), "nodes": idx,
                        "constants": list(h.constants)})
    ins = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(s)) for n, s in g_inputs.items()]
    outs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
            for n in dict.fromkeys(o for h in nodes for o in h.onnx_outputs) if n not in g_inputs]
    gp = helper.make_graph(onodes, "host_segment", ins, outs,
                           [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(gp, opset_imports=[helper.make_opsetid(d, v) for d, v in opset.items()])
    m.ir_version = min(m.ir_version, 9)
    return m, entries


@dataclass
class Bundle:
    manifest: dict
    programs: dict[int, Program] = field(default_factory=dict)
    host_models: dict[int, onnx.ModelProto] = field(default_factory=dict)
    qdq: onnx.ModelProto | None = None
    last_run: dict = field(default_factory=dict)
    graph: ir.Graph | None = field(default=None, repr=False)  # in memory after compile_model only

    # -- properties -------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def segments(self) -> list[dict]:
        return self.manifest["segments"]

    # -- files ------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("manifest.json", json.dumps(self.manifest, indent=1, sort_keys=True))
            for s in self.segments:
                i = s["index"]
                data = self.programs[i].to_bytes() if s["device"] == "npu" else \
                    self.host_models[i].SerializeToString()
                z.writestr(s["file"], data)
            if self.qdq is not None:
                z.writestr("quantized.onnx", self.qdq.SerializeToString())
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> "Bundle":
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as e:
            raise BundleError(f"not a presil bundle (not a zip file: {e})") from None
        with z:
            names = set(z.namelist())
            if "manifest.json" not in names:
                raise BundleError("not a presil bundle: no manifest.json")
            try:
                man = json.loads(z.read("manifest.json"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise BundleError(f"manifest.json is not JSON: {e}") from None
            if man.get("format") != FORMAT or man.get("version") != VERSION:
                raise BundleError(f"unsupported bundle format {man.get('format')!r} "
                                  f"version {man.get('version')!r} (expected {FORMAT} {VERSION})")
            b = cls(man)
            for s in man["segments"]:
                if s["file"] not in names:
                    raise BundleError(f"bundle lacks {s['file']} (segment {s['index']})")
                raw = z.read(s["file"])
                if s["device"] == "npu":
                    try:
                        b.programs[s["index"]] = Program.from_bytes(raw)
                    except ProgramFormatError as e:
                        raise BundleError(f"{s['file']}: {e}") from None
                else:
                    try:
                        b.host_models[s["index"]] = onnx.load_from_string(raw)
                    except Exception as e:  # protobuf decode errors
                        raise BundleError(f"{s['file']}: not an ONNX model: {e}") from None
            if "quantized.onnx" in names:
                b.qdq = onnx.load_from_string(z.read("quantized.onnx"))
        return b

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        p = Path(path)
        if not p.is_file():
            raise BundleError(f"bundle file not found: {p}")
        return cls.from_bytes(p.read_bytes())

    # -- execution ----------------------------------------------------------------
    def _tensor(self, name: str) -> ir.Tensor:
        d = self.manifest["tensors"][name]
        q = ir.QParams(d["scale"], d["zero_point"]) if d["dtype"] == "int8" else None
        return ir.Tensor(name, tuple(d["shape"]), d["dtype"], q)

    def _host_runner(self, i: int) -> tuple[HostRunner, list[ir.HostOp]]:
        cache = self.__dict__.setdefault("_host_cache", {})
        if i in cache:
            return cache[i]
        m = self.host_models[i]
        seg = self.segments[i]
        g = ir.Graph(self.name)
        for entry in seg["host_ops"]:
            for t in entry["inputs"] + entry["outputs"]:
                if t not in g.tensors:
                    g.add_tensor(self._tensor(t))
        inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        opset = {o.domain or "": o.version for o in m.opset_import}
        ops = [ir.HostOp(e["name"], e["inputs"], e["outputs"],
                         onnx_nodes=[m.graph.node[k] for k in e["nodes"]],
                         onnx_inputs=e["onnx_inputs"],
                         onnx_input_shapes=[tuple(s) for s in e["onnx_input_shapes"]],
                         onnx_outputs=e["onnx_outputs"],
                         constants={k: inits[k] for k in e["constants"]}, opset=opset)
               for e in seg["host_ops"]]
        cache[i] = (HostRunner(g), ops)
        return cache[i]

    def quantize_inputs(self, inputs) -> dict[str, np.ndarray]:
        """Float NCHW inputs (array for a single-input model, or {ONNX name: array})
        -> IR input values (int8 NHWC)."""
        specs = self.manifest["inputs"]
        if not isinstance(inputs, Mapping):
            if len(specs) != 1:
                raise BundleError(f"model has inputs {[s['name'] for s in specs]}: pass a dict")
            inputs = {specs[0]["name"]: inputs}
        out = {}
        for s in specs:
            if s["name"] not in inputs:
                raise BundleError(f"missing input '{s['name']}'")
            x = np.asarray(inputs[s["name"]], np.float32)
            if s["shape"] and list(x.shape) != list(s["shape"]):
                raise BundleError(f"input '{s['name']}' has shape {list(x.shape)}, the bundle was "
                                  f"compiled for {s['shape']}")
            t = self._tensor(s["tensor"])
            x = ir.nchw_to_nhwc(x)
            out[s["tensor"]] = t.quant.quantize(x) if t.quant else x
        return out

    def dequantize_outputs(self, values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for s in self.manifest["outputs"]:
            t = self._tensor(s["tensor"])
            v = values[s["tensor"]]
            v = ir.nhwc_to_nchw(v) if len(t.shape) == 4 else v
            v = t.quant.dequantize(v) if t.quant else np.asarray(v, np.float32)
            if s.get("shape"):
                v = v.reshape(s["shape"])
            out[s["name"]] = v
        return out

    def run(self, inputs, device: str = "golden:", *, return_intermediates: bool = False,
            check_races: bool = True, npu_executor=None):
        """Float NCHW inputs -> {ONNX output name: float array}.

        return_intermediates=True returns (outputs, tensors) where tensors maps
        every IR tensor (NPU layers' int8 outputs included, NHWC) to its value.
        Per-segment cycle counts land in self.last_run.
        npu_executor(segment_index, program, feeds) -> {output tensor: int8 array}
        runs NPU segments somewhere else than the golden ISS (a device through
        the host driver: presil.host.runtime.ModelRunner); `device` is then unused.
        """
        if npu_executor is not None and return_intermediates:
            raise BundleError("intermediate tensors are only available from the golden ISS")
        if npu_executor is None:
            check_device(device)
        values: dict[str, np.ndarray] = dict(self.quantize_inputs(inputs))
        stats = {"cycles": {}, "layer_cycles": {}, "mac_active": 0}
        for s in self.segments:
            i = s["index"]
            if s["device"] == "npu":
                p = self.programs[i]
                names = p.meta["tensor_names"]
                # The host's part of the segment boundary: inputs in the layouts the
                # program declares (space-to-depth for a stem; manifest "input_layouts").
                feeds = program_feeds(p, values)
                if npu_executor is not None:
                    got = npu_executor(i, p, feeds)
                else:
                    r = iss.run(p, feeds, capture="tensors" if return_intermediates else None,
                                check_races=check_races)
                    got = r.captures if return_intermediates else r.outputs
                    stats["cycles"][s["name"]] = r.cycles
                    stats["layer_cycles"].update(r.layer_cycles)
                    stats["mac_active"] += r.mac_active
                for d, a in got.items():
                    t = names[d]
                    if t in values and t in s["inputs"]:
                        continue
                    values[t] = a.reshape(self.manifest["tensors"][t]["shape"]) \
                        if t in self.manifest["tensors"] else a
            else:
                runner, ops = self._host_runner(i)
                for op in ops:
                    values.update(runner.run(op, values))
        stats["total_cycles"] = sum(stats["cycles"].values())
        self.last_run = stats
        outs = self.dequantize_outputs(values)
        return (outs, values) if return_intermediates else outs


def compile_model(onnx_model, calibration, *, input_shapes=None, rows: int = 16, cols: int = 16,
                  config: NpuConfig | None = None, name: str | None = None, qdq=None) -> Bundle:
    """FP32 ONNX (path, bytes or ModelProto) + calibration data -> Bundle.

    qdq: an already quantised model (skips quantize(); calibration is then unused).
    """
    if qdq is None:
        qdq = quantize(onnx_model, calibration, input_shapes=input_shapes)
    g = to_ir(qdq, name)
    cfg = config or NpuConfig(rows, cols)
    segs = partition(g)
    b = Bundle({})
    tensors: dict[str, ir.Tensor] = {}
    seg_entries = []
    for s in segs:
        e = {"index": s.index, "device": s.device, "name": s.name, "inputs": s.inputs,
             "outputs": s.outputs, "nodes": [n.name for n in s.nodes], "macs": s.macs}
        for t in s.inputs + s.outputs:
            tensors[t] = g.tensors[t]
        if s.device == "npu":
            e["file"] = f"npu{s.index}.prog"
            b.programs[s.index] = lower_segment(g, s, config=cfg, name=f"{g.name}.{s.name}")
            # inputs the host re-lays out before the NPU reads them (lower.SpaceToDepth)
            e["input_layouts"] = b.programs[s.index].meta.get("input_layouts", {})
            # every layer's output is captured by run(return_intermediates=True)
            for n in s.nodes:
                for t in n.outputs:
                    tensors[t] = g.tensors[t]
        else:
            e["file"] = f"host{s.index}.onnx"
            m, entries = _host_model(g, s.nodes)
            b.host_models[s.index] = m
            e["host_ops"] = entries
            for h in entries:
                for t in h["inputs"] + h["outputs"]:
                    tensors[t] = g.tensors[t]
        seg_entries.append(e)
    for t in g.inputs + g.outputs:
        tensors[t] = g.tensors[t]
    b.manifest = {
        "format": FORMAT, "version": VERSION, "name": g.name, "rows": cfg.rows, "cols": cfg.cols,
        "npu_config": cfg.depths,
        "inputs": [{"name": g.onnx_inputs[t], "tensor": t,
                    "shape": _onnx_shape(g.tensors[t].shape),
                    "quant": _q(g.tensors[t])} for t in g.inputs],
        "outputs": [{"name": g.onnx_outputs[t], "tensor": t,
                     "shape": list(g.onnx_output_shapes.get(t, ())) or None,
                     "quant": _q(g.tensors[t])} for t in g.outputs],
        "tensors": {k: {"shape": list(t.shape), "dtype": t.dtype,
                        "scale": t.quant.scale if t.quant else None,
                        "zero_point": t.quant.zero_point if t.quant else None}
                    for k, t in tensors.items()},
        "segments": seg_entries,
        "partition_table": partition_table(g, segs),
        "macs": g.macs(),
    }
    b.qdq = qdq
    b.graph = g
    return b

"""Model preparation for the harness: resolve a model (zoo name or .onnx
path), quantise and compile it once, and derive the numbers the timing model
needs (device cycles and transfer bytes per sample).

Compilation goes through `presil.host.compiler.bundle.compile_model` when
that module is present; otherwise through the compiler's own stages
(quantize -> to_ir -> lower), which give the same programs and the golden
IR for results.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .datasets import MODEL_DATASETS, TASK_ANOMALY, TASK_CLASSIFICATION, TASK_DETECTION


@dataclass
class ModelSpec:
    name: str
    proto: onnx.ModelProto = field(repr=False)
    input_name: str
    input_shape: tuple[int, ...]
    task: str
    classes: int
    default_dataset: str


def resolve_model(model: str) -> ModelSpec:
    """A zoo name or an .onnx path."""
    from presil.host import zoo

    p = Path(model)
    if p.suffix == ".onnx" and p.is_file():
        proto = onnx.load(str(p))
        name = p.stem
    else:
        proto = zoo.build(model)  # raises UnknownModelError listing the names
        name = model
    inp = proto.graph.input[0]
    shape = tuple(d.dim_value or 1 for d in inp.type.tensor_type.shape.dim)
    out_shape = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    if name == "autoencoder_ad":
        task = TASK_ANOMALY
    elif len(proto.graph.output) > 1 or name.startswith("ssd"):
        task = TASK_DETECTION
    else:
        task = TASK_CLASSIFICATION
    classes = int(out_shape[-1]) if out_shape else 0
    return ModelSpec(name, proto, inp.name, shape, task, classes, MODEL_DATASETS.get(name, "synthetic"))


def calibration_data(spec: ModelSpec, dataset_kind: str | None, dataset_path=None, n: int = 200) -> np.ndarray:
    """Calibration inputs: the digits train split for digits (never the
    held-out samples we score on), else the first n samples of the dataset,
    else seeded synthetic data."""
    from .datasets import digits, open_dataset, synthetic

    if dataset_kind == "digits":
        ds = digits("train")
    elif dataset_kind and dataset_kind != "synthetic":
        ds = open_dataset(dataset_kind, path=dataset_path, input_shape=spec.input_shape)
    else:
        ds = synthetic(spec.input_shape, count=n, seed=1234)
    k = min(n, len(ds))
    return np.concatenate([ds.load(i) for i in range(k)])


@dataclass
class Compiled:
    """What the backends need from a compiled model."""

    spec: ModelSpec
    programs: dict = field(repr=False)  # NPU segment index -> Program
    bundle: object = None  # presil.host.compiler.bundle.Bundle
    rows: int = 16
    cols: int = 16


def compile_model(spec: ModelSpec, calibration, *, rows: int = 16, cols: int = 16,
                  cache_dir=None, cache_key: str = "") -> Compiled:
    """calibration: an array, or a callable returning one (only called when
    compiling). cache_dir: keep the bundle there, keyed by the model's bytes,
    the array, the ISA and cache_key (the calibration set), so the per-test
    processes of one run compile once."""
    from presil.golden.isa import isa_hash
    from presil.host.compiler import bundle as bundle_mod

    cache = None
    if cache_dir:
        key = hashlib.sha256(spec.proto.SerializeToString() + cache_key.encode()
                             + isa_hash().to_bytes(4, "little")).hexdigest()[:16]
        cache = Path(cache_dir) / f"{spec.name}-{rows}x{cols}-{key}.bundle"
    b = None
    if cache is not None and cache.is_file():
        try:
            b = bundle_mod.Bundle.load(cache)
        except bundle_mod.CompilerError:
            b = None  # a stale or damaged cache entry: compile again and replace it
    if b is None:
        b = bundle_mod.compile_model(spec.proto, calibration() if callable(calibration) else calibration,
                                     rows=rows, cols=cols)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            b.save(tmp)
            tmp.replace(cache)
    return Compiled(spec, b.programs, b, rows, cols)


@dataclass(frozen=True)
class DeviceCost:
    """Per-sample device work of a compiled model."""

    cycles: int
    in_bytes: int
    out_bytes: int
    segments: int
    per_segment: dict

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "in_bytes": self.in_bytes, "out_bytes": self.out_bytes,
                "segments": self.segments, "per_segment": self.per_segment}


def model_cycles(compiled: Compiled) -> DeviceCost:
    """The cost model's cycles: the ISS schedule of each NPU program (timing
    does not depend on data, so zero inputs do), and the bytes its input and
    output tensors move over the host link."""
    from presil.golden import iss
    from presil.golden.program import TensorRole

    total, bin_, bout, per = 0, 0, 0, {}
    for idx, prog in sorted(compiled.programs.items()):
        zeros = {t.name: np.zeros(t.shape, np.int8) for t in prog.tensors if t.role == TensorRole.INPUT}
        r = iss.run(prog, zeros, check_races=False)
        i_b = sum(t.size_bytes for t in prog.tensors if t.role == TensorRole.INPUT)
        o_b = sum(t.size_bytes for t in prog.tensors if t.role == TensorRole.OUTPUT)
        per[str(idx)] = {"cycles": int(r.cycles), "in_bytes": i_b, "out_bytes": o_b,
                         "mac_active": int(r.mac_active)}
        total += int(r.cycles)
        bin_ += i_b
        bout += o_b
    return DeviceCost(total, bin_, bout, len(per), per)


def measured_cycles(compiled: Compiled, device: str, model_cost: DeviceCost) -> DeviceCost:
    """Cycles measured on a device (default the RTL, `sim:`): each NPU program
    runs once on zero inputs (timing does not depend on data) and its
    BUSY_CYCLES performance counter is read."""
    from presil.golden.program import TensorRole
    from presil.host.driver import Device

    per = {}
    with Device.open(device) as dev:
        for idx, prog in sorted(compiled.programs.items()):
            lp = dev.load(prog)
            try:
                dev.run(lp, {t.name: np.zeros(t.shape, np.int8) for t in prog.tensors if t.role == TensorRole.INPUT})
                per[str(idx)] = int(dev.perf()["busy_cycles"])
            finally:
                dev.unload(lp)
    per_seg = {k: dict(model_cost.per_segment.get(k, {}), cycles=v, source=device) for k, v in per.items()}
    return DeviceCost(sum(per.values()), model_cost.in_bytes, model_cost.out_bytes, model_cost.segments, per_seg)


def rtl_cycles(path_or_value, model_cost: DeviceCost) -> DeviceCost:
    """Measured RTL cycles: an integer (whole model) or a JSON file
    {"cycles": N} or {"segments": {"0": N, ...}} written from the testbench's
    performance counters."""
    if isinstance(path_or_value, (int, float)) or str(path_or_value).isdigit():
        cycles = int(path_or_value)
        per = {"rtl_total": cycles}
    else:
        d = json.loads(Path(path_or_value).read_text())
        if "segments" in d:
            per = {str(k): int(v) for k, v in d["segments"].items()}
            cycles = sum(per.values())
        elif "cycles" in d:
            cycles = int(d["cycles"])
            per = {"rtl_total": cycles}
        else:
            raise ValueError(f"{path_or_value}: expected {{'cycles': N}} or {{'segments': {{...}}}}")
    return DeviceCost(cycles, model_cost.in_bytes, model_cost.out_bytes, model_cost.segments, per)

"""Programs cut from compiled zoo models, with real tensors: whole NPU segments
and single-layer programs (every distinct conv/fc/pool/add layer) whose input
activations come from the golden run of the whole model."""

from __future__ import annotations

from functools import lru_cache


from presil.host import zoo
from presil.host.compiler import ir, zoodata
from presil.host.compiler.bundle import compile_model
from presil.host.compiler.lower import lower_segment, program_feeds
from presil.host.compiler.partition import Segment

ALIASES = {"digits": "digits_cnn"}
TINY = ("digits_cnn", "resnet8", "dscnn", "mobilenet_v1_025_vww", "autoencoder_ad")
LAYER_OPS = (ir.Conv, ir.FullyConnected, ir.MaxPool, ir.AvgPool, ir.GlobalAvgPool, ir.Add)


@lru_cache(maxsize=None)
def compiled(name: str, sample: int = 0):
    """(bundle, {IR tensor: value}) for one input: digits uses a real held-out
    digit, the others seeded synthetic data (zoodata.samples)."""
    name = ALIASES.get(name, name)
    calib, _ = zoodata.calibration(name)
    b = compile_model(zoo.build(name), calib, name=name)
    xs, _, _ = zoodata.samples(name, sample + 1)
    _, values = b.run(xs[sample], return_intermediates=True)
    return b, values


def _feeds(program, values: dict, tensors) -> dict:
    # The program's own input layouts (e.g. a space-to-depth stem) decide the packing.
    return program_feeds(program, {t: values[t] for t in tensors})


def segment_jobs(name: str, sample: int = 0) -> list[dict]:
    """Every NPU segment of the model as one job (whole-network run)."""
    b, values = compiled(name, sample)
    jobs = []
    for s in b.segments:
        if s["device"] != "npu":
            continue
        p = b.programs[s["index"]]
        jobs.append({"name": f"{b.name}.{s['name']}", "program": p, "inputs": _feeds(p, values, s["inputs"]),
                     "capture": True, "meta": {"model": b.name, "segment": s["name"],
                                               "layers": len(s["nodes"])}})
    return jobs


def layer_key(g: ir.Graph, n: ir.Node) -> tuple:
    """Distinct by op, shapes and attributes (not by weights)."""
    shapes = tuple(tuple(g.tensors[t].shape) for t in n.inputs + n.outputs)
    attrs = []
    for a in ("stride", "pads", "groups", "kernel", "activation", "count_include_pad"):
        if hasattr(n, a):
            attrs.append(getattr(n, a))
    if getattr(n, "weights", None) is not None:
        attrs.append(tuple(n.weights.shape))
    return (n.op, shapes, tuple(attrs))


def describe(g: ir.Graph, n: ir.Node) -> str:
    shp = "x".join(map(str, g.tensors[n.inputs[0]].shape))
    return f"{n.op} {shp} {n.describe()}".strip()


def layer_jobs(name: str, *, sample: int = 0, distinct: bool = True, only: str | None = None) -> list[dict]:
    """Single-layer programs for the model's NPU layers, each with its real
    input activation from the golden run of the whole model."""
    b, values = compiled(name, sample)
    g = b.graph
    seen, jobs = set(), []
    for s in b.segments:
        if s["device"] != "npu":
            continue
        for node_name in s["nodes"]:
            n = next(x for x in g.nodes if x.name == node_name)
            if not isinstance(n, LAYER_OPS) or (only is not None and n.name != only):
                continue
            key = layer_key(g, n)
            if distinct and key in seen:
                continue
            seen.add(key)
            seg = Segment(0, "npu", [n], list(dict.fromkeys(n.inputs)), list(n.outputs), n.macs(g))
            p = lower_segment(g, seg, name=f"{b.name}.{n.name}")
            jobs.append({"name": f"{b.name}/{n.name}", "program": p, "inputs": _feeds(p, values, seg.inputs),
                         "capture": True,
                         "meta": {"model": b.name, "layer": n.name, "op": n.op, "macs": int(n.macs(g)),
                                  "what": describe(g, n)}})
    if only is not None and not jobs:
        names = [n.name for n in g.nodes if isinstance(n, LAYER_OPS)]
        raise KeyError(f"{b.name} has no NPU layer {only!r}; layers: {', '.join(names)}")
    return jobs

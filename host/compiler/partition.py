"""Split an IR graph into NPU and host segments.

A segment is a maximal run of consecutive nodes (in the graph's topological
order) on the same device: an NPU segment becomes one NPU program (one
doorbell), a host segment runs on the CPU between them.  The tensors crossing
a segment boundary are what the runtime moves between device and host memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ir


@dataclass
class Segment:
    index: int
    device: str                       # "npu" | "host"
    nodes: list[ir.Node] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)    # tensors read from outside
    outputs: list[str] = field(default_factory=list)   # tensors used outside / graph outputs
    macs: int = 0

    @property
    def name(self) -> str:
        return f"{self.device}{self.index}"


def partition(graph: ir.Graph) -> list[Segment]:
    """Segments in execution order; every node is in exactly one."""
    segs: list[Segment] = []
    for n in graph.nodes:
        if not segs or segs[-1].device != n.device:
            segs.append(Segment(len(segs), n.device))
        segs[-1].nodes.append(n)
    for s in segs:
        produced = {o for n in s.nodes for o in n.outputs}
        s.inputs = list(dict.fromkeys(i for n in s.nodes for i in n.inputs if i not in produced))
        used_later = {i for t in segs if t is not s for n in t.nodes for i in n.inputs}
        s.outputs = [o for n in s.nodes for o in n.outputs
                     if o in used_later or o in graph.outputs]
        s.macs = sum(n.macs(graph) for n in s.nodes)
    return segs


def partition_table(graph: ir.Graph, segments: list[Segment] | None = None) -> str:
    """The human-readable table: segment, device, nodes, MACs, boundary tensors."""
    segments = partition(graph) if segments is None else segments
    total = max(graph.macs(), 1)
    rows = [("segment", "device", "nodes", "ops", "MACs", "% MACs", "in", "out")]
    for s in segments:
        ops = {}
        for n in s.nodes:
            k = n.op if n.device == "npu" else n.onnx_ops
            ops[k] = ops.get(k, 0) + 1
        rows.append((s.name, s.device, str(len(s.nodes)),
                     ", ".join(f"{k}x{v}" if v > 1 else k for k, v in ops.items()),
                     f"{s.macs:,}", f"{100.0 * s.macs / total:.1f}",
                     _shapes(graph, s.inputs), _shapes(graph, s.outputs)))
    npu = sum(s.macs for s in segments if s.device == "npu")
    rows.append(("total", "", str(len(graph.nodes)), "", f"{graph.macs():,}",
                 f"npu {100.0 * npu / total:.1f}", "", ""))
    return ir.format_table(rows)


def _shapes(graph: ir.Graph, names: list[str]) -> str:
    return " ".join(("x".join(map(str, graph.tensors[t].shape))
                     + ("f" if graph.tensors[t].dtype == "float32" else "")) for t in names) or "-"

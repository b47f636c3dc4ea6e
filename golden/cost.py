"""The cycle cost model (definition: docs/cost-model.md): cycles per instruction
from isa.toml's [cost] constants, at instruction granularity."""

from __future__ import annotations

from presil.golden.isa import ISA, CostSpec, DecodedInstr


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def dispatch_cycles(cost: CostSpec = ISA.cost) -> int:
    """Dispatcher time per instruction: fetch over the bus, then dispatch."""
    return cost.fetch_per_instr + cost.dispatch


def instr_cycles(d: DecodedInstr, rows: int, cols: int, cost: CostSpec = ISA.cost) -> int:
    """Engine busy cycles of one instruction (FENCE: dispatcher cycles after the
    engines are idle; NOP and END: 0)."""
    f = d.fields
    if d.name in ("LOAD", "STORE"):
        wb = ISA.memory_by_id(f["mem"]).word_bytes(rows, cols)
        beats = _ceil_div(f["x_words"] * wb, ISA.axi_data_bytes)
        return cost.dma_setup + f["y_count"] * (cost.dma_row_overhead + beats)
    if d.name == "GEMM":
        m = f["out_h"] * f["out_w"]
        n_tiles = f["k_h"] * f["k_w"] * f["cb_count"]
        # Double-buffered weights: each tile's ROWS-cycle load hides under the
        # previous tile's M-cycle stream; first load, fill and drain are exposed.
        return cost.gemm_setup + n_tiles * max(m, rows) + rows + rows + cols
    if d.name == "POST":
        return cost.post_pipeline + f["count"]
    if d.name == "ADD":
        return cost.add_pipeline + f["count"]
    if d.name == "POOL":
        return cost.pool_pipeline + f["out_h"] * f["out_w"] * f["in_cb"] * f["k_h"] * f["k_w"]
    if d.name == "FENCE":
        return cost.fence
    return 0


def mac_cycles(d: DecodedInstr) -> int:
    """Cycles the array does useful MACs: one output pixel per cycle per tile."""
    if d.name != "GEMM":
        return 0
    f = d.fields
    return f["k_h"] * f["k_w"] * f["cb_count"] * f["out_h"] * f["out_w"]

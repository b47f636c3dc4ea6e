"""The cycle cost model (definition: docs/cost-model.md): cycles per instruction
from the constants in golden/cost.toml, at instruction granularity."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

from presil.golden.isa import ISA, DecodedInstr


@dataclass(frozen=True)
class CostSpec:
    dispatch: int
    fetch_per_instr: int
    dma_setup: int
    dma_row_overhead: int
    gemm_setup: int
    post_pipeline: int
    add_pipeline: int
    add_cycles_per_word: int
    pool_pipeline: int
    pool_max_interval: int
    pool_div_interval: int
    pool_div_latency: int
    fence: int


def load_cost() -> CostSpec:
    return CostSpec(**tomllib.loads(resources.files("presil.golden").joinpath("cost.toml").read_text()))


COST = load_cost()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def dispatch_cycles(cost: CostSpec = COST) -> int:
    """Dispatcher time per instruction: fetch over the bus, then dispatch."""
    return cost.fetch_per_instr + cost.dispatch


def instr_cycles(d: DecodedInstr, rows: int, cols: int, cost: CostSpec = COST) -> int:
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
        # previous tile's M-cycle stream. Exposed once: the array fill and drain
        # (ROWS + COLS) and min(M, ROWS) of the first weight load (with M < ROWS
        # the RTL starts streaming as soon as the first M rows' weights are in).
        return cost.gemm_setup + n_tiles * max(m, rows) + min(m, rows) + rows + cols
    if d.name == "POST":
        return cost.post_pipeline + f["count"]
    if d.name == "ADD":
        return cost.add_pipeline + cost.add_cycles_per_word * f["count"]
    if d.name == "POOL":
        words = f["out_h"] * f["out_w"] * f["in_cb"]
        window = f["k_h"] * f["k_w"]
        if f["mode"] == 0:           # max: one ACT read per window element, at least the finish stage's interval
            return cost.pool_pipeline + words * max(window, cost.pool_max_interval)
        # average: window reads overlap the divider of the previous word
        return cost.pool_pipeline + window + (words - 1) * max(window, cost.pool_div_interval) + cost.pool_div_latency
    if d.name == "FENCE":
        return cost.fence
    return 0


def mac_cycles(d: DecodedInstr) -> int:
    """Cycles the array does useful MACs: one output pixel per cycle per tile."""
    if d.name != "GEMM":
        return 0
    f = d.fields
    return f["k_h"] * f["k_w"] * f["cb_count"] * f["out_h"] * f["out_w"]

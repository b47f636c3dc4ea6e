"""Instruction scheduling: derive the dependency tokens of a program from what
each instruction touches.

The lowering emits instructions in program order with plain SRAM addresses
(double buffers are just alternating addresses) and this module adds the
push/pop flags. For every new instruction it finds the earlier instructions
of *other* engines that touch a common SRAM word with at least one write (the
data-race rule of docs/architecture.md §4.3; exact word sets, so strided
accesses that interleave do not conflict), keeps the latest per engine and,
unless a token chain already orders them (vector clocks), pops a token that
the producer is retroactively made to push.

Why this is exact: a consumer only pops when it needs a newer producer than
any it is already ordered after, so on every counter the k-th pop meets the
k-th push (in-order engines, FIFO counters), every push has its pop (END sees
all counters at 0) and dependencies point backwards in program order, which
rules out deadlock for any queue depth.

Load <-> store has no token counter; a conflict between them (never produced
by lower.py's buffer layout) falls back to a FENCE. Device-memory hazards
(a STORE then a LOAD of the same tensor) are not SRAM hazards: the caller
separates layers with fence().
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from presil.golden.footprint import sram_accesses
from presil.golden.isa import ENGINES, ISA, decode, encode

_ENG = {e: i for i, e in enumerate(ENGINES)}
# (consumer engine, producer engine) -> (consumer pop flag, producer push flag)
_LINKS = {
    ("compute", "load"): ("pop_prev", "push_next"),     # l2c
    ("load", "compute"): ("pop_next", "push_prev"),     # c2l
    ("store", "compute"): ("pop_prev", "push_next"),    # c2s
    ("compute", "store"): ("pop_next", "push_prev"),    # s2c
}


@dataclass
class _Instr:
    name: str
    fields: dict
    engine: str
    flags: set = field(default_factory=set)
    vc: list = None  # vector clock at completion: latest index per engine ordered before/at it


class _Access:
    """One SRAM access of an instruction; its word set is built on first use."""

    def __init__(self, a):
        self.mem, self.write, self.lo, self.hi = a.mem, a.write, a.lo, a.hi
        self._build, self._words = a.build, None

    @property
    def words(self) -> np.ndarray:
        if self._words is None:
            self._words = self._build()
        return self._words

    @property
    def dense(self) -> bool:
        """Every word of [lo, hi] is touched (a contiguous range, or rows that touch)."""
        return self.hi - self.lo + 1 == self.words.size

    def overlaps(self, b: "_Access") -> bool:
        """Exact, not just the [lo, hi] intervals: a POST or STORE of one channel
        block (a word every out_cb) must not look like it touches the other blocks'."""
        lo, hi = max(self.lo, b.lo), min(self.hi, b.hi)
        if lo > hi:
            return False
        if self.dense or b.dense:
            return True
        mask = np.zeros(hi - lo + 1, bool)
        wa, wb = self.words, b.words
        mask[wa[(wa >= lo) & (wa <= hi)] - lo] = True
        return bool(mask[wb[(wb >= lo) & (wb <= hi)] - lo].any())

    def covers(self, b: "_Access") -> bool:
        """Does this access touch every word b touches?"""
        if not (self.lo <= b.lo and b.hi <= self.hi):
            return False
        if self.dense:
            return True
        mask = np.zeros(self.hi - self.lo + 1, bool)
        mask[self.words - self.lo] = True
        return bool(mask[b.words - self.lo].all())


@dataclass
class _Rec:
    acc: _Access
    engine: int
    idx: int


class Emitter:
    """Collects instructions, tracks SRAM hazards and sets dependency flags."""

    def __init__(self, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.instrs: list[_Instr] = []
        self.layers: list[tuple[str, int, int]] = []
        self._recs: dict[str, list[_Rec]] = {m: [] for m in ISA.memories}
        self._vc = {e: [-1] * len(ENGINES) for e in ENGINES}  # per engine: what its next instr is after
        self._fence_vc = [-1] * len(ENGINES)
        self._last = [-1] * len(ENGINES)  # last index emitted per engine
        self.fallback_fences = 0

    # -- program structure ----------------------------------------------------
    def fence(self) -> None:
        """FENCE: everything before is ordered before everything after."""
        self.instrs.append(_Instr("FENCE", {}, "dispatch"))
        self._fence_vc = list(self._last)
        for e in ENGINES:
            self._vc[e] = list(self._last)
        for recs in self._recs.values():
            recs.clear()

    def begin_layer(self, name: str) -> None:
        self._layer = (name, len(self.instrs))

    def end_layer(self) -> None:
        name, start = self._layer
        self.layers.append((name, start, len(self.instrs)))

    # -- instructions -----------------------------------------------------------
    def emit(self, name: str, **fields) -> int:
        engine = ISA.by_name[name].engine
        accesses = [_Access(a) for a in sram_accesses(decode(encode(name, **fields)), self.rows, self.cols)]
        need = self._needs(engine, accesses)
        if any(p > self._vc[engine][_ENG[f]] and (engine, f) not in _LINKS for f, p in need.items()):
            self.fallback_fences += 1
            self.fence()
            need = self._needs(engine, accesses)
        ins = _Instr(name, dict(fields), engine)
        idx = len(self.instrs)
        vc = list(self._vc[engine])
        for f, p in need.items():
            if p <= vc[_ENG[f]]:
                continue  # already ordered by an earlier token chain
            pop, push = _LINKS[(engine, f)]
            ins.flags.add(pop)
            prod = self.instrs[p]
            prod.flags.add(push)
            vc = [max(a, b) for a, b in zip(vc, prod.vc)]
        vc[_ENG[engine]] = idx
        ins.vc = vc
        self._vc[engine] = list(vc)
        self._last[_ENG[engine]] = idx
        self.instrs.append(ins)
        e_i = _ENG[engine]
        for a in accesses:
            recs = self._recs[a.mem]
            if a.write:  # an older access inside a newer write is ordered by it (or by program order)
                recs[:] = [r for r in recs if not a.covers(r.acc)]
            recs.append(_Rec(a, e_i, idx))
        return idx

    def _needs(self, engine: str, accesses) -> dict[str, int]:
        e_i = _ENG[engine]
        need: dict[str, int] = {}
        for a in accesses:
            for r in self._recs[a.mem]:
                if r.engine != e_i and (a.write or r.acc.write) and a.overlaps(r.acc):
                    f = ENGINES[r.engine]
                    if r.idx > need.get(f, -1):
                        need[f] = r.idx
        return need

    # -- output -------------------------------------------------------------------
    def encoded(self) -> list[tuple[str, bytes]]:
        return [(i.name, encode(i.name, **i.fields, **{f: True for f in i.flags})) for i in self.instrs]

    def write_to(self, builder) -> None:
        """Append everything (plus END) to a ProgramBuilder, recording the layer ranges."""
        enc = self.encoded()
        pos = 0
        for name, start, end in self.layers:
            while pos < start:
                builder.instructions.append(enc[pos][1])
                pos += 1
            with builder.layer(name):
                while pos < end:
                    builder.instructions.append(enc[pos][1])
                    pos += 1
        while pos < len(enc):
            builder.instructions.append(enc[pos][1])
            pos += 1
        builder.end()

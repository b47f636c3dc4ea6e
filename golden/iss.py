"""The instruction-set simulator: functional, bit-exact execution of a program
plus its cost-model schedule (dispatcher + three in-order engines + tokens) and
a vector-clock data-race check.

Two passes: `_schedule` computes when each instruction starts and ends (timing
does not depend on data), then instructions execute functionally in start-time
order (ties: load, compute, store), which is a valid order of the tokens'
happens-before relation, so race checking can run alongside.
"""

from __future__ import annotations

from collections import deque
from operator import gt
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from presil.golden.arith import INT32_MAX, Q31_MIN, GoldenError, mbqm, wrap_int32
from presil.golden.cost import dispatch_cycles, instr_cycles, mac_cycles
from presil.golden.device_errors import DataRace, DeviceError, ErrorCode, IsaError, ProgramDeadlock
from presil.golden.footprint import check_static, dma_rows, sram_accesses
from presil.golden.isa import ENGINES, ISA, DecodedInstr, decode
from presil.golden.layout import pack_activation, unpack_activation
from presil.golden.program import Program, TensorRole

COUNTERS = ("l2c", "c2l", "c2s", "s2c")
# (engine, flag) -> token counter it pops or pushes.
_TOKEN = {
    ("load", "pop_next"): "c2l", ("load", "push_next"): "l2c",
    ("compute", "pop_prev"): "l2c", ("compute", "push_prev"): "c2l",
    ("compute", "pop_next"): "s2c", ("compute", "push_next"): "c2s",
    ("store", "pop_prev"): "c2s", ("store", "push_prev"): "s2c",
}
_ENGINE_RANK = {e: i for i, e in enumerate(ENGINES)}


@dataclass(frozen=True)
class ScheduleEntry:
    pc: int
    name: str
    engine: str  # load, compute, store or dispatch
    start: int
    end: int


@dataclass
class IssResult:
    outputs: dict[str, np.ndarray]
    cycles: int
    engine_busy: dict[str, int]
    mac_active: int
    schedule: list[ScheduleEntry]
    layer_cycles: dict[str, int]
    dma_bytes_read: int
    dma_bytes_written: int
    captures: object = None
    window: np.ndarray | None = field(default=None, repr=False)


def _pops(d: DecodedInstr) -> list[str]:
    return [_TOKEN[(d.engine, f)] for f in ("pop_prev", "pop_next") if getattr(d.deps, f)]


def _pushes(d: DecodedInstr) -> list[str]:
    return [_TOKEN[(d.engine, f)] for f in ("push_prev", "push_next") if getattr(d.deps, f)]


@dataclass
class _Schedule:
    entries: dict[int, ScheduleEntry]
    producers: dict[int, list[int]]  # pc -> pcs whose pushes its pops consumed
    fence_before: dict[int, int]  # engine pc -> pc of the last FENCE before it (program order)
    end_time: int
    error: DeviceError | None  # TOKEN_OVERFLOW / TOKEN_LEAK, raised after executing what ran before it
    error_time: int


def _schedule(instrs: list[DecodedInstr], rows: int, cols: int) -> _Schedule:
    n = len(instrs)
    depth = int(ISA.constants["queue_depth"])
    per_instr = dispatch_cycles()
    entries: dict[int, ScheduleEntry] = {}
    producers: dict[int, list[int]] = {}
    fence_before: dict[int, int] = {}
    pushes: dict[str, list[tuple[int, int]]] = {c: [] for c in COUNTERS}  # (time, pc) in order
    pop_starts: dict[str, list[int]] = {c: [] for c in COUNTERS}
    queues = {e: deque() for e in ENGINES}  # (pc, dispatch time)
    started = {e: [] for e in ENGINES}  # start times, engine order
    n_dispatched = dict.fromkeys(ENGINES, 0)
    eng_free = dict.fromkeys(ENGINES, 0)
    last_end = 0
    disp_pc, disp_t, last_fence, finished = 0, 0, -1, False

    while True:
        progress = False
        while disp_pc < n and not finished:  # the dispatcher, in program order
            d = instrs[disp_pc]
            t = disp_t + per_instr
            if d.engine in ENGINES:
                j = n_dispatched[d.engine]
                if j >= depth:  # queue full: wait for its oldest entry to start
                    if len(started[d.engine]) <= j - depth:
                        break
                    t = max(t, started[d.engine][j - depth])
                queues[d.engine].append((disp_pc, t))
                n_dispatched[d.engine] += 1
                fence_before[disp_pc] = last_fence
                entries[disp_pc] = ScheduleEntry(disp_pc, d.name, "dispatch", disp_t, t)  # replaced at start
            elif d.name in ("FENCE", "END"):
                if any(queues.values()) or any(len(started[e]) < n_dispatched[e] for e in ENGINES):
                    break
                t = max(t, last_end) + instr_cycles(d, rows, cols)
                if d.name == "FENCE":
                    last_fence = disp_pc
                else:
                    finished = True
                entries[disp_pc] = ScheduleEntry(disp_pc, d.name, "dispatch", disp_t, t)
            else:
                entries[disp_pc] = ScheduleEntry(disp_pc, d.name, "dispatch", disp_t, t)
            disp_t = t
            disp_pc += 1
            progress = True
        for e in ENGINES:  # each engine, in order, while its head's tokens exist
            while queues[e]:
                pc, t_disp = queues[e][0]
                d = instrs[pc]
                need = []
                for c in _pops(d):
                    k = len(pop_starts[c]) + sum(1 for x in need if x[0] == c)
                    need.append((c, k))
                if any(k >= len(pushes[c]) for c, k in need):
                    break
                start = max([t_disp, eng_free[e]] + [pushes[c][k][0] for c, k in need])
                end = start + instr_cycles(d, rows, cols)
                producers[pc] = [pushes[c][k][1] for c, k in need]
                for c, _ in need:
                    pop_starts[c].append(start)
                for c in _pushes(d):
                    pushes[c].append((end, pc))
                queues[e].popleft()
                started[e].append(start)
                eng_free[e] = end
                last_end = max(last_end, end)
                entries[pc] = ScheduleEntry(pc, d.name, e, start, end)
                progress = True
        if finished or not progress:
            break

    error, error_time = _token_overflow(pushes, pop_starts)
    if not finished:
        if error is not None:
            raise error
        raise ProgramDeadlock(_deadlock_message(instrs, queues, pushes, pop_starts, disp_pc, n))
    if error is None:
        left = {c: len(pushes[c]) - len(pop_starts[c]) for c in COUNTERS}
        if any(left.values()):
            end_pc = n - 1
            desc = ", ".join(f"{c}={v}" for c, v in left.items() if v)
            error = DeviceError(ErrorCode.TOKEN_LEAK, end_pc, f"END: token counters not 0 ({desc})")
            error_time = entries[end_pc].end
    return _Schedule(entries, producers, fence_before, entries[n - 1].end, error, error_time)


def _token_overflow(pushes, pop_starts):
    """The earliest push that takes a counter above token_max, as a DeviceError."""
    token_max = int(ISA.constants["token_max"])
    worst = None
    for c in COUNTERS:
        starts = np.sort(np.asarray(pop_starts[c], dtype=np.int64))
        for k, (t, pc) in enumerate(pushes[c]):
            # A pop starting in the same cycle as the push is simultaneous with it.
            value = k + 1 - int(np.searchsorted(starts, t, side="right"))
            if value > token_max:
                if worst is None or t < worst[0]:
                    worst = (t, pc, c)
                break
    if worst is None:
        return None, 0
    t, pc, c = worst
    return DeviceError(ErrorCode.TOKEN_OVERFLOW, pc, f"push of {c} beyond token_max {token_max}"), t


def _deadlock_message(instrs, queues, pushes, pop_starts, disp_pc, n) -> str:
    lines = []
    for e in ENGINES:
        if not queues[e]:
            continue
        pc = queues[e][0][0]
        d = instrs[pc]
        flags = [f for f in ("pop_prev", "pop_next") if getattr(d.deps, f)]
        waits = [f"{_TOKEN[(e, f)]} ({f})" for f in flags
                 if len(pop_starts[_TOKEN[(e, f)]]) >= len(pushes[_TOKEN[(e, f)]])]
        lines.append(f"instruction {pc} ({d.name}, {e} engine) waits for token {' and '.join(waits)}")
    if disp_pc < n:
        d = instrs[disp_pc]
        what = "all engines to drain" if d.name in ("FENCE", "END") else f"a free slot in the {d.engine} queue"
        lines.append(f"dispatcher at instruction {disp_pc} ({d.name}) waits for {what}")
    return "deadlock: " + "; ".join(lines)


def _post_float_consts(bias, mult, ts, zp: int) -> tuple:
    """POST in float64 (as golden.ops' conv requantisation): (c, e, amax_ok) with
    y = acc * c + e, c = M * 2**-ts, e = bias * c + 0.5 + zp + 128.  While max |acc|
    < amax_ok: |A| = |acc + bias| < 2**31 (no wrap) and |A|*M + 2**(ts-1) + 256 *
    2**ts <= 2**52 per channel, so every step is exact (values are integers below
    2**53 times 2**-ts), floor(y) = MBQM(A) before its int32 saturation + zp + 128,
    and clamping y to [clamp_min + 128, clamp_max + 128] (inside the int32 range, so
    the saturation changes nothing) then truncating to uint8 and flipping the top
    bit gives the int8 result.  amax_ok = -inf disables the path (zp outside int8)."""
    if not -128 <= zp <= 127:
        return None, None, -np.inf
    b = bias.astype(np.float64)
    tsf = ts.astype(np.float64)
    c = mult * np.exp2(-tsf)
    e = b * c + (0.5 + zp + 128)
    limit = 2.0**52 - np.exp2(tsf - 1) - 256 * np.exp2(tsf)
    babs = float(np.abs(b).max(initial=0.0))
    with np.errstate(divide="ignore"):
        amax_ok = min(2.0**31, float(np.min(limit / mult, initial=np.inf))) - babs
    return c, e, amax_ok


_row_max = np.maximum.reduce  # ndarray.max without its Python wrapper (~50,000 calls per ResNet-50)


class _Races:
    """Per SRAM word: last writer (engine, seq) and each engine's last reader
    seq; vector clocks carried by tokens and fences order instructions.

    The last writer is kept as one seq array per engine, lw[mem][e][word] = seq
    of the word's last write if engine e made it, else 0 (seqs start at 1, so 0
    = "not the last writer" / never written).  The original test on (engine w,
    seq s) of the last write, w >= 0 and w != e and s > vc[w], is then exactly
    "some engine e2 != e has lw[e2][word] > vc[e2]" (vc >= 0, so the zeros never
    fire).  Engine e's own row never fires either (its earlier seqs are below
    vc[e], the current seq), so one max-reduction over all rows tests the whole
    word range; the report (first such word in access order) is unchanged.
    Vector clocks are lists of ints (cheaper than tiny arrays here)."""

    def __init__(self, depths: Mapping[str, int]):
        n = len(ENGINES)
        self.lw = {m: np.zeros((n, d), np.int64) for m, d in depths.items()}
        self.rd_seq = {m: np.zeros((n, d), np.int64) for m, d in depths.items()}
        self.pc_of: dict[tuple[int, int], int] = {}

    def _race(self, pc, name, other_eng, other_seq, mem, addr, kind, instrs) -> DataRace:
        opc = self.pc_of[(int(other_eng), int(other_seq))]
        return DataRace(f"data race on {mem} word {addr}: instruction {pc} ({name}, {ENGINES[_e(name)]}) {kind} "
                        f"instruction {opc} ({instrs[opc].name}, {ENGINES[int(other_eng)]}) without a token "
                        f"or FENCE ordering them")

    @staticmethod
    def _first(table, idx, vc, others):
        """(engine, seq, position) of the first word of idx with table[e2][word] > vc[e2]."""
        rows = np.stack([table[e2][idx] for e2 in others])
        bad = rows > np.asarray(vc)[others][:, None]
        i = int(np.argmax(bad.any(axis=0)))
        j = int(np.argmax(bad[:, i]))
        return others[j], rows[j, i], i

    def access(self, pc, d, e, seq, vc, accesses, instrs):
        """accesses: (mem, write, idx) with idx a slice or an index array (words in
        SramAccess.words() order)."""
        self.pc_of[(e, seq)] = pc
        others = [e2 for e2 in range(len(ENGINES)) if e2 != e]
        for mem, write, idx in accesses:
            lw = self.lw[mem]
            if any(map(gt, _row_max(lw[:, idx], axis=1, initial=0).tolist(), vc)):
                w, s_, i = self._first(lw, idx, vc, others)
                kind = "writes after" if write else "reads the write of"
                raise self._race(pc, d.name, w, s_, mem, int(np.arange(self.lw[mem].shape[1])[idx][i]), kind,
                                 instrs)
            if write:
                rd = self.rd_seq[mem]
                last_read = _row_max(rd[:, idx], axis=1, initial=0).tolist()
                for e2 in others:
                    if last_read[e2] > vc[e2]:
                        _, r, i = self._first(rd, idx, vc, [e2])
                        raise self._race(pc, d.name, e2, r, mem, int(np.arange(rd.shape[1])[idx][i]),
                                         "overwrites the read of", instrs)
        for mem, write, idx in accesses:
            if write:
                lw = self.lw[mem]
                lw[:, idx] = 0
                lw[e, idx] = seq
            else:
                self.rd_seq[mem][e, idx] = seq


def _race_index(accesses) -> list:
    """(mem, write, idx) per access: a slice when the words are the contiguous
    range lo..hi in increasing order (basic indexing, no gather), else the array."""
    out = []
    for a in accesses:
        w = a.words()
        if w.size == a.hi - a.lo + 1 and (w.size < 2 or bool(np.all(np.diff(w) == 1))):
            out.append((a.mem, a.write, slice(a.lo, a.hi + 1)))
        else:
            out.append((a.mem, a.write, w))
    return out


def _e(name: str) -> int:
    return _ENGINE_RANK[ISA.by_name[name].engine]


_ADD_FIELDS = ("a_zp", "b_zp", "a_mult", "a_shift", "b_mult", "b_shift", "out_mult", "out_shift", "out_zp",
               "clamp_min", "clamp_max")

_GATHER_FIELDS = ("in_addr", "in_h", "in_w", "in_cb", "cb_start", "cb_count", "k_h", "k_w",
                  "stride_h", "stride_w", "pad_t", "pad_l", "out_h", "out_w", "in_zp")

# Longest reduction one float32 GEMM may run: raw int8 x int8 products are
# integers of magnitude <= 128 * 128 = 2**14, so any partial sum of <= 1024 of them
# is an integer of magnitude <= 2**24, which float32 represents exactly.
_F32_K = 1024

# Reductions this short cannot leave int32: K * 2**14 < 2**31.
_NO_WRAP_K = (1 << 17) - 1

# At most this many GEMMs share one batched matmul (N = COLS * members).
_GROUP_MAX = 64


def _gather_key(f) -> tuple:
    """GEMMs with equal keys gather the same im2col matrix from the same ACT words."""
    return tuple(f[k] for k in _GATHER_FIELDS)


def _gather_plan(f) -> tuple:
    """Static part of a GEMM's im2col gather (fields only): (lo, hi, taps) with, per
    kernel tap, (h0, h1, w0, w1, b0, b1, padded): the valid output pixels form the
    rectangle [h0, h1) x [w0, w1) (h0 None: none), whose input pixels are evenly
    spaced (stride), so the ACT words they read are a strided view from word b0 (b1:
    the last pixel's first word) -- the same words as an index-array gather; padded:
    some pixels of the tap are padding.  [lo, hi] bounds the ACT words read (-1, -2:
    none, so never invalidated)."""
    oh, ow = np.arange(f["out_h"]), np.arange(f["out_w"])
    ncb = f["cb_count"]
    lo, hi, taps = None, None, []
    for kh in range(f["k_h"]):
        ih = oh * f["stride_h"] + kh - f["pad_t"]
        for kw in range(f["k_w"]):
            iw = ow * f["stride_w"] + kw - f["pad_l"]
            vh, vw = (ih >= 0) & (ih < f["in_h"]), (iw >= 0) & (iw < f["in_w"])
            if not (vh.any() and vw.any()):
                taps.append((None,) * 6 + (True,))
                continue
            h0, h1 = int(np.argmax(vh)), len(vh) - int(np.argmax(vh[::-1]))
            w0, w1 = int(np.argmax(vw)), len(vw) - int(np.argmax(vw[::-1]))
            b0 = f["in_addr"] + (int(ih[h0]) * f["in_w"] + int(iw[w0])) * f["in_cb"] + f["cb_start"]
            b1 = f["in_addr"] + (int(ih[h1 - 1]) * f["in_w"] + int(iw[w1 - 1])) * f["in_cb"] + f["cb_start"]
            lo = b0 if lo is None else min(lo, b0)
            hi = b1 + ncb - 1 if hi is None else max(hi, b1 + ncb - 1)
            taps.append((h0, h1, w0, w1, b0, b1, h1 - h0 < len(vh) or w1 - w0 < len(vw)))
    if lo is None:
        lo, hi = -1, -2
    return lo, hi, taps


def _gemm_groups(instrs, order, rows: int, cols: int) -> dict[int, list]:
    """Static batching plan: leader GEMM pc -> [(pc, fields)] of the later GEMMs (in
    execution order) with the same gather key and no WGT write to their weight slab
    nor ACT write to the gathered tile in between.  Only a performance plan: the
    machine re-checks every product against the actual SRAM writes (see _Machine)."""
    groups: dict[int, list] = {}
    open_: dict[tuple, list] = {}  # key -> [leader, act_lo, act_hi, members, wgt writes since]
    for ent in order:
        d = instrs[ent.pc]
        if d.name == "GEMM":
            f = d.fields
            key = _gather_key(f)
            k = f["k_h"] * f["k_w"] * f["cb_count"] * rows
            w0, w1 = f["wgt_addr"], f["wgt_addr"] + k - 1
            g = open_.get(key)
            if g is not None and len(g[3]) < _GROUP_MAX - 1 and not any(a <= w1 and w0 <= b for a, b in g[4]):
                g[3].append((ent.pc, f))
                continue
            acc = [a for a in sram_accesses(d, rows, cols) if a.mem == "ACT"]
            lo, hi = (acc[0].lo, acc[0].hi) if acc else (-1, -2)
            open_[key] = [ent.pc, lo, hi, [], []]
            groups[ent.pc] = open_[key][3]
            continue
        if d.name in ("GEMM", "STORE", "FENCE", "END", "NOP"):
            continue
        for a in sram_accesses(d, rows, cols):
            if not a.write:
                continue
            if a.mem == "ACT":
                for key in [key for key, g in open_.items() if g[1] <= a.hi and a.lo <= g[2]]:
                    del open_[key]
            elif a.mem == "WGT":
                for g in open_.values():
                    g[4].append((a.lo, a.hi))
    return {pc: m for pc, m in groups.items() if m}


class _Machine:
    """SRAMs and the DMA window; executes one decoded instruction at a time."""

    def __init__(self, rows, cols, depths, window: np.ndarray, gemm_groups: Mapping[int, list] | None = None,
                 dma_plans: dict | None = None, post_plans: dict | None = None, add_tables: dict | None = None,
                 gather_plans: dict | None = None):
        self.rows, self.cols = rows, cols
        # pc -> the static part of a LOAD/STORE's transfer (see _dma_views); kept by
        # the caller across runs of the same program.
        self._dma = {} if dma_plans is None else dma_plans
        # POST's constants (bias, M, shift, M valid, total shift, rounding constant
        # with out_zp folded in) keyed by the bytes of the three PAR words and out_zp:
        # derived from those alone, so they can be kept across runs too.
        self._post_plan = {} if post_plans is None else post_plans
        # ADD's output tables (see _add) keyed by its parameter fields; kept likewise.
        self._add_tables = {} if add_tables is None else add_tables
        self._gather_plans = {} if gather_plans is None else gather_plans  # _gather_key -> _gather_plan
        self._ops: dict[str, object] = {}  # instruction name -> bound method
        # GEMM batching (speed only): gemm_groups[pc] lists the later GEMMs (in
        # execution order) that gather the same ACT tile as GEMM pc; its x @ W runs
        # once over all their weight slabs side by side (one wide matmul instead of
        # one N = COLS GEMM each) and the other members' columns wait in _prod,
        # pc -> (act_lo, act_hi, wgt_lo, wgt_hi, product).  Exactness: a waiting
        # product is a function of ACT words [act_lo, act_hi] and WGT words
        # [wgt_lo, wgt_hi] only, read when it was computed; every ACT write
        # (_act_written) and every WGT write (_load) drops the products that read
        # one of the written words, so a product still there when its GEMM
        # executes equals what that GEMM would compute from the SRAMs then.  ACC
        # is still written by each GEMM itself, in order, so POST, captures and
        # the race checker see the same ACC as before.
        self._groups = gemm_groups or {}
        self._prod: dict[int, tuple[int, int, int, int, np.ndarray]] = {}
        self.act = np.zeros((depths["ACT"], rows), np.int8)
        self.wgt = np.zeros((depths["WGT"], cols), np.int8)
        self.par = np.zeros((depths["PAR"], cols), np.int64)
        self.acc = np.zeros((depths["ACC"], cols), np.int64)
        self.win = window
        self.bytes_read = self.bytes_written = 0
        # GEMM input gathers (im2col of an ACT tile), reused by the GEMMs of every
        # output-channel block that reads the same tile: key -> (lo, hi, X).  An
        # entry is dropped as soon as any write touches ACT words [lo, hi], so a
        # hit always equals a fresh gather.  LRU, bounded in bytes.
        self._xcache: dict[tuple, tuple[int, int, np.ndarray]] = {}
        self._xcache_bytes = 0
        # Covers the ACT words read by every cached gather and waiting product (maybe
        # more): writes outside it invalidate nothing.  Empty while lo > hi.
        self._act_lo, self._act_hi = 0, -1

    _XCACHE_MAX_BYTES = 256 << 20

    def _act_written(self, lo: int, hi: int) -> None:
        """ACT words [lo, hi] changed: forget every gather and waiting GEMM
        product that read one of them."""
        if hi < self._act_lo or lo > self._act_hi:
            return
        for k in [k for k, (a, b, _) in self._xcache.items() if a <= hi and lo <= b]:
            self._xcache_bytes -= self._xcache.pop(k)[2].nbytes
        if self._prod:
            for k in [k for k, v in self._prod.items() if v[0] <= hi and lo <= v[1]]:
                del self._prod[k]
        self._act_lo, self._act_hi = 0, -1
        for a, b in [v[:2] for v in self._xcache.values()] + [v[:2] for v in self._prod.values()]:
            self._act_reads(a, b)

    def _act_reads(self, lo: int, hi: int) -> None:
        """A gather or waiting product now depends on ACT words [lo, hi]."""
        if lo > hi:
            return
        if self._act_lo > self._act_hi:
            self._act_lo, self._act_hi = lo, hi
        else:
            self._act_lo, self._act_hi = min(self._act_lo, lo), max(self._act_hi, hi)

    def _wgt_written(self, lo: int, hi: int) -> None:
        """WGT words [lo, hi] changed: forget every waiting product that read one."""
        if self._prod:
            for k in [k for k, v in self._prod.items() if v[2] <= hi and lo <= v[3]]:
                del self._prod[k]

    def mem(self, name: str) -> np.ndarray:
        return {"ACT": self.act, "WGT": self.wgt, "PAR": self.par, "ACC": self.acc}[name]

    def _dma_index(self, pc, d) -> tuple[np.ndarray, np.ndarray]:
        """(byte index [y, row_bytes], SRAM word index [y, x]) after the window check."""
        r = dma_rows(d, self.rows, self.cols)
        if r.end > self.win.size:  # whole 2-D extent checked before the first beat
            starts = r.offset + r.stride * np.arange(r.count, dtype=np.int64)
            y = int(np.argmax(starts + r.row_bytes > self.win.size))
            raise DeviceError(ErrorCode.DMA_WINDOW, pc, f"{d.name} row {y} leaves the {self.win.size}-byte window",
                              address=max(int(starts[y]), self.win.size))
        f = d.fields
        bidx = np.add.outer(r.offset + r.stride * np.arange(r.count, dtype=np.int64),
                            np.arange(r.row_bytes, dtype=np.int64))
        widx = np.add.outer(f["sram_addr"] + f["sram_stride"] * np.arange(r.count, dtype=np.int64),
                            np.arange(f["x_words"], dtype=np.int64))
        return bidx, widx

    def execute(self, pc: int, d: DecodedInstr) -> None:
        op = self._ops.get(d.name)
        if op is None:
            op = self._ops[d.name] = getattr(self, "_" + d.name.lower())
        op(pc, d, d.fields)

    def _dma_views(self, pc, d, mem: np.ndarray):
        """(DRAM rows [y, row_bytes], SRAM rows [y, x_words, word]) as strided views,
        or None when rows overlap (stride < row length) or a stride is negative:
        then the index-array path keeps the original (last-write-wins) semantics.
        For non-overlapping rows a view addresses exactly the elements of
        _dma_index's index arrays, in the same order."""
        plan = self._dma.get(pc)
        if plan is None:  # static: the fields and ROWS/COLS only
            f = d.fields
            r = dma_rows(d, self.rows, self.cols)
            n, xw, sa, ss = r.count, f["x_words"], f["sram_addr"], f["sram_stride"]
            ok = n >= 1 and not (n > 1 and (r.stride < r.row_bytes or ss < xw))
            plan = self._dma[pc] = (ok, r, xw, sa, ss, sa + ss * (n - 1) + xw)
        ok, r, xw, sa, ss, sram_end = plan
        if not ok or r.end > self.win.size:
            return None
        if sram_end > mem.shape[0]:
            return None  # (check_static rejects it; keep numpy's own error path)
        # Views built directly on the buffers (as_strided's generic path costs ~4 us).
        win = np.ndarray((r.count, r.row_bytes), np.uint8, buffer=self.win, offset=r.offset, strides=(r.stride, 1))
        ws = mem.strides[0]
        sram = np.ndarray((r.count, xw, mem.shape[1]), mem.dtype, buffer=mem, offset=sa * ws,
                          strides=(ws * ss, ws, mem.strides[1]))
        return win, sram

    def _load(self, pc, d, f):
        mem_name = ISA.memory_by_id(f["mem"]).name
        mem = self.mem(mem_name)
        views = self._dma_views(pc, d, mem) if f["y_count"] else None
        if views is not None:
            win, sram = views
            self.bytes_read += win.size
            n, xw = sram.shape[:2]
            if mem_name == "PAR":
                sram[...] = np.ascontiguousarray(win).view("<i4").reshape(n, xw, self.cols)
            else:
                sram[...] = win.view(np.int8).reshape(n, xw, mem.shape[1])
            lo, hi = f["sram_addr"], f["sram_addr"] + f["sram_stride"] * (n - 1) + xw - 1
        else:
            bidx, widx = self._dma_index(pc, d)
            data = self.win[bidx.ravel()]
            self.bytes_read += data.size
            if mem_name == "PAR":
                words = data.view("<i4").reshape(-1, self.cols).astype(np.int64)
            else:
                words = data.view(np.int8).reshape(-1, mem.shape[1])
            mem[widx.ravel()] = words
            if not widx.size:
                return
            lo, hi = int(widx.min()), int(widx.max())
        if f["x_words"] == 0:
            return
        if mem_name == "ACT":
            self._act_written(lo, hi)
        elif mem_name == "WGT":
            self._wgt_written(lo, hi)

    def _store(self, pc, d, f):
        views = self._dma_views(pc, d, self.act) if f["y_count"] else None
        if views is not None:
            win, sram = views
            win[...] = sram.view(np.uint8).reshape(win.shape)
            self.bytes_written += win.size
            return
        bidx, widx = self._dma_index(pc, d)
        self.win[bidx.ravel()] = self.act[widx.ravel()].view(np.uint8).ravel()
        self.bytes_written += bidx.size

    def _gemm_input(self, f) -> tuple[int, int, np.ndarray]:
        """im2col of the GEMM's ACT tile: (lo, hi, X) with X (out_h*out_w,
        k_h*k_w*cb_count*ROWS) float32, columns in weight order (tap, cb, r);
        padded pixels carry in_zp; [lo, hi] bounds the ACT words read.
        float32 holds every int8 exactly (and halves the copies and cache)."""
        key = _gather_key(f)
        hit = self._xcache.pop(key, None)
        if hit is not None:
            self._xcache[key] = hit  # most recently used last
            return hit
        plan = self._gather_plans.get(key)
        if plan is None:
            plan = self._gather_plans[key] = _gather_plan(f)
        lo, hi, taps = plan
        rows, ncb, zp = self.rows, f["cb_count"], f["in_zp"]
        x = np.empty((f["out_h"], f["out_w"], len(taps), ncb, rows), np.float32)
        ws = self.act.strides[0]
        for t, (h0, h1, w0, w1, b0, b1, padded) in enumerate(taps):
            xt = x[:, :, t]
            if h0 is None:  # every pixel of this tap is padding
                xt[...] = zp
                continue
            if b1 + ncb > self.act.shape[0]:  # past the SRAM (check_static stops it first)
                self.act[np.arange(b1, b1 + ncb)]  # raises IndexError like the index-array gather
            words = np.ndarray((h1 - h0, w1 - w0, ncb, rows), np.int8, buffer=self.act, offset=b0 * ws,
                               strides=(ws * f["stride_h"] * f["in_w"] * f["in_cb"],
                                        ws * f["stride_w"] * f["in_cb"], ws, self.act.strides[1]))
            if padded:  # the padded pixels: the border around the valid rectangle
                xt[:h0] = zp
                xt[h1:] = zp
                xt[h0:h1, :w0] = zp
                xt[h0:h1, w1:] = zp
            xt[h0:h1, w0:w1] = words
        x = x.reshape(f["out_h"] * f["out_w"], len(taps) * ncb * rows)
        self._xcache[key] = hit = (lo, hi, x)
        self._act_reads(lo, hi)
        self._xcache_bytes += x.nbytes
        while self._xcache_bytes > self._XCACHE_MAX_BYTES and len(self._xcache) > 1:
            self._xcache_bytes -= self._xcache.pop(next(iter(self._xcache)))[2].nbytes
        return hit

    def _gemm_product(self, pc, f) -> np.ndarray:
        """x @ W of GEMM pc as exact integers (float32 or float64 array)."""
        hit = self._prod.pop(pc, None)
        if hit is not None:
            return hit[4]
        lo, hi, x = self._gemm_input(f)
        k = x.shape[1]
        group = [(pc, f)] + [(q, g) for q, g in self._groups.get(pc, ()) if q not in self._prod]
        # Weight rows of tap t, block cb sit at wgt_addr + (t*cb_count + cb)*ROWS: the
        # whole reduction is one contiguous slab, so one GEMM replaces the per-tap
        # sum; the slabs of the group's GEMMs go side by side (N = COLS * members).
        w = np.empty((k, self.cols * len(group)), np.float32)
        for i, (_, g) in enumerate(group):
            w[:, i * self.cols:(i + 1) * self.cols] = self.wgt[g["wgt_addr"]: g["wgt_addr"] + k]
        # Exact: |x|, |w| <= 128, so every product is an integer of magnitude <= 2**14
        # and a sum of at most _F32_K of them is an integer <= 2**24: float32
        # represents every partial sum exactly, in any order or blocking BLAS uses
        # (FMA included), so each chunk's result is exact; chunks are added in float64
        # (integers < 2**53 for K < 2**39).
        if k <= _F32_K:
            out = x @ w
        else:
            out = np.zeros((x.shape[0], w.shape[1]), np.float64)
            for c in range(0, k, _F32_K):
                out += x[:, c:c + _F32_K] @ w[c:c + _F32_K]
        for i, (q, g) in enumerate(group[1:], 1):
            self._prod[q] = (lo, hi, g["wgt_addr"], g["wgt_addr"] + k - 1,
                             out[:, i * self.cols:(i + 1) * self.cols])
        self._act_reads(lo, hi)
        return out[:, :self.cols]

    def _gemm(self, pc, d, f):
        p = self._gemm_product(pc, f)
        sl = slice(f["acc_addr"], f["acc_addr"] + p.shape[0])
        if not f["accumulate"] and p.shape[0] and f["k_h"] * f["k_w"] * f["cb_count"] * self.rows <= _NO_WRAP_K:
            # |sum| <= K * 2**14 < 2**31: the wrap is the identity, and the float ->
            # int64 assignment cast of these exact integers is exact.
            self.acc[sl] = p
            return
        out = p.astype(np.int64)
        if f["accumulate"]:
            out += self.acc[sl]
        # int64 -> int32 keeps the low 32 bits: the two's-complement wrap of
        # wrap_int32 (numpy's integer casts truncate; tests/golden check ops' _wrap32,
        # which relies on the same cast, against wrap_int32).
        self.acc[sl] = out.astype(np.int32)

    def _requant(self, pc, d, x, mult, shift):
        try:
            return mbqm(x, mult, shift)
        except GoldenError as e:
            raise DeviceError(ErrorCode.BAD_FIELD, pc, f"{d.name}: {e}") from None

    def _post(self, pc, d, f):
        if self.rows != self.cols:
            raise NotImplementedError("POST on a non-square array: isa.toml does not say how COLS outputs fill "
                                      "a ROWS-byte ACT word")
        pa, zp = f["par_addr"], f["out_zp"]
        words = self.par[pa: pa + 3]
        key = (words.tobytes(), zp)
        plan = self._post_plan.get(key)
        if plan is None:
            bias, mult, shift = words
            if shift.min() < -31 or shift.max() > 30:
                raise DeviceError(ErrorCode.BAD_FIELD, pc, f"POST: PAR word {pa + 2} has a shift "
                                                           "outside [-31, 30]")
            # PAR words are int32, so M <= INT32_MAX always holds.
            ok = bool(mult.min() >= Q31_MIN or ((mult == 0) | ((mult >= Q31_MIN) & (mult <= INT32_MAX))).all())
            ts = 31 - shift
            rnd = np.int64(1) << (ts - 1)
            # out_zp folded into the rounding constant: (v + zp * 2**ts) >> ts ==
            # (v >> ts) + zp; with |v| < 2**62 + 2**52 it cannot overflow int64 while
            # ts <= 53 and |zp| <= 128.
            rnd_zp = rnd + zp * (rnd << 1) if -128 <= zp <= 127 and ts.max() <= 53 else None
            # Copies: the plan must not change with PAR.
            plan = (bias.copy(), mult.copy(), shift.copy(), ok, ts, rnd_zp, _post_float_consts(bias, mult, ts, zp))
            if len(self._post_plan) >= _POST_PLANS_MAX:
                self._post_plan.clear()
            self._post_plan[key] = plan
        bias, mult, shift, ok, ts, rnd_zp, (c, e, amax_ok) = plan
        # The float64 path (_post_float_consts) while max |acc| allows it, else the
        # same arithmetic as mbqm (requantize_raw) inlined, without its per-call
        # dtype/plan overhead (~5,000 POSTs per ResNet-50): same multiplier check
        # and error, then r + zp = (x*M + 2**(ts-1) + zp * 2**ts) >> ts in int64
        # (|x*M| < 2**62).  Its int32 saturation is dropped: the clamp below to
        # [clamp_min, clamp_max] lies far inside the int32 range, so saturating r
        # before adding zp and clamping changes nothing.  Bounds outside int8 (bad
        # fields) and very large total shifts take the general path.
        if not ok:
            raise DeviceError(ErrorCode.BAD_FIELD, pc, f"{d.name}: multiplier must be 0 or in [2**30, 2**31 - 1]")
        cmin, cmax = f["clamp_min"], f["clamp_max"]
        acc = self.acc[f["acc_addr"]: f["acc_addr"] + f["count"]]
        if -128 <= cmin <= cmax <= 127 and acc.size and max(int(acc.max()), -int(acc.min())) < amax_ok:
            y = acc.astype(np.float64)  # see _post_float_consts
            y *= c
            y += e
            np.clip(y, cmin + 128, cmax + 128, out=y)
            out = y.astype(np.uint8)
            out ^= 0x80
            out = out.view(np.int8)
        elif rnd_zp is not None and -128 <= cmin <= cmax <= 127:
            out = np.multiply((acc + bias).astype(np.int32), mult)  # wrap_int32(acc + bias) * M, int64
            out += rnd_zp
            out >>= ts
            np.minimum(out, cmax, out=out)
            np.maximum(out, cmin, out=out)  # within int8: the stores below cast exactly
        else:
            v = self._requant(pc, d, wrap_int32(acc + bias), mult, shift) + zp
            out = np.clip(v, cmin, cmax).astype(np.int8)
        n, st, a0 = f["count"], f["out_stride"], f["out_addr"]
        if st > 0:
            self.act[a0: a0 + st * (n - 1) + 1: st] = out  # the same words as the index array
        else:
            self.act[a0 + st * np.arange(n)] = out
        if n:
            self._act_written(min(a0, a0 + st * (n - 1)), max(a0, a0 + st * (n - 1)))

    def _add(self, pc, d, f):
        # The output is a function of the two input bytes only: look it up in a table
        # of the formula evaluated (by the same code, raising the same errors) for
        # all 256 x 256 pairs, kept per parameter set.
        key = tuple(f[k] for k in _ADD_FIELDS)
        table = self._add_tables.get(key)
        if table is None:
            v = np.arange(256, dtype=np.uint8).view(np.int8)  # byte -> int8 value
            table = self._add_values(pc, d, f, np.repeat(v, 256), np.tile(v, 256))
            if len(self._add_tables) >= _ADD_TABLES_MAX:
                self._add_tables.clear()
            self._add_tables[key] = table
        n = f["count"]
        a, b = self.act[f["a_addr"]: f["a_addr"] + n], self.act[f["b_addr"]: f["b_addr"] + n]
        idx = np.left_shift(a.view(np.uint8), 8, dtype=np.uint16)  # uint16 indices: ~25% faster than intp
        idx |= b.view(np.uint8)
        self.act[f["out_addr"]: f["out_addr"] + n] = np.take(table, idx)
        self._act_written(f["out_addr"], f["out_addr"] + n - 1)

    def _add_values(self, pc, d, f, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """ADD of int8 arrays a and b, as int8."""
        ls = int(ISA.constants["add_left_shift"])
        sa = self._requant(pc, d, (a.astype(np.int64) - f["a_zp"]) << ls, f["a_mult"], f["a_shift"])
        sb = self._requant(pc, d, (b.astype(np.int64) - f["b_zp"]) << ls, f["b_mult"], f["b_shift"])
        # The sum wraps like a 32-bit adder (only reachable with out-of-contract multipliers).
        v = self._requant(pc, d, wrap_int32(sa + sb), f["out_mult"], f["out_shift"]) + f["out_zp"]
        return np.clip(v, f["clamp_min"], f["clamp_max"]).astype(np.int8)

    def _pool(self, pc, d, f):
        oh, ow, cb = np.arange(f["out_h"]), np.arange(f["out_w"]), np.arange(f["in_cb"])
        shape = (f["out_h"], f["out_w"], f["in_cb"], self.rows)
        best = np.full(shape, -129, np.int64)
        total = np.zeros(shape, np.int64)
        n_valid = np.zeros((f["out_h"], f["out_w"]), np.int64)
        for kh in range(f["k_h"]):
            ih = oh * f["stride_h"] + kh - f["pad_t"]
            for kw in range(f["k_w"]):
                iw = ow * f["stride_w"] + kw - f["pad_l"]
                valid = ((ih >= 0) & (ih < f["in_h"]))[:, None] & ((iw >= 0) & (iw < f["in_w"]))[None, :]
                base = np.where(valid, f["in_addr"] + (ih[:, None] * f["in_w"] + iw[None, :]) * f["in_cb"], 0)
                x = self.act[base[..., None] + cb].astype(np.int64)
                v4 = valid[..., None, None]
                best = np.where(v4, np.maximum(best, x), best)
                total += np.where(v4, x - f["in_zp"], 0)
                n_valid += valid
        if f["mode"] == 0:
            out = np.where(n_valid[..., None, None] > 0, best, f["in_zp"])
        else:
            n = np.full_like(n_valid, f["k_h"] * f["k_w"]) if f["count_include_pad"] else n_valid
            n = n[..., None, None]
            t = self._requant(pc, d, total, f["mult"], f["shift"])
            # Half away from zero; a window with no valid element averages to 0.
            q = np.where(n > 0, np.sign(t) * ((np.abs(t) + n // 2) // np.maximum(n, 1)), 0)
            out = np.clip(q + f["out_zp"], -128, 127)
        start = f["out_addr"]
        self.act[start: start + out.shape[0] * out.shape[1] * out.shape[2]] = out.reshape(-1, self.rows)
        self._act_written(start, start + out.shape[0] * out.shape[1] * out.shape[2] - 1)


def _tensor_bytes(win: np.ndarray, t) -> np.ndarray:
    return win[t.dram_offset: t.dram_offset + t.size_bytes]


def run(program: Program, inputs: Mapping[str, np.ndarray], *, window=None, capture: str | None = None,
        check_races: bool = True, depths: Mapping[str, int] | None = None) -> IssResult:
    """Execute `program`; inputs maps input tensor names to int8 NHWC arrays.

    window: the device memory image (bytearray or uint8 array, modified in place);
    default a zeroed one of dram_size bytes. The constant blob and the given
    inputs are written into it first (inputs not given must already be there when
    a window is passed). depths: hardware SRAM depths (default isa.toml's).
    capture: None, "tensors" (every tensor after the run) or "instructions" (each
    instruction's SRAM/DRAM writes, in execution order).
    """
    rows, cols = program.rows, program.cols
    hw = {m: spec.default_depth for m, spec in ISA.memories.items()}
    hw.update(depths or {})
    for m, need in program.depths.items():
        if need > hw[m]:
            raise ValueError(f"program needs {m} depth {need}, the hardware has {hw[m]}")
    if capture not in (None, "tensors", "instructions"):
        raise ValueError(f"capture must be None, 'tensors' or 'instructions', not {capture!r}")

    if window is None:
        win = np.zeros(program.dram_size, np.uint8)
    elif isinstance(window, np.ndarray):
        win = window.reshape(-1).view(np.uint8)
    else:
        win = np.frombuffer(window, dtype=np.uint8)
    if win.size < program.dram_size:
        raise ValueError(f"window of {win.size} bytes is smaller than the program's dram_size {program.dram_size}")
    win[program.const_dram_offset: program.const_dram_offset + len(program.const)] = np.frombuffer(
        program.const, np.uint8)
    for t in program.tensors:
        if t.role != TensorRole.INPUT:
            continue
        if t.name not in inputs:
            if window is None:
                raise ValueError(f"missing input tensor {t.name!r}")
            continue
        x = np.asarray(inputs[t.name])
        if x.dtype != np.int8 or x.shape != tuple(t.shape):
            raise ValueError(f"input {t.name}: expected int8 {tuple(t.shape)}, got {x.dtype} {x.shape}")
        _tensor_bytes(win, t)[:] = pack_activation(x, rows)
    unknown = set(inputs) - {t.name for t in program.tensors if t.role == TensorRole.INPUT}
    if unknown:
        raise ValueError(f"unknown input tensor(s): {', '.join(sorted(unknown))}")

    ex = execute(program.instructions, win, rows, cols, hw, check_races=check_races,
                 capture_instructions=capture == "instructions")
    entries, captured = ex.schedule, ex.captures
    outputs = {t.name: unpack_activation(_tensor_bytes(win, t), t.shape, rows)
               for t in program.tensors if t.role == TensorRole.OUTPUT}
    layer_cycles = {}
    for name, (lo, hi) in program.layers().items():
        span = entries[lo:hi]
        layer_cycles[name] = (max(x.end for x in span) - min(x.start for x in span)) if span else 0
    if capture == "tensors":
        captured = {t.name: unpack_activation(_tensor_bytes(win, t), t.shape, rows) for t in program.tensors}
    return IssResult(
        outputs=outputs, cycles=ex.cycles, engine_busy=ex.engine_busy, mac_active=ex.mac_active,
        schedule=entries, layer_cycles=layer_cycles, dma_bytes_read=ex.dma_bytes_read,
        dma_bytes_written=ex.dma_bytes_written, captures=captured, window=win,
    )


@dataclass
class _ProgramMemo:
    """Decoded instructions and schedule of one instruction stream (both depend
    only on its words and ROWS/COLS), and the SRAM depths under which every
    instruction already passed check_static.  Re-running a program (a benchmark,
    a batch of inputs) then skips decoding, scheduling and the static checks."""

    instrs: list
    sched: _Schedule
    order: list  # engine entries in execution order
    checked: set = field(default_factory=set)
    groups: dict | None = None  # _gemm_groups plan, built on first execution
    # pc -> the race checker's word indices (static per instruction; see _race_index)
    race_idx: dict = field(default_factory=dict)
    dma: dict = field(default_factory=dict)  # _Machine's LOAD/STORE plans
    post: dict = field(default_factory=dict)  # _Machine's POST plans
    add: dict = field(default_factory=dict)  # _Machine's ADD tables
    gather: dict = field(default_factory=dict)  # _Machine's GEMM gather plans
    stats: tuple | None = None  # (schedule in pc order, engine busy cycles, MAC cycles)


_PROGRAM_MEMO: dict[tuple, _ProgramMemo] = {}
_POST_PLANS_MAX = 1 << 16  # per program memo
_ADD_TABLES_MAX = 256  # 64 KiB each, per program memo
_PROGRAM_MEMO_SIZE = 8


@dataclass
class ExecResult:
    """What one execution of an instruction stream did. No tensors: a device
    model has only memory, and its caller knows what lives where."""

    cycles: int
    engine_busy: dict[str, int]
    mac_active: int
    schedule: list[ScheduleEntry]
    dma_bytes_read: int
    dma_bytes_written: int
    captures: list | None = None


def execute(instructions, window: np.ndarray, rows: int, cols: int, depths: Mapping[str, int] | None = None, *,
            check_races: bool = True, capture_instructions: bool = False) -> ExecResult:
    """Run raw 32-byte instruction words against `window` (uint8 array = the DMA
    window, modified in place). The entry point for device models, which have
    registers and memory but no Program. depths: hardware SRAM depths (default
    isa.toml's). Raises DeviceError (pc = instruction index), ProgramDeadlock or
    DataRace (only with check_races)."""
    hw = {m: spec.default_depth for m, spec in ISA.memories.items()}
    hw.update(depths or {})
    win = window.reshape(-1).view(np.uint8)
    captured = [] if capture_instructions else None
    raws = [bytes(raw) for raw in instructions]
    key = (b"".join(raws), rows, cols)
    memo = _PROGRAM_MEMO.get(key)
    if memo is None:
        instrs = []
        for pc, raw in enumerate(raws):
            try:
                instrs.append(decode(raw))
            except IsaError as e:
                raise DeviceError(e.code, pc, str(e)) from None
        # The schedule depends only on the instruction words and the array size.
        sched = _schedule(instrs, rows, cols)
        memo = _ProgramMemo(instrs, sched, sorted((e for e in sched.entries.values() if e.engine in ENGINES),
                                                  key=lambda e: (e.start, _ENGINE_RANK[e.engine], e.pc)))
        if sched.error is None:  # faulty programs are rare: not worth remembering
            if len(_PROGRAM_MEMO) >= _PROGRAM_MEMO_SIZE:
                _PROGRAM_MEMO.pop(next(iter(_PROGRAM_MEMO)))
            _PROGRAM_MEMO[key] = memo
    instrs, sched, order = memo.instrs, memo.sched, memo.order
    hw_key = tuple(sorted(hw.items()))
    statically_ok = hw_key in memo.checked

    if memo.groups is None:
        memo.groups = _gemm_groups(instrs, order, rows, cols)
    machine = _Machine(rows, cols, hw, win, memo.groups, memo.dma, memo.post, memo.add, memo.gather)
    races = _Races(hw) if check_races else None
    vcs: dict[int, list] = {}
    fence_vc: dict[int, list] = {}
    # Max of vcs over pcs [0, pre_upto) while every engine instruction there has
    # run: extended fence by fence instead of rescanning all of vcs at each FENCE.
    pre_vc, pre_upto = None, 0

    def fence_clock(f: int, vc: list) -> list:
        """Max of the clocks of the instructions before FENCE f, or vc if none."""
        nonlocal pre_vc, pre_upto
        if pre_upto <= f:
            m = pre_vc
            for q in range(pre_upto, f):
                v = vcs.get(q)
                if v is None:
                    if sched.entries[q].engine in ENGINES:
                        break  # not run yet (not seen with real schedules): scan all below
                    continue
                m = v if m is None else list(map(max, m, v))
            else:
                pre_vc, pre_upto = m, f
                return list(m if m is not None else vc)
        below = [v for q, v in vcs.items() if q < f]
        return [max(c) for c in zip(*below)] if below else list(vc)
    last_on = {e: None for e in ENGINES}
    seqs = dict.fromkeys(ENGINES, 0)
    if races is None and captured is None and statically_ok and sched.error is None:
        # The common case (a checked program, no race checker, no capture): only execute.
        for ent in order:
            machine.execute(ent.pc, instrs[ent.pc])
    else:
        for ent in order:
            if sched.error is not None and ent.start >= sched.error_time:
                break
            pc = ent.pc
            d = instrs[pc]
            if not statically_ok:
                try:
                    check_static(d, rows, cols, hw)
                except IsaError as e:
                    raise DeviceError(e.code, pc, str(e)) from None
            # The access lists only feed the race checker and the capture.
            need = captured is not None or (races is not None and pc not in memo.race_idx)
            accesses = sram_accesses(d, rows, cols) if need else None
            if races is not None:
                e_i = _ENGINE_RANK[ent.engine]
                seqs[ent.engine] += 1
                vc = [0] * len(ENGINES)
                if last_on[ent.engine] is not None:
                    vc = list(vcs[last_on[ent.engine]])
                for p in sched.producers.get(pc, []):
                    vc = list(map(max, vc, vcs[p]))
                f = sched.fence_before.get(pc, -1)
                if f >= 0:
                    if f not in fence_vc:
                        fence_vc[f] = fence_clock(f, vc)
                    vc = list(map(max, vc, fence_vc[f]))
                vc[e_i] = seqs[ent.engine]
                vcs[pc] = vc
                last_on[ent.engine] = pc
                ridx = memo.race_idx.get(pc)
                if ridx is None:
                    ridx = memo.race_idx[pc] = _race_index(accesses)
                races.access(pc, d, e_i, seqs[ent.engine], vc, ridx, instrs)
            machine.execute(pc, d)
            if captured is not None:
                captured.append(_capture(ent, d, machine, accesses))
    if sched.error is not None:
        raise sched.error
    memo.checked.add(hw_key)  # every instruction passed check_static with these depths
    if memo.stats is None:
        entries = [sched.entries[pc] for pc in range(len(instrs))]
        busy = {e: sum(x.end - x.start for x in entries if x.engine == e) for e in ENGINES}
        memo.stats = (entries, busy, sum(mac_cycles(d) for d in instrs))
    entries, busy, mac_active = memo.stats
    return ExecResult(cycles=sched.end_time, engine_busy=dict(busy), mac_active=mac_active,
                      schedule=list(entries), dma_bytes_read=machine.bytes_read,
                      dma_bytes_written=machine.bytes_written, captures=captured)



def _capture(ent: ScheduleEntry, d: DecodedInstr, m: _Machine, accesses) -> dict:
    writes = []
    for a in accesses:
        if a.write:
            idx = a.words()
            writes.append({"mem": a.mem, "words": idx, "data": m.mem(a.mem)[idx].copy()})
    if d.name == "STORE":
        r = dma_rows(d, m.rows, m.cols)
        bidx = np.add.outer(r.offset + r.stride * np.arange(r.count), np.arange(r.row_bytes)).ravel()
        writes.append({"mem": "DRAM", "words": bidx, "data": m.win[bidx].copy()})
    return {"pc": ent.pc, "name": d.name, "engine": ent.engine, "start": ent.start, "end": ent.end, "writes": writes}

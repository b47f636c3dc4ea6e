"""Scoreboard: runs each program on the golden ISS over the same window image
and compares what the RTL left in device memory bit-exactly - the output
tensors, and with `capture` every tensor the program stores (intermediates)
and the rest of the window (stray writes). A mismatch is localised through the
ISS's per-instruction capture: the STORE that wrote the first differing byte,
the compute instruction that produced that ACT word, the layer (program meta
layer table) and tile, the tensor and element, the RTL and golden values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyuvm import uvm_subscriber

from presil.golden import iss
from presil.golden.device_errors import DataRace, DeviceError, ErrorCode, ProgramDeadlock
from presil.golden.footprint import dma_rows
from presil.golden.isa import ISA, decode
from presil.golden.layout import padded_channels
from presil.golden.program import TensorRole
from presil.tb.uvm.items import ProgramItem

STATUS_DONE, STATUS_ERROR = 2, 4


@dataclass
class Verdict:
    name: str
    passed: bool
    message: str = ""
    rtl_cycles: int = 0
    golden_cycles: int = 0
    rtl_mac: int = 0
    golden_mac: int = 0
    error: str | None = None           # expected device error (name), if any
    meta: dict = field(default_factory=dict)


def _layer_of(program, pc: int) -> str:
    for name, (lo, hi) in program.layers().items():
        if lo <= pc < hi:
            return name
    return "(no layer)"


def _element(t, i: int, rows: int) -> tuple[tuple[int, ...], bool]:
    """Byte i of tensor t (padded NHWC) -> (n, h, w, c), and whether c is padding."""
    n, h, w, c = t.shape
    cp = padded_channels(c, rows)
    pix, ch = divmod(i, cp)
    nn, rest = divmod(pix, h * w)
    hh, ww = divmod(rest, w)
    return (nn, hh, ww, ch), ch >= c


class Scoreboard(uvm_subscriber):
    def build_phase(self):
        self.verdicts: list[Verdict] = []

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.passed]

    def write(self, item: ProgramItem):
        v = self.check(item)
        self.verdicts.append(v)
        (self.logger.info if v.passed else self.logger.error)(
            f"{v.name}: {'match' if v.passed else 'MISMATCH ' + v.message} "
            f"(RTL {v.rtl_cycles} cycles, model {v.golden_cycles})")

    # -- golden ---------------------------------------------------------------
    def golden(self, item: ProgramItem):
        """(IssResult | None, DeviceError | None, window after the golden run)."""
        win = item.image()
        try:
            res = iss.run(item.program, {}, window=win, capture="instructions" if item.capture else None)
        except DeviceError as e:
            return None, e, win
        return res, None, win

    def check(self, item: ProgramItem) -> Verdict:
        p, o = item.program, item.observed
        v = Verdict(item.get_name(), False, rtl_cycles=o.perf.get("BUSY_CYCLES", 0),
                    rtl_mac=o.perf.get("MAC_ACTIVE_CYCLES", 0), meta=dict(item.meta))
        problems = []
        if o.violations:
            problems.append(f"{o.violations} AXI4 burst-rule violations on the memory interface")
        if item.expect_error:           # an error the ISS does not model: the code only
            v.error = item.expect_error
            item.golden = (None, None)
            got = ErrorCode(o.err_code).name if o.err_code in ErrorCode._value2member_map_ else str(o.err_code)
            if not o.status & STATUS_ERROR or got != item.expect_error:
                problems.append(f"expected error {item.expect_error}, RTL STATUS 0x{o.status:x} ERR_CODE {got}")
            v.passed, v.message = not problems, "; ".join(problems)
            return v
        try:
            res, err, gwin = self.golden(item)
        except (DataRace, ProgramDeadlock) as e:
            v.message = f"invalid program (golden ISS): {e}"
            return v
        item.golden = (res, err)
        if o.timed_out:
            problems.append("no interrupt before the timeout")
        if err is not None:
            v.error = ErrorCode(err.code).name
            if not o.status & STATUS_ERROR:
                problems.append(f"the ISS raises {v.error} at pc {err.pc}, the RTL reports no error "
                                f"(STATUS 0x{o.status:x})")
            elif (o.err_code, o.err_pc) != (int(err.code), err.pc):
                problems.append(f"error {ErrorCode(o.err_code).name if o.err_code in ErrorCode._value2member_map_ else o.err_code}"
                                f" at pc {o.err_pc}, golden {v.error} at pc {err.pc}")
            v.passed, v.message = not problems, "; ".join(problems)
            return v
        v.golden_cycles, v.golden_mac = res.cycles, res.mac_active
        if o.status & STATUS_ERROR:
            problems.append(f"RTL error {o.err_code} at pc {o.err_pc} (addr 0x{o.err_addr:x}), golden none")
        elif not o.status & STATUS_DONE:
            problems.append(f"STATUS 0x{o.status:x}: not DONE")
        perf_expect = {"DMA_RD_BYTES": res.dma_bytes_read, "DMA_WR_BYTES": res.dma_bytes_written,
                       "INSTR_RETIRED": len(p.instructions)}
        for k, want in perf_expect.items():
            if o.perf.get(k) != want:
                problems.append(f"PERF_{k} = {o.perf.get(k)}, golden {want}")
        mism = self.compare(item, o.window, gwin, res)
        if mism:
            problems.insert(0, mism)
        v.passed, v.message = not problems, "; ".join(problems)
        return v

    # -- comparison -------------------------------------------------------------
    def compare(self, item: ProgramItem, rtl: np.ndarray, gold: np.ndarray, res) -> str | None:
        p = item.program
        tensors = [t for t in p.tensors if t.role == TensorRole.OUTPUT or
                   (item.capture and t.role == TensorRole.INTERMEDIATE)]
        # Outputs before intermediates would hide the cause: compare in window order.
        for t in sorted(tensors, key=lambda t: t.dram_offset):
            a = rtl[t.dram_offset: t.dram_offset + t.size_bytes]
            b = gold[t.dram_offset: t.dram_offset + t.size_bytes]
            if not np.array_equal(a, b):
                i = int(np.flatnonzero(a != b)[0])
                nd = int(np.count_nonzero(a != b))
                idx, pad = _element(t, i, p.rows)
                where = self.locate(item, res, t.dram_offset + i)
                return (f"tensor {t.name!r} ({TensorRole(t.role).name.lower()}) differs in {nd} of {t.size_bytes} "
                        f"bytes; first at element {idx}{' (channel padding)' if pad else ''}: "
                        f"RTL {np.int8(a[i].view(np.int8))}, golden {np.int8(b[i].view(np.int8))}; {where}")
        if item.capture and not np.array_equal(rtl, gold):
            i = int(np.flatnonzero(rtl != gold)[0])
            return (f"window byte 0x{i:x} (outside every compared tensor) differs: RTL {rtl[i]}, "
                    f"golden {gold[i]}; {self.locate(item, res, i)}")
        return None

    def locate(self, item: ProgramItem, res, off: int) -> str:
        """Which instruction wrote window byte `off` in the golden run."""
        caps = res.captures if res is not None else None
        if not caps:
            return "(run with capture for the instruction)"
        p = item.program
        store = None
        for c in caps:
            for w in c["writes"]:
                if w["mem"] == "DRAM" and np.any(w["words"] == off):
                    store = c
        if store is None:
            return "no golden instruction writes this byte (a stray RTL write)"
        pc = store["pc"]
        layer = _layer_of(p, pc)
        lo, hi = p.layers().get(layer, (0, len(p.instructions)))
        stores = [c["pc"] for c in caps if c["name"] == "STORE" and lo <= c["pc"] < hi]
        tile = sorted(stores).index(pc) if pc in stores else -1
        # The ACT word the STORE read that byte from, and its last writer before the STORE.
        d = decode(p.instructions[pc])
        f = d.fields
        r = dma_rows(d, p.rows, p.cols)
        row = next((k for k in range(r.count) if r.offset + k * r.stride <= off < r.offset + k * r.stride + r.row_bytes),
                   0)
        wb = ISA.memory_by_id(f["mem"]).word_bytes(p.rows, p.cols)
        word = f["sram_addr"] + row * f["sram_stride"] + (off - r.offset - row * r.stride) // wb
        producer = None
        for c in caps:
            if c["pc"] == pc:
                break
            if c["engine"] == "compute" and any(w["mem"] == "ACT" and np.any(w["words"] == word)
                                                for w in c["writes"]):
                producer = c
        what = f"layer {layer!r} tile {tile}: STORE pc {pc} from ACT word {word}"
        if producer is not None:
            what += f", written by {producer['name']} pc {producer['pc']} ({_layer_of(p, producer['pc'])!r})"
        return what

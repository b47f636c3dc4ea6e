"""Cost-model calibration cases: one instruction X measured in context.

Each case is a pair of programs, `setup; FENCE; X; FENCE; END` and the same
without X, so (BUSY cycles with X) - (without) is what X adds to a program on
the RTL (PERF_BUSY_CYCLES), and the same difference on the ISS's schedule is
what the cost model says it adds. Both programs run through the scoreboard, so
every measurement is also a bit-exact check."""

from __future__ import annotations

import numpy as np

from presil.golden.arith import quantize_multiplier
from presil.golden.asm import ProgramBuilder
from presil.golden.layout import pack_post_params
from presil.golden.program import Program

R = C = 16
ACT_IN, ACT_OUT = 0, 8192


def _program(x_words: int, instr: tuple[str, dict] | None) -> tuple[Program, dict]:
    rng = np.random.default_rng(x_words)
    b = ProgramBuilder(R, C, name="calib")
    wb = b.const(rng.integers(-128, 128, 4096 * 16, dtype=np.int8))
    pb = b.const(np.concatenate([pack_post_params(rng.integers(-999, 999, 16).astype(np.int32),
                                                  np.full(16, 1 << 30, np.int32), np.full(16, -2, np.int32), C)
                                 for _ in range(64)]))
    x = b.tensor("x", "input", (1, 1, x_words, 16))
    y = b.tensor("y", "output", (1, 1, 2048, 16))
    b.load(mem="ACT", dram_offset=x.dram_offset, y_count=1, x_words=x_words)
    b.load(mem="WGT", dram_offset=wb, y_count=1, x_words=2048)
    b.load(mem="PAR", dram_offset=pb, y_count=1, x_words=192)
    b.fence()
    if instr is not None:
        name, f = instr
        f = dict(f)
        if name in ("LOAD", "STORE"):
            f.setdefault("dram_offset", y.dram_offset if name == "STORE" else x.dram_offset)
        with b.layer("x"):
            b.emit(name, **f)
        b.fence()
    b.end()
    inputs = {"x": rng.integers(-128, 128, (1, 1, x_words, 16), dtype=np.int8)}
    return b.build(), inputs


def _gemm(m_h, m_w, k, cb, s=1):
    in_h, in_w = (m_h - 1) * s + k, (m_w - 1) * s + k
    return ("GEMM", dict(in_addr=0, in_h=in_h, in_w=in_w, in_cb=cb, cb_start=0, cb_count=cb, out_h=m_h, out_w=m_w,
                         k_h=k, k_w=k, stride_h=s, stride_w=s, wgt_addr=0, acc_addr=0)), in_h * in_w * cb


def cases() -> list[tuple[str, tuple[str, dict], int]]:
    """(label, instruction, ACT words the setup loads)."""
    out = [("NOP", ("NOP", {}), 16), ("FENCE", ("FENCE", {}), 16)]
    for (mh, mw) in [(1, 1), (1, 4), (3, 5), (4, 4), (1, 17), (7, 7), (8, 8), (14, 14), (28, 28)]:
        for k, cb in [(1, 1), (1, 2), (3, 1), (3, 2)]:
            ins, words = _gemm(mh, mw, k, cb)
            out.append((f"GEMM M={mh * mw} k{k} cb{cb}", ins, words))
    ins, words = _gemm(7, 7, 7, 1, 2)
    out.append(("GEMM M=49 k7 s2", ins, words))
    m, sh = quantize_multiplier(0.7)
    for n in (1, 16, 64, 256, 1024):
        out.append((f"POST count={n}", ("POST", dict(acc_addr=0, out_addr=ACT_OUT, count=n, out_stride=1, par_addr=0,
                                                    out_zp=0, clamp_min=-128, clamp_max=127)), 16))
        out.append((f"ADD count={n}", ("ADD", dict(a_addr=0, b_addr=n, out_addr=ACT_OUT, count=n, a_zp=1, b_zp=-2,
                                                  out_zp=3, clamp_min=-128, clamp_max=127, a_mult=m, a_shift=0,
                                                  b_mult=m, b_shift=0, out_mult=m, out_shift=0)), 2 * n))
    for mode in (0, 1):
        for (ih, k, s, cb) in [(8, 2, 2, 1), (8, 3, 1, 1), (16, 3, 2, 2), (7, 7, 1, 1), (4, 4, 1, 2), (14, 3, 2, 1)]:
            oh = (ih - k) // s + 1
            out.append((f"POOL {'avg' if mode else 'max'} {ih}x{ih}x{cb} k{k} s{s}",
                        ("POOL", dict(mode=mode, count_include_pad=0, in_addr=0, in_h=ih, in_w=ih, in_cb=cb,
                                      out_h=oh, out_w=oh, k_h=k, k_w=k, stride_h=s, stride_w=s, pad_t=0, pad_l=0,
                                      out_addr=ACT_OUT, in_zp=0, out_zp=0, mult=m, shift=0)), ih * ih * cb))
    for mem, words, rows in [(0, 1, 1), (0, 16, 1), (0, 64, 1), (0, 256, 1), (0, 16, 4), (0, 64, 8), (1, 64, 1),
                             (2, 12, 1)]:
        name = ["ACT", "WGT", "PAR"][mem]
        wbytes = {0: 16, 1: 16, 2: 64}[mem]
        out.append((f"LOAD {name} {rows}x{words}",
                    ("LOAD", dict(mem=mem, dram_stride=words * wbytes, sram_addr=ACT_OUT if mem == 0 else 0,
                                  sram_stride=words, y_count=rows, x_words=words)), max(words * rows * wbytes // 16, 16)))
        if mem == 0:
            out.append((f"STORE ACT {rows}x{words}",
                        ("STORE", dict(mem=0, dram_stride=words * 16, sram_addr=0, sram_stride=words, y_count=rows,
                                       x_words=words)), max(words * rows, 16)))
    return out


def calibration_jobs() -> list[dict]:
    jobs = []
    for label, ins, words in cases():
        for with_x in (True, False):
            p, inputs = _program(words, ins if with_x else None)
            jobs.append({"name": f"{label}{'' if with_x else ' (base)'}", "program": p, "inputs": inputs,
                         "capture": False, "meta": {"case": label, "with": with_x, "kind": ins[0],
                                                    "fields": ins[1]}})
    return jobs


def deltas(verdicts: list[dict]) -> list[dict]:
    """Per case: RTL and model cycles X adds."""
    by = {}
    for v in verdicts:
        by.setdefault(v["meta"]["case"], {})[v["meta"]["with"]] = v
    out = []
    for case, d in by.items():
        if True in d and False in d:
            out.append({"case": case, "kind": d[True]["meta"]["kind"], "fields": d[True]["meta"]["fields"],
                        "rtl": d[True]["rtl_cycles"] - d[False]["rtl_cycles"],
                        "model": d[True]["golden_cycles"] - d[False]["golden_cycles"],
                        "passed": d[True]["passed"] and d[False]["passed"]
                        and not d[True]["error"] and not d[False]["error"]})
    return out

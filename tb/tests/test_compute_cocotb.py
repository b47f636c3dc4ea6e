"""npu_compute (rtl/tb/compute_tb_top.sv) against the golden ISS, bit-exactly.

Each case is a memory image (ACT, WGT, PAR) plus a list of compute
instructions. The RTL side: the images and the encoded instructions go to
$readmemh files, the RTL instruction player runs them, and ACT and ACC are
dumped at the end. The golden side: the same images become the constant blob
of a ProgramBuilder program (LOAD ACT/WGT/PAR, FENCE, the same encoded
instructions, END) run by presil.golden.iss.run with capture="instructions";
replaying the captured SRAM writes gives the expected final ACT and ACC
(every ACC word a GEMM wrote is compared, not only what POST makes visible).
Every case runs twice: grants always given (cycle counts) and with random
grant withholding on both ACT ports (n_rep = 3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import cocotb
from cocotb.triggers import RisingEdge

from presil.golden import iss
from presil.golden.arith import quantize_multiplier
from presil.golden.asm import ProgramBuilder
from presil.golden.cost import instr_cycles
from presil.golden.device_errors import DeviceError, ErrorCode
from presil.golden.isa import decode, encode
from presil.tb.runner import sim_params, write_metrics
from stream_io import pack, read_hex, reset, unpack, write_hex

P = sim_params()
ROWS = int(P.get("ROWS", 16))
COLS = int(P.get("COLS", 16))
DEPTH = {"ACT": int(P.get("ACT_DEPTH", 4096)), "WGT": int(P.get("WGT_DEPTH", 4096)),
         "PAR": int(P.get("PAR_DEPTH", 256)), "ACC": int(P.get("ACC_DEPTH", 1024))}
N_LOAD = 4          # LOAD ACT, LOAD WGT, LOAD PAR, FENCE precede the case's instructions


@dataclass
class Case:
    rng: np.random.Generator
    act: np.ndarray = None
    wgt: np.ndarray = None
    par: np.ndarray = None
    instrs: list = field(default_factory=list)     # (name, fields)

    def __post_init__(self):
        r = self.rng
        self.act = r.integers(-128, 128, (DEPTH["ACT"], ROWS)).astype(np.int8)
        self.wgt = r.integers(-128, 128, (DEPTH["WGT"], COLS)).astype(np.int8)
        self.par = np.zeros((DEPTH["PAR"], COLS), np.int64)

    def gemm(self, **f):
        g = dict(accumulate=0, cb_start=0, stride_h=1, stride_w=1, pad_t=0, pad_l=0, in_zp=0)
        g.update(f)
        self.instrs.append(("GEMM", g))

    def par_entry(self, addr, shift=(-16, -10), bias=1 << 14):
        r = self.rng
        self.par[addr] = r.integers(-bias, bias, COLS)
        self.par[addr + 1] = r.integers(1 << 30, 1 << 31, COLS)
        self.par[addr + 2] = r.integers(shift[0], shift[1] + 1, COLS)

    def post(self, **f):
        g = dict(out_stride=1, out_zp=0, clamp_min=-128, clamp_max=127)
        g.update(f)
        self.instrs.append(("POST", g))

    def raw(self, name, **f):
        self.instrs.append((name, f))


def n_tiles(f):
    return f["k_h"] * f["k_w"] * f["cb_count"]


# ---- golden ------------------------------------------------------------------------------

def _program(case: Case, instrs):
    pb = ProgramBuilder(ROWS, COLS)
    offs = {m: pb.const(img.astype("<i4" if m == "PAR" else np.int8).tobytes())
            for m, img in (("ACT", case.act), ("WGT", case.wgt), ("PAR", case.par))}
    for m, img in (("ACT", case.act), ("WGT", case.wgt), ("PAR", case.par)):
        pb.load(mem=m, dram_offset=offs[m], dram_stride=0, sram_addr=0, sram_stride=0,
                y_count=1, x_words=len(img))
    pb.fence()
    for name, f in instrs:
        pb.emit(name, **f)
    pb.end()
    return pb.build()


def golden(case: Case):
    """Expected (act, acc, acc_written, err): err = (instruction index, code) of
    the first device error (the state is then the one before it)."""
    instrs, err = case.instrs, None
    try:
        res = iss.run(_program(case, instrs), {}, capture="instructions", depths=DEPTH)
    except DeviceError as e:
        err = (e.pc - N_LOAD, e.code)
        instrs = instrs[: e.pc - N_LOAD]
        res = iss.run(_program(case, instrs), {}, capture="instructions", depths=DEPTH)
    act = np.zeros((DEPTH["ACT"], ROWS), np.int64)
    acc = np.zeros((DEPTH["ACC"], COLS), np.int64)
    written = np.zeros(DEPTH["ACC"], bool)
    for cap in res.captures:
        for w in cap["writes"]:
            if w["mem"] == "ACT":
                act[w["words"]] = w["data"]
            elif w["mem"] == "ACC":
                acc[w["words"]] = w["data"]
                written[w["words"]] = True
    return act, acc, written, err


# ---- RTL ------------------------------------------------------------------------------------

async def run_rtl(dut, case: Case, mode: int):
    write_hex("compute_act.hex", pack([(case.act, 8)]), ROWS * 8)
    write_hex("compute_wgt.hex", pack([(case.wgt, 8)]), COLS * 8)
    write_hex("compute_par.hex", pack([(case.par, 32)]), COLS * 32)
    raws = [int.from_bytes(encode(n, **f), "little") for n, f in case.instrs]
    write_hex("compute_instr.hex", raws, 256)
    for f in ("compute_res.hex", "compute_act_out.hex", "compute_acc_out.hex"):
        Path(f).unlink(missing_ok=True)
    dut.load.value = 1
    await RisingEdge(dut.clk)
    dut.load.value = 0
    dut.n_stim.value = len(raws)
    dut.n_rep.value = mode
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    await RisingEdge(dut.done)
    await RisingEdge(dut.clk)
    res = read_hex("compute_res.hex")
    act = unpack(read_hex("compute_act_out.hex"), ROWS, 8)
    acc = unpack(read_hex("compute_acc_out.hex"), COLS, 32)
    per = [{"cycles": w & 0xFFFFFFFF, "mac": (w >> 32) & 0xFFFFFFFF, "code": (w >> 64) & 0xFF,
            "err": (w >> 72) & 1} for w in res]
    return act, acc, per


async def check(dut, case: Case, modes=(0, 3)):
    """Run the case in each grant mode; compare with golden; return the
    per-instruction records of the first mode."""
    g_act, g_acc, written, err = golden(case)
    first = None
    for mode in modes:
        act, acc, per = await run_rtl(dut, case, mode)
        assert len(per) == len(case.instrs), f"mode {mode}: {len(per)} of {len(case.instrs)} instructions done"
        for i, (rec, (name, _)) in enumerate(zip(per, case.instrs)):
            bad = err is not None and i == err[0]
            if bad:
                assert rec["err"] and rec["code"] == int(ErrorCode.BAD_FIELD), f"instr {i} {name}: expected BAD_FIELD, got {rec}"
            elif err is None or i < err[0]:
                assert not rec["err"], f"instr {i} {name}: unexpected error {rec}"
        if err is not None:   # the RTL engine goes on after an error; npu_top stops: compare before it
            assert err[0] == len(case.instrs) - 1, "put the faulting instruction last"
        wrong = np.flatnonzero((act != g_act).any(axis=1))
        assert wrong.size == 0, (f"mode {mode}: {wrong.size} ACT words differ, first {wrong[:8]}: "
                                 f"rtl {act[wrong[0]]} golden {g_act[wrong[0]]}")
        wrong = np.flatnonzero(((acc != g_acc).any(axis=1)) & written)
        assert wrong.size == 0, (f"mode {mode}: {wrong.size} ACC words differ, first {wrong[:8]}: "
                                 f"rtl {acc[wrong[0]]} golden {g_acc[wrong[0]]}")
        # mac_active: one per pixel per tile of each GEMM.
        for rec, (name, f) in zip(per, case.instrs):
            exp = n_tiles(f) * f["out_h"] * f["out_w"] if name == "GEMM" else 0
            assert rec["mac"] == exp, f"mode {mode}: {name} mac_active {rec['mac']} != {exp}"
        if first is None:
            first = per
    return first


def cycle_table(case: Case, per):
    rows = []
    for rec, (name, f) in zip(per, case.instrs):
        model = instr_cycles(decode(encode(name, **f)), ROWS, COLS)
        if name == "GEMM":
            desc = (f"{f['k_h']}x{f['k_w']} s{f['stride_h']} M={f['out_h'] * f['out_w']} "
                    f"tiles={n_tiles(f)}")
        elif name == "POOL":
            desc = (f"{'avg' if f['mode'] else 'max'} {f['k_h']}x{f['k_w']} s{f['stride_h']} "
                    f"out={f['out_h'] * f['out_w'] * f['in_cb']}")
        else:
            desc = f"count={f['count']}"
        rows.append((name, desc, rec["cycles"], model))
    return rows


# ---- cases -------------------------------------------------------------------------------------

def conv_case(seed=1) -> Case:
    c = Case(np.random.default_rng(seed))
    # input A: 6x7 pixels, 2 channel blocks (a channel count not a multiple of ROWS is
    # zero-padded by the compiler; here every lane is random, which covers more)
    A, B, F = 0, 200, 400
    c.gemm(in_addr=A, in_h=6, in_w=7, in_cb=2, cb_count=2, out_h=6, out_w=5, k_h=3, k_w=3,
           pad_t=1, pad_l=0, in_zp=-7, wgt_addr=0, acc_addr=0)                       # 3x3 s1, pad top only
    c.gemm(in_addr=A, in_h=6, in_w=7, in_cb=2, cb_count=2, out_h=3, out_w=4, k_h=3, k_w=3,
           stride_h=2, stride_w=2, pad_t=0, pad_l=1, in_zp=5, wgt_addr=288, acc_addr=100)   # 3x3 s2
    c.gemm(in_addr=A, in_h=6, in_w=7, in_cb=2, cb_start=1, cb_count=1, out_h=6, out_w=7,
           k_h=1, k_w=1, wgt_addr=576, acc_addr=200)                                  # 1x1, block 1
    c.gemm(in_addr=B, in_h=12, in_w=12, in_cb=1, cb_count=1, out_h=6, out_w=6, k_h=7, k_w=7,
           stride_h=2, stride_w=2, pad_t=3, pad_l=3, in_zp=-128, wgt_addr=592, acc_addr=300)  # 7x7 s2
    c.gemm(in_addr=F, in_h=1, in_w=1, in_cb=4, cb_count=4, out_h=1, out_w=1, k_h=1, k_w=1,
           wgt_addr=1376, acc_addr=400)                                               # FC: M = 1
    # depthwise: block-diagonal tiles, one input block (cb_start = 1) of three
    for t in range(9):
        c.wgt[1440 + t * ROWS: 1440 + (t + 1) * ROWS] = np.diag(c.rng.integers(-128, 128, ROWS))
    c.act[600:600 + 5 * 5 * 3] = c.rng.integers(-128, 128, (75, ROWS))
    c.gemm(in_addr=600, in_h=5, in_w=5, in_cb=3, cb_start=1, cb_count=1, out_h=5, out_w=5, k_h=3, k_w=3,
           pad_t=1, pad_l=1, in_zp=3, wgt_addr=1440, acc_addr=500)
    # accumulate = 1 across two GEMMs (reduction split over the two input blocks)
    c.gemm(in_addr=A, in_h=6, in_w=7, in_cb=2, cb_start=0, cb_count=1, out_h=4, out_w=5, k_h=3, k_w=3,
           wgt_addr=1584, acc_addr=600)
    c.gemm(in_addr=A, in_h=6, in_w=7, in_cb=2, cb_start=1, cb_count=1, out_h=4, out_w=5, k_h=3, k_w=3,
           accumulate=1, wgt_addr=1728, acc_addr=600)
    # FC batch of 3 (1x3 tile), 2 blocks: M = 3 < ROWS
    c.gemm(in_addr=F, in_h=1, in_w=3, in_cb=2, cb_count=2, out_h=1, out_w=3, k_h=1, k_w=1,
           wgt_addr=1872, acc_addr=700, accumulate=0)
    # steady state: 8x8 output, 3x3, 2 blocks (M = 64 >= ROWS: the array never waits for weights)
    c.gemm(in_addr=700, in_h=8, in_w=8, in_cb=2, cb_count=2, out_h=8, out_w=8, k_h=3, k_w=3,
           pad_t=1, pad_l=1, in_zp=1, wgt_addr=1904, acc_addr=800)
    # POST: per-channel parameters, int8 / ReLU (clamp_min = out_zp) / ReLU6, strided output
    for e in range(0, 18, 3):
        c.par_entry(e, shift=(-17, -12))
    c.post(acc_addr=0, count=30, out_addr=1000, par_addr=0, out_zp=-3)
    c.post(acc_addr=100, count=12, out_addr=1100, out_stride=2, par_addr=3, out_zp=-20, clamp_min=-20)
    c.post(acc_addr=300, count=36, out_addr=1200, out_stride=3, par_addr=6, out_zp=-128, clamp_min=-128,
           clamp_max=-128 + 60)
    c.post(acc_addr=400, count=1, out_addr=1350, par_addr=9)
    c.post(acc_addr=500, count=25, out_addr=1400, par_addr=12, out_zp=10, clamp_min=10, clamp_max=100)
    c.post(acc_addr=600, count=20, out_addr=1500, par_addr=15)
    return c


def post_err_case(seed, kind) -> Case:
    c = Case(np.random.default_rng(seed))
    c.gemm(in_addr=0, in_h=4, in_w=4, in_cb=1, cb_count=1, out_h=4, out_w=4, k_h=1, k_w=1,
           wgt_addr=0, acc_addr=0)
    c.par_entry(0)
    c.par_entry(3)
    if kind == "shift":
        c.par[5, 7] = -32
    elif kind == "shift_hi":
        c.par[5, 0] = 31
    else:
        c.par[4, 3] = (1 << 30) - 1
    c.post(acc_addr=0, count=16, out_addr=100, par_addr=0)
    c.post(acc_addr=0, count=16, out_addr=200, par_addr=3)     # faulting: nothing written
    return c


def _add_params(sa, sb, so):
    twice = 2 * max(sa, sb)
    am, ash = quantize_multiplier(sa / twice)
    bm, bsh = quantize_multiplier(sb / twice)
    om, osh = quantize_multiplier(twice / ((1 << 20) * so))
    return dict(a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, out_mult=om, out_shift=osh)


def add_case(seed=3) -> Case:
    c = Case(np.random.default_rng(seed))
    c.raw("ADD", a_addr=0, b_addr=100, out_addr=2000, count=50, a_zp=-5, b_zp=12, out_zp=-2,
          clamp_min=-128, clamp_max=127, **_add_params(0.05, 0.08, 0.1))
    c.raw("ADD", a_addr=300, b_addr=400, out_addr=300, count=40, a_zp=100, b_zp=-128, out_zp=0,
          clamp_min=0, clamp_max=127, **_add_params(0.2, 0.01, 0.15))                     # in place, ReLU
    c.raw("ADD", a_addr=500, b_addr=500, out_addr=600, count=1, a_zp=0, b_zp=0, out_zp=7,
          clamp_min=-100, clamp_max=100, **_add_params(0.5, 0.5, 0.02))                     # saturating
    return c


def pool_case(seed=4) -> Case:
    c = Case(np.random.default_rng(seed))
    m, s = quantize_multiplier(0.8)
    c.raw("POOL", mode=0, in_addr=0, in_h=9, in_w=9, in_cb=2, out_h=5, out_w=5, k_h=3, k_w=3,
          stride_h=2, stride_w=2, pad_t=1, pad_l=1, out_addr=2000, in_zp=-3)
    c.raw("POOL", mode=1, count_include_pad=0, in_addr=0, in_h=9, in_w=9, in_cb=2, out_h=5, out_w=5,
          k_h=3, k_w=3, stride_h=2, stride_w=2, pad_t=1, pad_l=1, out_addr=2100, in_zp=-3, out_zp=4,
          mult=m, shift=s)
    c.raw("POOL", mode=1, count_include_pad=1, in_addr=0, in_h=9, in_w=9, in_cb=2, out_h=5, out_w=5,
          k_h=3, k_w=3, stride_h=2, stride_w=2, pad_t=1, pad_l=1, out_addr=2200, in_zp=-3, out_zp=4,
          mult=m, shift=s)
    m2, s2 = quantize_multiplier(1.7)
    c.raw("POOL", mode=1, in_addr=300, in_h=7, in_w=7, in_cb=2, out_h=1, out_w=1, k_h=7, k_w=7,
          stride_h=1, stride_w=1, out_addr=2300, in_zp=10, out_zp=-5, mult=m2, shift=s2)                         # global average
    # multiplier with a right shift (0.3 -> shift -1): single vs double rounding differ
    m3, s3 = quantize_multiplier(0.3)
    c.raw("POOL", mode=1, in_addr=0, in_h=9, in_w=9, in_cb=2, out_h=4, out_w=4, k_h=2, k_w=2,
          stride_h=2, stride_w=2, out_addr=2600, in_zp=0, out_zp=0, mult=m3, shift=s3)
    # windows with no valid element (pad_t >= k_h): max -> in_zp, average -> out_zp
    c.raw("POOL", mode=0, in_addr=400, in_h=4, in_w=4, in_cb=1, out_h=5, out_w=3, k_h=2, k_w=2,
          stride_h=1, stride_w=1, pad_t=2, pad_l=0, out_addr=2400, in_zp=9)
    c.raw("POOL", mode=1, in_addr=400, in_h=4, in_w=4, in_cb=1, out_h=5, out_w=3, k_h=2, k_w=2,
          stride_h=1, stride_w=1, pad_t=2, pad_l=0, out_addr=2500, in_zp=9, out_zp=-1, mult=m, shift=s)
    # 1x1 windows: every element is a window's first and last, so consecutive windows' last
    # elements are gathered back to back (the holding register must not be overwritten)
    c.raw("POOL", mode=0, in_addr=0, in_h=6, in_w=5, in_cb=2, out_h=6, out_w=5, k_h=1, k_w=1,
          stride_h=1, stride_w=1, out_addr=2700, in_zp=-7)
    c.raw("POOL", mode=1, count_include_pad=1, in_addr=0, in_h=9, in_w=9, in_cb=2, out_h=5, out_w=5,
          k_h=1, k_w=1, stride_h=2, stride_w=2, out_addr=2800, in_zp=5, out_zp=-20, mult=m2, shift=s2)
    c.raw("POOL", mode=1, count_include_pad=0, in_addr=300, in_h=1, in_w=1, in_cb=2, out_h=1, out_w=1,
          k_h=1, k_w=1, stride_h=1, stride_w=1, out_addr=2900, in_zp=-4, out_zp=-22, mult=m, shift=s)  # 1x1 GAP
    return c


def random_conv_case(seed, n_layers) -> Case:
    """Small random conv layers (GEMM + POST each), weights and ACC packed one after another."""
    c = Case(np.random.default_rng(seed))
    r = c.rng
    wgt, acc, par, out = 0, 0, 0, 2048
    for _ in range(n_layers):
        k_h, k_w = int(r.integers(1, 6)), int(r.integers(1, 6))
        sh, sw = int(r.integers(1, 4)), int(r.integers(1, 4))
        in_h, in_w = int(r.integers(1, 9)), int(r.integers(1, 9))
        in_cb = int(r.integers(1, 4))
        cb_start = int(r.integers(0, in_cb))
        cb_count = int(r.integers(1, in_cb - cb_start + 1))
        pad_t, pad_l = int(r.integers(0, k_h)), int(r.integers(0, k_w))
        out_h = int(r.integers(1, max(1, (in_h + pad_t + k_h - 1 - k_h) // sh + 1) + 1))
        out_w = int(r.integers(1, max(1, (in_w + pad_l + k_w - 1 - k_w) // sw + 1) + 1))
        nt = k_h * k_w * cb_count
        if wgt + nt * ROWS > DEPTH["WGT"] or acc + out_h * out_w > DEPTH["ACC"]:
            break
        in_addr = int(r.integers(0, 1024))
        c.gemm(in_addr=in_addr, in_h=in_h, in_w=in_w, in_cb=in_cb, cb_start=cb_start, cb_count=cb_count,
               out_h=out_h, out_w=out_w, k_h=k_h, k_w=k_w, stride_h=sh, stride_w=sw, pad_t=pad_t,
               pad_l=pad_l, in_zp=int(r.integers(-128, 128)), wgt_addr=wgt,
               acc_addr=acc)
        c.par_entry(par, shift=(-18, -8), bias=1 << 20)
        zp = int(r.integers(-128, 128))
        c.post(acc_addr=acc, count=out_h * out_w, out_addr=out, par_addr=par, out_zp=zp,
               clamp_min=int(r.choice([-128, zp])), clamp_max=127)
        wgt += nt * ROWS
        acc += out_h * out_w
        par += 3
        out += out_h * out_w
    return c


# ---- tests ----------------------------------------------------------------------------------------

@cocotb.test()
async def gemm_conv_post(dut):
    """Conv 3x3 s1/s2 with asymmetric pads, 2 input blocks, 1x1, 7x7 s2, FC (M = 1
    and 3), depthwise, accumulate = 1 across GEMMs, POST int8/ReLU/ReLU6 strided."""
    await reset(dut)
    case = conv_case()
    per = await check(dut, case)
    table = cycle_table(case, per)
    for name, desc, rtl, model in table:
        dut._log.info("%-5s %-32s rtl %6d  model %6d  (%+.1f %%)", name, desc, rtl, model,
                      100.0 * (rtl - model) / model)
    write_metrics(cycles=[list(t) for t in table])


@cocotb.test()
async def post_bad_par(dut):
    """A PAR shift < -31 or > 30, or a multiplier below 2^30, is BAD_FIELD with
    done and nothing written; the POST before it is unaffected."""
    await reset(dut)
    for seed, kind in ((5, "shift"), (6, "shift_hi"), (7, "mult")):
        await check(dut, post_err_case(seed, kind), modes=(0,))


@cocotb.test()
async def add(dut):
    """ADD with different input scales and zero points, in place, saturating."""
    await reset(dut)
    case = add_case()
    write_metrics(cycles_add=[list(t) for t in cycle_table(case, await check(dut, case))])


@cocotb.test()
async def pool(dut):
    """Max 3x3 s2 pad 1, average with and without count_include_pad, global
    average, windows with no valid element."""
    await reset(dut)
    case = pool_case()
    write_metrics(cycles_pool=[list(t) for t in cycle_table(case, await check(dut, case))])


@cocotb.test()
async def random_conv(dut):
    """Seeded random conv layers (PRESIL_COMPUTE_SEEDS seeds, default 2)."""
    await reset(dut)
    n = int(os.environ.get("PRESIL_COMPUTE_SEEDS", "2"))
    for seed in range(100, 100 + n):
        await check(dut, random_conv_case(seed, 6))

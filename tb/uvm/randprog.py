"""Constrained-random layer streams: seeded small conv / pool / add layers built
with ProgramBuilder, valid by construction (single-tile layers, ACT/WGT/PAR
regions disjoint, phases ordered by FENCE) and run through the ISS's race
checker before they are handed to the RTL."""

from __future__ import annotations

import numpy as np

from presil.golden import iss, ops
from presil.golden.arith import quantize_multiplier
from presil.golden.asm import ProgramBuilder
from presil.golden.layout import pack_conv_weights, pack_post_params
from presil.golden.program import Program
from presil.tb.uvm.items import ProgramItem
from presil.tb.uvm.mem_agent import MemConfig

R = C = 16


def _i8(rng, *shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def _clamp(rng, out_zp: int) -> tuple[int, int]:
    kind = rng.choice(["none", "relu", "bounded"])
    if kind == "none":
        return -128, 127
    if kind == "relu":
        return out_zp, 127
    lo = int(rng.integers(-128, 0))
    return lo, int(rng.integers(lo, 128))


def _zp(rng, lo: int, hi: int) -> int:
    """A zero point in [lo, hi); one draw in four is a corner (0: symmetric
    quantisation; lo, hi - 1: the ends) that a uniform draw would almost never hit."""
    if rng.random() < 0.25:
        return int(rng.choice([0, lo, hi - 1]))
    return int(rng.integers(lo, hi))


def _pool_pads(rng, kh: int, kw: int) -> tuple[int, int, int, int]:
    """t, l, b, r: 'same'-style symmetric padding one time in three, else random per side."""
    if rng.random() < 1 / 3:
        return kh // 2, kw // 2, kh // 2, kw // 2
    return tuple(int(rng.integers(0, kk)) for kk in (kh, kw, kh, kw))


def _out(n, k, s, p0, p1):
    return (n + p0 + p1 - k) // s + 1


def random_program(seed: int) -> tuple[Program, dict]:
    rng = np.random.default_rng(seed)
    depthwise = rng.random() < 0.25
    k = int(rng.choice([1, 3, 3, 5, 7]))
    s = int(rng.choice([1, 2]))
    h, w = int(rng.integers(max(3, k - 2), 13)), int(rng.integers(max(3, k - 2), 13))
    pads = [int(rng.integers(0, k)) for _ in range(4)]     # t, l, b, r (asymmetric on purpose)
    while h + pads[0] + pads[2] < k:
        pads[2] += 1
    while w + pads[1] + pads[3] < k:
        pads[3] += 1
    cin = int(rng.choice([3, 8, 16, 20, 32]))
    cout = cin if depthwise else int(rng.choice([8, 16, 24, 32]))
    oh, ow = _out(h, k, s, pads[0], pads[2]), _out(w, k, s, pads[1], pads[3])
    in_cb, out_cb = -(-cin // R), -(-cout // C)
    x_zp, y_zp = _zp(rng, -128, 128), _zp(rng, -100, 100)
    x = _i8(rng, 1, h, w, cin)
    wt = _i8(rng, cout, k, k, cin)
    if depthwise:                    # block-diagonal dense weights (what the compiler lowers to)
        mask = np.zeros((cout, 1, 1, cin), np.int8)
        mask[np.arange(cout), 0, 0, np.arange(cin)] = 1
        wt = (wt * mask).astype(np.int8)
    bias = rng.integers(-20000, 20000, cout).astype(np.int64) - x_zp * wt.astype(np.int64).sum(axis=(1, 2, 3))
    bias = ((bias + 2**31) % 2**32 - 2**31).astype(np.int32)
    mult = rng.integers(2**30, 2**31, cout).astype(np.int64)
    shift = rng.integers(-14, -5, cout).astype(np.int64)
    accumulate = rng.random() < 0.25       # the same GEMM twice, the second accumulating: 2x the sum
    tail = rng.choice(["none", "maxpool", "avgpool", "gap", "add"])

    b = ProgramBuilder(R, C, name=f"random{seed}")
    wblob = b.const(np.concatenate([pack_conv_weights(wt, R, C, oc_block=o) for o in range(out_cb)]))
    pblob = b.const(pack_post_params(bias, mult, shift, C))
    xt = b.tensor("x", "input", x.shape, 0.05, x_zp)
    yt = b.tensor("conv", "output" if tail == "none" else "intermediate", (1, oh, ow, cout), 0.1, y_zp)
    inputs = {"x": x}
    tile_words = k * k * in_cb * R
    y_base = h * w * in_cb
    nxt = y_base + oh * ow * out_cb
    with b.layer("load"):
        b.load(mem="ACT", dram_offset=xt.dram_offset, y_count=1, x_words=h * w * in_cb)
        b.load(mem="WGT", dram_offset=wblob, y_count=1, x_words=out_cb * tile_words)
        b.load(mem="PAR", dram_offset=pblob, y_count=1, x_words=3 * out_cb)
    b.fence()
    lo, hi = _clamp(rng, y_zp)
    with b.layer("conv"):
        for o in range(out_cb):
            g = dict(in_addr=0, in_h=h, in_w=w, in_cb=in_cb, out_h=oh, out_w=ow, k_h=k, k_w=k, stride_h=s,
                     stride_w=s, pad_t=pads[0], pad_l=pads[1], in_zp=x_zp, wgt_addr=o * tile_words,
                     acc_addr=o * oh * ow)
            b.gemm(**g, cb_start=0, cb_count=in_cb)
            if accumulate:
                b.gemm(**g, cb_start=0, cb_count=in_cb, accumulate=1)
            b.post(acc_addr=o * oh * ow, out_addr=y_base + o, count=oh * ow, out_stride=out_cb, par_addr=3 * o,
                   out_zp=y_zp, clamp_min=lo, clamp_max=hi)
    b.fence()
    b.store(mem="ACT", dram_offset=yt.dram_offset, sram_addr=y_base, y_count=1, x_words=oh * ow * out_cb)
    words = oh * ow * out_cb
    if tail in ("maxpool", "avgpool", "gap"):
        pk = (oh, ow) if tail == "gap" else (int(rng.integers(1, min(3, oh) + 1)), int(rng.integers(1, min(3, ow) + 1)))
        ps = (1, 1) if tail == "gap" else (int(rng.choice([1, 2])),) * 2
        pp = (0, 0, 0, 0) if tail == "gap" else _pool_pads(rng, *pk)
        ph, pw = _out(oh, pk[0], ps[0], pp[0], pp[2]), _out(ow, pk[1], ps[1], pp[1], pp[3])
        z_zp = y_zp if tail == "maxpool" else _zp(rng, -50, 50)
        zt = b.tensor("pool", "output", (1, ph, pw, cout), 0.1, z_zp)
        m, sh = quantize_multiplier(float(rng.uniform(0.5, 2.0)))
        with b.layer("pool"):
            b.pool(mode=0 if tail == "maxpool" else 1, count_include_pad=int(rng.random() < 0.5), in_addr=y_base,
                   in_h=oh, in_w=ow, in_cb=out_cb, out_h=ph, out_w=pw, k_h=pk[0], k_w=pk[1], stride_h=ps[0],
                   stride_w=ps[1], pad_t=pp[0], pad_l=pp[1], out_addr=nxt, in_zp=y_zp, out_zp=z_zp, mult=m, shift=sh)
        b.fence()
        b.store(mem="ACT", dram_offset=zt.dram_offset, sram_addr=nxt, y_count=1, x_words=ph * pw * out_cb)
    elif tail == "add":
        other = _i8(rng, 1, oh, ow, cout)
        o_zp, z_zp = _zp(rng, -128, 128), _zp(rng, -128, 128)
        ot = b.tensor("other", "input", other.shape, 0.08, o_zp)
        zt = b.tensor("sum", "output", other.shape, 0.1, z_zp)
        inputs["other"] = other
        am, ash, bm, bsh, om, osh = ops.add_params(0.1, float(rng.uniform(0.02, 0.3)), float(rng.uniform(0.03, 0.3)))
        in_place = rng.random() < 0.5
        out_addr = y_base if in_place else nxt + words
        b.load(mem="ACT", dram_offset=ot.dram_offset, sram_addr=nxt, y_count=1, x_words=words)
        b.fence()
        lo2, hi2 = _clamp(rng, z_zp)
        with b.layer("add"):
            b.add(a_addr=y_base, b_addr=nxt, out_addr=out_addr, count=words, a_zp=y_zp, b_zp=o_zp, out_zp=z_zp,
                  clamp_min=lo2, clamp_max=hi2, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, out_mult=om,
                  out_shift=osh)
        b.fence()
        b.store(mem="ACT", dram_offset=zt.dram_offset, sram_addr=out_addr, y_count=1, x_words=words)
    b.end()
    p = Program.from_bytes(b.build(seed=seed, tail=str(tail), depthwise=depthwise, k=k, stride=s).to_bytes())
    return p, inputs


def random_items(seed: int, count: int) -> list[ProgramItem]:
    items = []
    for i in range(count):
        p, inputs = random_program(seed * 1000 + i)
        iss.run(p, inputs)       # valid by construction; the race checker confirms it (raises DataRace)
        rng = np.random.default_rng(seed * 1000 + i)
        bp = rng.random() < 0.5
        mem = MemConfig(int(rng.integers(2, 12)), int(rng.integers(2, 8)), 0.3, seed + i) if bp else MemConfig()
        items.append(ProgramItem(f"random{seed}.{i} ({p.meta.get('tail')}, k{p.meta.get('k')}"
                                 f"/s{p.meta.get('stride')}{', dw' if p.meta.get('depthwise') else ''})",
                                 p, inputs, mem=mem, meta={"seed": seed * 1000 + i}))
    return items

"""Small programs for bring-up and tests, built with ProgramBuilder: an END-only
program, DMA-window violators, and chains of convolution layers checked
bit-exactly against the golden ISS."""

from __future__ import annotations

import numpy as np

from presil.golden import ops
from presil.golden.asm import ProgramBuilder
from presil.golden.isa import ISA, encode
from presil.golden.layout import pack_activation, pack_conv_weights, pack_post_params
from presil.golden.program import Program


def end_only() -> list[bytes]:
    return [encode("END")]


def window_violators(window_size: int, rows: int = 16) -> dict[str, tuple[list[bytes], int]]:
    """Instruction streams that leave a window of window_size bytes, with the
    window offset of the first byte outside (what ERR_ADDR - DMA_WIN_BASE must be):
    a LOAD entirely past the end and a STORE straddling it."""
    act = ISA.memories["ACT"].id
    return {
        "load_past_end": ([encode("LOAD", mem=act, dram_offset=window_size, y_count=1, x_words=1),
                           encode("END")], window_size),
        "store_straddling": ([encode("STORE", mem=act, dram_offset=window_size - rows, y_count=1, x_words=2),
                              encode("END")], window_size),
    }


def conv_chain(layers, in_hw=(8, 8), *, rows: int = 16, cols: int = 16, seed: int = 0, name: str = "conv_chain"
               ) -> tuple[Program, dict[str, np.ndarray]]:
    """A chain of convolutions (cin, cout, k, stride, pad) with ReLU, each layer in
    one tile, all in SRAM between layers. Returns (program, inputs)."""
    rng = np.random.default_rng(seed)
    b = ProgramBuilder(rows, cols, name=name)
    h, w = in_hw
    cin0 = layers[0][0]
    zps = [int(rng.integers(-8, 8)) for _ in range(len(layers) + 1)]
    scales = [0.05 * (1 + i) for i in range(len(layers) + 1)]
    plan, wgt_words, par_words = [], 0, 0
    blobs_w, blobs_p = [], []
    for i, (cin, cout, k, s, pad) in enumerate(layers):
        wt = rng.integers(-100, 100, size=(cout, k, k, cin), dtype=np.int8)
        bias = rng.integers(-2000, 2000, size=cout).astype(np.int64)
        m, sh = ops.conv_requant_params(scales[i], rng.uniform(0.002, 0.01, cout), scales[i + 1])
        pbias = bias - zps[i] * wt.astype(np.int64).sum(axis=(1, 2, 3))  # zero point folded into the bias
        pbias = ((pbias + 2**31) % 2**32 - 2**31).astype(np.int32)
        in_cb, out_cb = -(-cin // rows), -(-cout // cols)
        oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        tile = k * k * in_cb * rows
        blobs_w.append(np.concatenate([pack_conv_weights(wt, rows, cols, oc_block=o) for o in range(out_cb)]))
        blobs_p.append(pack_post_params(pbias, m.astype(np.int64), sh.astype(np.int64), cols))
        plan.append(dict(h=h, w=w, in_cb=in_cb, out_cb=out_cb, oh=oh, ow=ow, k=k, s=s, pad=pad, tile=tile,
                         wgt=wgt_words, par=par_words, in_zp=zps[i], out_zp=zps[i + 1]))
        wgt_words += out_cb * tile
        par_words += 3 * out_cb
        h, w = oh, ow
    wblob = b.const(np.concatenate(blobs_w))
    pblob = b.const(np.concatenate(blobs_p))
    x = b.tensor("x", "input", (1, *in_hw, cin0), scales[0], zps[0])
    y = b.tensor("y", "output", (1, h, w, layers[-1][1]), scales[-1], zps[-1])
    act_base = in_hw[0] * in_hw[1] * plan[0]["in_cb"]
    with b.layer("load"):
        b.load(mem="ACT", dram_offset=x.dram_offset, y_count=1, x_words=act_base)
        b.load(mem="WGT", dram_offset=wblob, y_count=1, x_words=wgt_words)
        b.load(mem="PAR", dram_offset=pblob, y_count=1, x_words=par_words, push_next=True)
    in_addr, first = 0, True
    for i, p in enumerate(plan):
        out_addr = in_addr + p["h"] * p["w"] * p["in_cb"]
        with b.layer(f"conv{i}"):
            for o in range(p["out_cb"]):
                b.gemm(in_addr=in_addr, in_h=p["h"], in_w=p["w"], in_cb=p["in_cb"], cb_start=0,
                       cb_count=p["in_cb"], out_h=p["oh"], out_w=p["ow"], k_h=p["k"], k_w=p["k"],
                       stride_h=p["s"], stride_w=p["s"], pad_t=p["pad"], pad_l=p["pad"], in_zp=p["in_zp"],
                       wgt_addr=p["wgt"] + o * p["tile"], acc_addr=o * p["oh"] * p["ow"], pop_prev=first)
                first = False
                last = i == len(plan) - 1 and o == p["out_cb"] - 1
                b.post(acc_addr=o * p["oh"] * p["ow"], out_addr=out_addr + o, count=p["oh"] * p["ow"],
                       out_stride=p["out_cb"], par_addr=p["par"] + 3 * o, out_zp=p["out_zp"],
                       clamp_min=p["out_zp"], clamp_max=127, push_next=last)
        in_addr = out_addr
    last = plan[-1]
    b.store(mem="ACT", dram_offset=y.dram_offset, sram_addr=in_addr, y_count=1,
            x_words=last["oh"] * last["ow"] * last["out_cb"], pop_prev=True)
    b.end()
    prog = b.build()
    xin = rng.integers(-128, 128, size=(1, *in_hw, cin0), dtype=np.int8)
    return prog, {"x": xin}


def conv_tile(**kw):
    """One 3x3 convolution tile: 20 -> 24 channels, 9x10 input, stride 1."""
    return conv_chain([(20, 24, 3, 1, 1)], (9, 10), name="conv_tile", **kw)


def two_layer(**kw):
    """conv3x3 1->16 + ReLU, conv3x3 16->32 stride 2 + ReLU on 8x8: the first two
    layers of the zoo's digits_cnn, with seeded weights."""
    return conv_chain([(1, 16, 3, 1, 1), (16, 32, 3, 2, 1)], (8, 8), name="two_layer", **kw)


def conv_layer_raw(rows: int = 16, cols: int = 16) -> tuple[list[bytes], np.ndarray]:
    """A padded 3x3 conv (6x6xROWS -> COLS) through LOAD/GEMM/POST/STORE as raw
    instruction words and the DMA-window image they run on (0x4000 bytes: input
    at 0x0, weights 0x1000, PAR 0x2000, output 0x3000). The npu_top cocotb test
    and the co-simulation benchmark run this same layer."""
    rng = np.random.default_rng(21)
    h = w = 6
    x = rng.integers(-128, 128, (1, h, w, rows), dtype=np.int8)
    wt = rng.integers(-128, 128, (cols, 3, 3, rows), dtype=np.int8)
    act, wgt = pack_activation(x, rows), pack_conv_weights(wt, rows, cols)
    par = pack_post_params(rng.integers(-5000, 5000, cols), rng.integers(1 << 30, (1 << 31) - 1, cols),
                           rng.integers(-12, 0, cols), cols)
    a_off, w_off, p_off, out_off = 0x0, 0x1000, 0x2000, 0x3000
    b = ProgramBuilder(rows, cols)
    b.load(mem="ACT", dram_offset=a_off, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1,
           x_words=act.size // rows)
    b.load(mem="WGT", dram_offset=w_off, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1,
           x_words=wgt.size // cols)
    b.load(mem="PAR", dram_offset=p_off, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=3)
    b.fence()
    b.gemm(in_addr=0, in_h=h, in_w=w, in_cb=1, cb_start=0, cb_count=1, out_h=h, out_w=w, k_h=3, k_w=3,
           stride_h=1, stride_w=1, pad_t=1, pad_l=1, in_zp=-3, wgt_addr=0, acc_addr=0)
    b.post(acc_addr=0, out_addr=100, count=h * w, out_stride=1, par_addr=0, out_zp=5, clamp_min=-128,
           clamp_max=127)
    b.fence()
    b.store(mem="ACT", dram_offset=out_off, dram_stride=0, sram_addr=100, sram_stride=0, y_count=1,
            x_words=h * w)
    b.end()
    win = np.random.default_rng(22).integers(0, 256, 0x4000, dtype=np.uint8)
    win[a_off:a_off + act.size] = act
    win[w_off:w_off + wgt.size] = wgt
    win[p_off:p_off + par.size] = par
    return list(b.instructions), win

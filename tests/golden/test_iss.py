"""ISS: bit-exact against presil.golden.ops, schedule/cost, tokens, races."""

from __future__ import annotations

import numpy as np
import pytest

from presil.golden import ops
from presil.golden.arith import quantize_multiplier
from presil.golden.asm import ProgramBuilder, assemble
from presil.golden.device_errors import DataRace, DeviceError, ErrorCode, ProgramDeadlock
from presil.golden.iss import run
from presil.golden.layout import pack_conv_weights, pack_post_params
from presil.golden.program import Program

R = C = 16
rng = np.random.default_rng(1234)


def i8(*shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def conv_program(x_shape, w, bias, mult, shift, *, x_zp, out_zp, stride, pads, act=(-128, 127)):
    """LOAD x/WGT/PAR -> per output block GEMM + POST -> STORE, for a conv whose
    output is computed in one tile. pads = (top, left, bottom, right)."""
    n, h, wd, cin = x_shape
    cout, kh, kw, _ = w.shape
    sh, sw = stride
    oh = (h + pads[0] + pads[2] - kh) // sh + 1
    ow = (wd + pads[1] + pads[3] - kw) // sw + 1
    in_cb, out_cb = -(-cin // R), -(-cout // C)
    # GEMM adds in_zp * w for padded pixels and x*w elsewhere: fold -x_zp*sum(w) into the bias.
    pbias = bias.astype(np.int64) - x_zp * w.astype(np.int64).sum(axis=(1, 2, 3))
    pbias = ((pbias + 2**31) % 2**32 - 2**31).astype(np.int32)
    b = ProgramBuilder(R, C, name="conv")
    wblob = b.const(np.concatenate([pack_conv_weights(w, R, C, oc_block=o) for o in range(out_cb)]))
    pblob = b.const(pack_post_params(pbias, mult, shift, C))
    xt = b.tensor("x", "input", x_shape, 0.05, x_zp)
    yt = b.tensor("y", "output", (n, oh, ow, cout), 0.1, out_zp)
    tile_words = kh * kw * in_cb * R
    out_base = h * wd * in_cb
    with b.layer("load"):
        b.load(mem="ACT", dram_offset=xt.dram_offset, y_count=1, x_words=h * wd * in_cb)
        b.load(mem="WGT", dram_offset=wblob, y_count=1, x_words=out_cb * tile_words)
        b.load(mem="PAR", dram_offset=pblob, y_count=1, x_words=3 * out_cb, push_next=True)
    with b.layer("conv"):
        for o in range(out_cb):
            b.gemm(in_addr=0, in_h=h, in_w=wd, in_cb=in_cb, cb_start=0, cb_count=in_cb, out_h=oh, out_w=ow,
                   k_h=kh, k_w=kw, stride_h=sh, stride_w=sw, pad_t=pads[0], pad_l=pads[1], in_zp=x_zp,
                   wgt_addr=o * tile_words, acc_addr=o * oh * ow, pop_prev=(o == 0))
            b.post(acc_addr=o * oh * ow, out_addr=out_base + o, count=oh * ow, out_stride=out_cb, par_addr=3 * o,
                   out_zp=out_zp, clamp_min=act[0], clamp_max=act[1], push_next=(o == out_cb - 1))
    b.store(mem=0, dram_offset=yt.dram_offset, sram_addr=out_base, y_count=1, x_words=oh * ow * out_cb,
            pop_prev=True)
    b.end()
    return Program.from_bytes(b.build().to_bytes())


def requant_params(cout):
    m, s = ops.conv_requant_params(0.05, rng.uniform(0.002, 0.02, cout), 0.1)
    return m.astype(np.int64), s.astype(np.int64)


def test_conv_3x3_stride2_asymmetric_pad_matches_ops():
    x, w = i8(1, 9, 10, 20), i8(24, 3, 3, 20)
    bias = rng.integers(-5000, 5000, 24, dtype=np.int32)
    m, s = requant_params(24)
    pads = (1, 0, 1, 2)
    p = conv_program(x.shape, w, bias, m, s, x_zp=-3, out_zp=5, stride=(2, 2), pads=pads, act=(5, 127))
    res = run(p, {"x": x})
    ref = ops.conv2d(x, w, bias, x_zp=-3, multiplier=m, shift=s, out_zp=5, stride=2, pads=pads,
                     act_min=5, act_max=127)
    assert res.outputs["y"].shape == ref.shape == (1, 5, 5, 24)
    np.testing.assert_array_equal(res.outputs["y"], ref)
    assert set(res.layer_cycles) == {"load", "conv"} and res.layer_cycles["conv"] > 0
    assert res.mac_active == 2 * 9 * 2 * 25
    assert res.dma_bytes_written == 25 * 2 * 16


def test_depthwise_as_block_diagonal_matches_ops():
    c = 20
    x, dw = i8(1, 6, 7, c), i8(c, 3, 3, 1)
    dense = np.zeros((c, 3, 3, c), np.int8)
    dense[np.arange(c), :, :, np.arange(c)] = dw[:, :, :, 0]
    bias = rng.integers(-500, 500, c, dtype=np.int32)
    m, s = requant_params(c)
    p = conv_program(x.shape, dense, bias, m, s, x_zp=7, out_zp=-2, stride=(1, 1), pads=(1, 1, 1, 1))
    ref = ops.conv2d(x, dw, bias, x_zp=7, multiplier=m, shift=s, out_zp=-2, stride=1, pads=1, groups=c)
    np.testing.assert_array_equal(run(p, {"x": x}).outputs["y"], ref)


def test_fully_connected_matches_ops():
    x, w = i8(3, 40), i8(20, 40)
    bias = rng.integers(-3000, 3000, 20, dtype=np.int32)
    m, s = requant_params(20)
    p = conv_program((1, 1, 3, 40), w.reshape(20, 1, 1, 40), bias, m, s, x_zp=0, out_zp=1, stride=(1, 1),
                     pads=(0, 0, 0, 0))
    ref = ops.fully_connected(x, w, bias, x_zp=0, multiplier=m, shift=s, out_zp=1)
    np.testing.assert_array_equal(run(p, {"x": x.reshape(1, 1, 3, 40)}).outputs["y"].reshape(3, 20), ref)


def test_add_matches_ops():
    shape = (1, 4, 5, 20)
    a, bb = i8(*shape), i8(*shape)
    am, ash, bm, bsh, om, osh = ops.add_params(0.05, 0.08, 0.1)
    b = ProgramBuilder(R, C)
    ta, tb = b.tensor("a", "input", shape, 0.05, 3), b.tensor("b", "input", shape, 0.08, -4)
    ty = b.tensor("y", "output", shape, 0.1, 2)
    words = 4 * 5 * 2
    b.load(mem="ACT", dram_offset=ta.dram_offset, y_count=1, x_words=words)
    b.load(mem="ACT", dram_offset=tb.dram_offset, sram_addr=words, y_count=1, x_words=words, push_next=True)
    b.add(a_addr=0, b_addr=words, out_addr=0, count=words, a_zp=3, b_zp=-4, out_zp=2, clamp_min=-128,
          clamp_max=127, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, out_mult=om, out_shift=osh,
          pop_prev=True, push_next=True)
    b.store(mem=0, dram_offset=ty.dram_offset, y_count=1, x_words=words, pop_prev=True)
    b.end()
    ref = ops.add(a, bb, a_zp=3, b_zp=-4, out_zp=2, params=(am, ash, bm, bsh, om, osh))
    np.testing.assert_array_equal(run(b.build(), {"a": a, "b": bb}).outputs["y"], ref)


def pool_program(shape, out_hw, *, k, stride, pads, mode, in_zp=0, out_zp=0, mult=0, shift=0, cip=0):
    n, h, w, c = shape
    cb = -(-c // R)
    b = ProgramBuilder(R, C)
    tx, ty = b.tensor("x", "input", shape), b.tensor("y", "output", (n, *out_hw, c))
    b.load(mem="ACT", dram_offset=tx.dram_offset, y_count=1, x_words=h * w * cb, push_next=True)
    out_addr = h * w * cb
    b.pool(mode=mode, count_include_pad=cip, in_addr=0, in_h=h, in_w=w, in_cb=cb, out_h=out_hw[0],
           out_w=out_hw[1], k_h=k[0], k_w=k[1], stride_h=stride, stride_w=stride, pad_t=pads[0], pad_l=pads[1],
           out_addr=out_addr, in_zp=in_zp, out_zp=out_zp, mult=mult, shift=shift, pop_prev=True, push_next=True)
    b.store(mem=0, dram_offset=ty.dram_offset, sram_addr=out_addr, y_count=1,
            x_words=out_hw[0] * out_hw[1] * cb, pop_prev=True)
    b.end()
    return b.build()


def test_max_pool_matches_ops():
    x = i8(1, 7, 8, 20)
    ref = ops.max_pool(x, 3, stride=2, pads=(1, 1, 1, 1))
    p = pool_program(x.shape, ref.shape[1:3], k=(3, 3), stride=2, pads=(1, 1), mode=0)
    np.testing.assert_array_equal(run(p, {"x": x}).outputs["y"], ref)


@pytest.mark.parametrize("cip", [0, 1])
def test_avg_pool_matches_ops(cip):
    x = i8(1, 7, 8, 20)
    m, s = quantize_multiplier(0.05 / 0.04)
    ref = ops.avg_pool(x, 3, stride=2, pads=(1, 1, 1, 1), in_zp=-5, out_zp=3, multiplier=m, shift=s,
                       count_include_pad=bool(cip))
    p = pool_program(x.shape, ref.shape[1:3], k=(3, 3), stride=2, pads=(1, 1), mode=1, in_zp=-5, out_zp=3,
                     mult=m, shift=s, cip=cip)
    np.testing.assert_array_equal(run(p, {"x": x}).outputs["y"], ref)


def test_global_avg_pool_matches_ops():
    x = i8(1, 5, 6, 20)
    m, s = quantize_multiplier(0.05 / 0.03)
    ref = ops.global_avg_pool(x, in_zp=2, out_zp=-1, multiplier=m, shift=s)
    p = pool_program(x.shape, (1, 1), k=(5, 6), stride=1, pads=(0, 0), mode=1, in_zp=2, out_zp=-1, mult=m, shift=s)
    np.testing.assert_array_equal(run(p, {"x": x}).outputs["y"], ref)


def tiled_program(double_buffer: bool, tiles=4, th=4, wd=8):
    """1x1 conv (16 -> 16 channels) over `tiles` bands of th rows. Double-buffered:
    two input and two output buffers, tokens let load/compute/store overlap.
    Serial: one buffer each and a FENCE after every band."""
    w = np.arange(16 * 16, dtype=np.int64).reshape(16, 1, 1, 16).astype(np.int8)
    m, s = quantize_multiplier(0.01)
    b = ProgramBuilder(R, C)
    wb = b.const(pack_conv_weights(w, R, C))
    pb = b.const(pack_post_params(np.zeros(16, np.int32), np.full(16, m), np.full(16, s), C))
    tx = b.tensor("x", "input", (1, tiles * th, wd, 16))
    ty = b.tensor("y", "output", (1, tiles * th, wd, 16))
    pix = th * wd
    b.load(mem="WGT", dram_offset=wb, y_count=1, x_words=16)
    b.load(mem="PAR", dram_offset=pb, y_count=1, x_words=3)
    nbuf = 2 if double_buffer else 1
    for i in range(tiles):
        buf = i % nbuf
        in_addr, out_addr = buf * pix, 2 * pix + buf * pix
        recycle = double_buffer and i >= 2
        release = double_buffer and i < tiles - 2
        b.load(mem="ACT", dram_offset=tx.dram_offset + i * pix * 16, sram_addr=in_addr, y_count=1, x_words=pix,
               pop_next=recycle, push_next=True)
        b.gemm(in_addr=in_addr, in_h=th, in_w=wd, in_cb=1, cb_count=1, out_h=th, out_w=wd, k_h=1, k_w=1,
               stride_h=1, stride_w=1, acc_addr=buf * pix, pop_prev=True)
        b.post(acc_addr=buf * pix, out_addr=out_addr, count=pix, out_stride=1, clamp_min=-128, clamp_max=127,
               pop_next=recycle, push_prev=release, push_next=True)
        b.store(mem=0, dram_offset=ty.dram_offset + i * pix * 16, sram_addr=out_addr, y_count=1, x_words=pix,
                pop_prev=True, push_prev=release)
        if not double_buffer:
            b.fence()
    b.end()
    return b.build()


def test_double_buffering_same_outputs_fewer_cycles():
    x = i8(1, 16, 8, 16)
    serial = run(tiled_program(False), {"x": x})
    overlap = run(tiled_program(True), {"x": x})
    np.testing.assert_array_equal(serial.outputs["y"], overlap.outputs["y"])
    assert overlap.cycles < serial.cycles
    # Load of band 1 overlaps compute of band 0 only in the double-buffered program.
    sched = overlap.schedule
    assert sched[6].start < sched[4].end  # LOAD band 1 vs GEMM band 0


def test_missing_token_is_a_data_race():
    text = """
    LOAD mem=0 dram_offset=0 y_count=1 x_words=4      # no push_next: nothing orders it before the GEMM
    GEMM in_h=2 in_w=2 in_cb=1 cb_count=1 out_h=2 out_w=2 k_h=1 k_w=1 stride_h=1 stride_w=1
    END
    """
    p = Program(R, C, assemble(text), dram_size=64, act_depth=4, wgt_depth=16, acc_depth=4)
    with pytest.raises(DataRace, match=r"ACT word 0: instruction 1 \(GEMM.*instruction 0 \(LOAD"):
        run(p, {})
    run(p, {}, check_races=False)  # without the check it runs


def test_write_after_read_race():
    text = """
    LOAD mem=0 dram_offset=0 y_count=1 x_words=4 push_next
    GEMM in_h=2 in_w=2 in_cb=1 cb_count=1 out_h=2 out_w=2 k_h=1 k_w=1 stride_h=1 stride_w=1 pop_prev
    LOAD mem=0 dram_offset=0 sram_addr=100 y_count=50 x_words=4   # long: the GEMM runs meanwhile
    LOAD mem=0 dram_offset=0 y_count=1 x_words=4      # overwrites the GEMM's input without c2l
    END
    """
    p = Program(R, C, assemble(text), dram_size=64, act_depth=104, wgt_depth=16, acc_depth=4)
    with pytest.raises(DataRace, match="instruction 3 \\(LOAD.*overwrites the read of instruction 1 \\(GEMM"):
        run(p, {})


def test_fence_orders_engines():
    text = """
    LOAD mem=0 dram_offset=0 y_count=1 x_words=4
    FENCE
    GEMM in_h=2 in_w=2 in_cb=1 cb_count=1 out_h=2 out_w=2 k_h=1 k_w=1 stride_h=1 stride_w=1
    END
    """
    run(Program(R, C, assemble(text), dram_size=64, act_depth=4, wgt_depth=16, acc_depth=4), {})


def test_pop_without_producer_deadlocks():
    text = """
    GEMM in_h=1 in_w=1 in_cb=1 cb_count=1 out_h=1 out_w=1 k_h=1 k_w=1 stride_h=1 stride_w=1 pop_prev
    END
    """
    p = Program(R, C, assemble(text), act_depth=1, wgt_depth=16, acc_depth=1)
    with pytest.raises(ProgramDeadlock, match=r"instruction 0 \(GEMM, compute engine\) waits for token l2c"):
        run(p, {})


def test_token_leak_at_end():
    p = Program(R, C, assemble("LOAD mem=0 y_count=1 x_words=1 push_next\nEND"), dram_size=16, act_depth=1)
    with pytest.raises(DeviceError) as e:
        run(p, {})
    assert e.value.code == ErrorCode.TOKEN_LEAK and e.value.pc == 1 and "l2c=1" in str(e.value)


def test_dma_outside_window():
    p = Program(R, C, assemble("LOAD mem=0 dram_offset=32 y_count=2 dram_stride=16 x_words=1\nEND"),
                dram_size=40, act_depth=1)
    with pytest.raises(DeviceError) as e:
        run(p, {})
    assert e.value.code == ErrorCode.DMA_WINDOW and e.value.address == 40 and e.value.pc == 0


def test_sram_beyond_hardware_depth_is_bad_field():
    instrs = assemble("LOAD mem=0 sram_addr=100 y_count=1 x_words=1\nEND")
    run(Program(R, C, instrs, dram_size=16, act_depth=101), {}, depths={"ACT": 128})
    with pytest.raises(ValueError, match="ACT depth 101"):
        run(Program(R, C, instrs, dram_size=16, act_depth=101), {}, depths={"ACT": 100})
    # A program that under-declares its depth still faults on the device.
    with pytest.raises(DeviceError) as e:
        run(Program(R, C, instrs, dram_size=16, act_depth=1), {}, depths={"ACT": 100})
    assert e.value.code == ErrorCode.BAD_FIELD and e.value.pc == 0


def test_bad_par_shift_is_bad_field():
    b = ProgramBuilder(R, C)
    pb = b.const(pack_post_params(np.zeros(16, np.int32), np.zeros(16), np.full(16, 31), C))
    b.scratch(16)
    b.load(mem="PAR", dram_offset=pb, y_count=1, x_words=3, push_next=True)
    b.post(count=1, out_stride=1, clamp_min=-128, clamp_max=127, pop_prev=True)
    b.end()
    with pytest.raises(DeviceError) as e:
        run(b.build(), {})
    assert e.value.code == ErrorCode.BAD_FIELD and e.value.pc == 1 and "shift" in str(e.value)


def test_cost_model_matches_hand_calculation():
    b = ProgramBuilder(R, C)
    t = b.tensor("x", "input", (1, 2, 3, 16))
    b.load(mem="ACT", dram_offset=t.dram_offset, dram_stride=48, y_count=2, x_words=3, push_next=True)
    b.gemm(in_h=2, in_w=3, in_cb=1, cb_count=1, out_h=2, out_w=3, k_h=1, k_w=1, stride_h=1, stride_w=1,
           pop_prev=True)
    b.post(count=6, out_stride=1, out_addr=8, clamp_min=-128, clamp_max=127, push_next=True)
    b.store(mem=0, dram_offset=t.dram_offset, sram_addr=8, y_count=1, x_words=6, pop_prev=True)
    b.end()
    res = run(b.build(), {"x": i8(1, 2, 3, 16)})
    # dispatch = fetch 2 + dispatch 1 = 3 per instruction: LOAD ready at 3, GEMM 6, POST 9, STORE 12, END 15.
    load = 14 + 2 * (0 + 3)                 # dma_setup + rows*(overhead + 48 B / 16 B beats) = 20
    gemm = 0 + 1 * max(6, 16) + min(6, 16) + 16 + 16  # = 54
    post = 21 + 6
    store = 14 + 1 * (0 + 6)
    assert [(e.start, e.end) for e in res.schedule[:4]] == [
        (3, 3 + load), (23, 23 + gemm), (77, 77 + post), (104, 104 + store)]
    assert res.cycles == 3 + load + gemm + post + store == 124
    assert res.engine_busy == {"load": load, "compute": gemm + post, "store": store}
    assert res.mac_active == 6


def test_queue_depth_stalls_dispatcher():
    # 20 loads of 22 cycles each, dispatched every 3 cycles: load j waits for a slot in
    # the 16-deep queue until load j-16 starts (3 + 22*(j-16)). Load 19 is dispatched at
    # 69 (start of load 3), so the independent GEMM behind it is dispatched at 72.
    text = "LOAD mem=0 y_count=1 x_words=8\n" * 20
    text += "GEMM in_addr=8 in_h=1 in_w=1 in_cb=1 cb_count=1 out_h=1 out_w=1 k_h=1 k_w=1 stride_h=1 stride_w=1\n"
    res = run(Program(R, C, assemble(text + "END\n"), dram_size=128, act_depth=9, wgt_depth=16, acc_depth=1), {})
    one = 14 + 0 + 8                        # dma_setup + (dma_row_overhead + 8 beats)
    assert [res.schedule[j].start for j in (0, 3, 19)] == [3, 3 + 3 * one, 3 + 19 * one]
    assert res.schedule[20].start == 3 + 3 * one + 3
    assert res.cycles == 3 + 20 * one


def test_captures():
    x = i8(1, 4, 4, 16)
    p = tiled_program(True, tiles=2, th=2, wd=4)
    res = run(p, {"x": i8(1, 4, 4, 16)}, capture="tensors")
    assert set(res.captures) == {"x", "y"}
    res = run(p, {"x": x}, capture="instructions")
    stores = [c for c in res.captures if c["name"] == "STORE"]
    assert len(stores) == 2 and stores[0]["writes"][0]["mem"] == "DRAM"


def test_token_overflow():
    text = "LOAD mem=0 y_count=1 x_words=1 push_next\n" * 256 + "END\n"
    with pytest.raises(DeviceError) as e:
        run(Program(R, C, assemble(text), dram_size=16, act_depth=1), {})
    assert e.value.code == ErrorCode.TOKEN_OVERFLOW and e.value.pc == 255 and "l2c" in str(e.value)


def test_layout_helpers():
    from presil.golden.layout import pack_activation, unpack_activation

    x = i8(2, 3, 4, 20)
    buf = pack_activation(x, R)
    assert buf.dtype == np.uint8 and buf.size == 2 * 3 * 4 * 32
    words = buf.view(np.int8).reshape(2, 3, 4, 2, 16)
    assert (words[..., 1, 4:] == 0).all() and (words[1, 2, 3, 1, :4] == x[1, 2, 3, 16:]).all()
    np.testing.assert_array_equal(unpack_activation(buf, x.shape, R), x)
    w = i8(24, 2, 3, 20)
    packed = pack_conv_weights(w, R, C, oc_block=1, cb_start=1, cb_count=1).view(np.int8)
    tiles = packed.reshape(2 * 3 * 1, 16, 16)  # [t][r][c]
    t = (1 * 3 + 2) * 1 + 0  # kh=1, kw=2, cb=0 of the reduced range
    assert tiles[t, 3, 5] == w[16 + 5, 1, 2, 16 + 3]
    assert (tiles[:, 4:, :] == 0).all() and (tiles[:, :, 8:] == 0).all()  # channel padding
    par = pack_post_params([1, -2], [3, 4], [-5, 6], C).view("<i4").reshape(1, 3, 16)
    assert par[0, :, 1].tolist() == [-2, 4, 6] and (par[0, :, 2:] == 0).all()


# ------------------------------------------------------------ POST / ADD fast paths vs plain int64

def _ref_mbqm(x, m, s):
    ts = 31 - np.asarray(s, np.int64)
    r = (x * np.asarray(m, np.int64) + np.left_shift(np.int64(1), ts - 1)) >> ts
    return np.clip(r, -(2**31), 2**31 - 1)


@pytest.mark.parametrize("case", ["float", "wrap", "large_shift", "clamp"])
def test_post_paths_match_int64_reference(case):
    """POST's float64 path, its int64 path (acc + bias wraps int32) and the general
    path (total shift > 53), against wrap32 + single-rounding MBQM in plain int64."""
    r = np.random.default_rng(["float", "wrap", "large_shift", "clamp"].index(case))
    x, w = i8(1, 6, 6, 40), i8(24, 3, 3, 40)
    m = r.choice([2**30, 2**31 - 1], 24) if case != "float" else r.integers(2**30, 2**31, 24)
    s = np.full(24, -9)
    s[::3] = -8
    if case == "large_shift":  # total shifts 56..62: out_zp * 2**ts no longer fits the int64 rounding term
        s = r.integers(-31, -24, 24)
    bias = r.integers(-2**20, 2**20, 24)
    if case in ("wrap", "large_shift"):
        bias[::2] = np.where(np.arange(12) % 2, 2**31 - 1 - r.integers(0, 2**16, 12), -(2**31) + r.integers(0, 2**16, 12))
    bias = bias.astype(np.int32)
    act = (-20, 90) if case == "clamp" else (-128, 127)
    zp = 127 if case == "large_shift" else 7
    p = conv_program(x.shape, w, bias, m, s, x_zp=0, out_zp=zp, stride=(1, 1), pads=(0, 0, 0, 0), act=act)
    acc = np.einsum("nhwcij,oijc->nhwo", np.lib.stride_tricks.sliding_window_view(
        x.astype(np.int64), (3, 3), axis=(1, 2)), w.astype(np.int64))
    a = (acc + bias - -(2**31)) % 2**32 - 2**31
    ref = np.clip(_ref_mbqm(a, m, s) + zp, *act).astype(np.int8)
    np.testing.assert_array_equal(run(p, {"x": x}).outputs["y"], ref)


@pytest.mark.parametrize("params", [(2**31 - 1, -1, 2**31 - 1, -1, 2**31 - 1, 0),   # the sum wraps int32
                                    (2**30, 0, 2**31 - 1, 0, 2**30, 5),            # saturating terms
                                    (0, 0, 2**30, -3, 2**31 - 1, -20)])
def test_add_table_matches_int64_reference(params):
    """ADD (a 256 x 256 table per parameter set) on every input pair, with
    out-of-contract multipliers: saturation and the 32-bit wrap of the sum."""
    v = np.arange(256, dtype=np.uint8).view(np.int8)
    shape = (1, 64, 64, 16)
    a, bb = np.repeat(v, 256).reshape(shape), np.tile(v, 256).reshape(shape)
    am, ash, bm, bsh, om, osh = params
    b = ProgramBuilder(R, C)
    ta, tb = b.tensor("a", "input", shape, 0.05, 3), b.tensor("b", "input", shape, 0.08, -4)
    ty = b.tensor("y", "output", shape, 0.1, 2)
    words = 64 * 64
    b.load(mem="ACT", dram_offset=ta.dram_offset, y_count=1, x_words=words)
    b.load(mem="ACT", dram_offset=tb.dram_offset, sram_addr=words, y_count=1, x_words=words, push_next=True)
    b.add(a_addr=0, b_addr=words, out_addr=words, count=words, a_zp=3, b_zp=-4, out_zp=2, clamp_min=-100,
          clamp_max=120, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, out_mult=om, out_shift=osh,
          pop_prev=True, push_next=True)
    b.store(mem=0, dram_offset=ty.dram_offset, sram_addr=words, y_count=1, x_words=words, pop_prev=True)
    b.end()
    sa = _ref_mbqm((a.astype(np.int64) - 3) << 20, am, ash)
    sb = _ref_mbqm((bb.astype(np.int64) + 4) << 20, bm, bsh)
    ref = np.clip(_ref_mbqm((sa + sb + 2**31) % 2**32 - 2**31, om, osh) + 2, -100, 120).astype(np.int8)
    np.testing.assert_array_equal(run(b.build(), {"a": a, "b": bb}).outputs["y"], ref)

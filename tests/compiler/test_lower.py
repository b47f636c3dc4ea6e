"""lower.py / schedule.py / tiling.py: compiled programs on the golden ISS equal
the IR on the golden reference ops bit-exactly for every tensor, pass the race
checker with balanced tokens, and tile correctly under small SRAMs."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import compiler_models as cm
from presil.golden import iss
from presil.golden.isa import decode
from presil.host.compiler import partition, quantize, to_ir
from presil.host.compiler.bundle import compile_model
from presil.host.compiler.lower import dram_shape, lower_segment, program_feeds
from presil.host.compiler.reference import run_ir
from presil.host.compiler.tiling import NpuConfig, TilingError, band_input, bands, reduction_chunks
from presil.host.compiler.verify import verify_bundle


def grouped_wide(seed=8):
    """Grouped conv whose groups straddle channel blocks, a 64-channel 3x3 (deep
    reduction), a 5x5 stride-2 asymmetric conv and an FC on a flattened 3x3 map."""
    b = cm.Builder(seed)
    y = b.relu(b.conv("x", 6, 24, 3))                                  # 9x9
    y = b.relu(b.conv(y, 24, 36, 3, groups=3))                          # groups of 8 -> 12
    y = b.relu(b.conv(y, 36, 64, 1, pads=[0, 0, 0, 0]))
    y = b.relu(b.conv(y, 64, 40, 3))
    y = b.conv(y, 40, 20, 5, stride=2, pads=[2, 1, 1, 2])               # 9x9 -> 4x4
    y = b.node("MaxPool", [y], kernel_shape=[2, 2], strides=[1, 1])     # 3x3, no padding
    y = b.node("Flatten", [y], axis=1)
    y = b.gemm(y, 180, 10)
    return b.model((1, 6, 9, 9), [y])


def strided_1x1(seed=9):
    """ResNet's downsample shape: 1x1 stride-2 convs (odd and even input sizes,
    1 and 3 channel blocks) that load only the input rows they read."""
    b = cm.Builder(seed)
    y = b.relu(b.conv("x", 5, 40, 3))                                   # 11x11
    y = b.conv(y, 40, 20, 1, stride=2, pads=[0, 0, 0, 0])               # 11x11 -> 6x6
    y = b.conv(y, 20, 36, 1, stride=2, pads=[0, 0, 0, 0])               # 6x6 -> 3x3
    return b.model((1, 5, 11, 11), [y])


MODELS = {
    "conv_bn_relu": (cm.conv_bn_relu, (1, 3, 12, 12)),
    "mixed_cnn": (cm.mixed_cnn, (1, 3, 17, 17)),
    "residual_scales": (cm.residual_scales, (1, 4, 10, 10)),
    "flatten_head": (cm.flatten_head, (1, 2, 6, 6)),
    "matmul_head": (cm.matmul_head, (1, 3, 5, 5)),
    "host_middle": (cm.host_middle, (1, 3, 9, 9)),
    "grouped_wide": (grouped_wide, (1, 6, 9, 9)),
    "strided_1x1": (strided_1x1, (1, 5, 11, 11)),
}

# Tiny SRAMs: ACT forces row bands and single/double buffer choices, WGT forces
# reduction splits (accumulate=1) and streamed weights, PAR per-block loads,
# ACC bands of a few pixels.
SMALL = NpuConfig(16, 16, act_depth=192, wgt_depth=2 * 49 * 16, par_depth=3, acc_depth=24)


@pytest.fixture(scope="module")
def quantised():
    cache = {}

    def get(name):
        if name not in cache:
            make, shape = MODELS[name]
            rng = np.random.default_rng(11)
            qdq = quantize(make(), [rng.standard_normal(shape).astype(np.float32) for _ in range(8)])
            x = rng.standard_normal(shape).astype(np.float32)
            cache[name] = (qdq, to_ir(qdq), x)
        return cache[name]
    return get


def _check_bit_exact(g, x, config):
    ref = run_ir(g, g.quantize_inputs({"x": x}))
    programs = []
    for s in partition(g):
        if s.device != "npu":
            continue
        p = lower_segment(g, s, config=config)
        names = p.meta["tensor_names"]
        inv = {v: k for k, v in names.items() if k not in p.meta["input_layouts"]}
        feeds = program_feeds(p, ref)
        # check_races=True (default): a DataRace, deadlock or TOKEN_LEAK at END raises.
        r = iss.run(p, feeds, capture="tensors", depths=config.depths if config else None)
        assert set(names.values()) == {t for n in s.nodes for t in n.inputs + n.outputs}
        for d, a in r.captures.items():
            t = names[d]
            if d in p.meta["input_layouts"]:  # a host-packed input: still what the host wrote
                assert np.array_equal(a, feeds[d])
                continue
            assert np.array_equal(a.reshape(ref[t].shape), ref[t]), f"{t}: ISS != run_ir"
        roles = {t.name: t.role.name for t in p.tensors}
        internal = [inv[t] for n in s.nodes for t in n.outputs if t not in s.outputs]
        assert all(roles[d] == "INTERMEDIATE" for d in internal)
        programs.append((p, r))
    return programs


@pytest.mark.parametrize("name", list(MODELS))
def test_bit_exact_default_config(quantised, name):
    _, g, x = quantised(name)
    assert _check_bit_exact(g, x, None)


@pytest.mark.parametrize("name", ["mixed_cnn", "residual_scales", "grouped_wide", "flatten_head", "strided_1x1"])
def test_bit_exact_small_sram(quantised, name):
    _, g, x = quantised(name)
    progs = _check_bit_exact(g, x, SMALL)
    ds = [decode(i) for p, _ in progs for i in p.instructions]
    for p, _ in progs:
        assert p.act_depth <= SMALL.act_depth and p.wgt_depth <= SMALL.wgt_depth
        assert p.acc_depth <= SMALL.acc_depth and p.par_depth <= SMALL.par_depth
    gemms = [d for d in ds if d.name == "GEMM"]
    if name in ("mixed_cnn", "grouped_wide"):
        assert any(d["accumulate"] for d in gemms), "no split reduction"
        assert sum(d.name == "LOAD" and d["mem"] == 1 for d in ds) > len(progs[0][0].meta["layers"])
    assert any(d["out_h"] < 8 for d in gemms if d["out_w"] > 1), "no row bands"


def test_small_sram_structure(quantised):
    """The 7x7 layer of mixed_cnn under SMALL: bands with halo, pad_t only on the bands
    whose windows reach above the image (the first, and a short first band's successor)."""
    _, g, x = quantised("mixed_cnn")
    seg = next(s for s in partition(g) if s.device == "npu")
    p = lower_segment(g, seg, config=SMALL)
    c7 = g.nodes[3]
    lo, hi = p.layers()[c7.name]
    gem = [decode(i) for i in p.instructions[lo:hi]]
    gem = [d for d in gem if d.name == "GEMM"]
    assert all(d["k_h"] == 7 for d in gem)
    pads = [d["pad_t"] for d in gem]
    assert pads[0] == 3 and pads[-1] == 0 and pads == sorted(pads, reverse=True)
    assert len({d["cb_start"] for d in gem}) == 2  # 21 channels = 2 blocks, one per WGT chunk


def test_strided_1x1_loads_only_read_rows(quantised):
    """A 1x1 stride-2 conv loads every other input row (a strided LOAD) and runs its
    GEMMs with stride 1 down the loaded rows, stride 2 along them."""
    _, g, x = quantised("strided_1x1")
    for cfg in (None, SMALL):
        progs = _check_bit_exact(g, x, cfg)
        p = progs[0][0]
        for name in list(p.layers())[1:]:
            lo, hi = p.layers()[name]
            ds = [decode(i) for i in p.instructions[lo:hi]]
            acts = [d for d in ds if d.name == "LOAD" and d["mem"] == 0]
            assert acts and all(d["dram_stride"] == 2 * d["x_words"] * 16 for d in acts)
            assert all((d["stride_h"], d["stride_w"]) == (1, 2) for d in ds if d.name == "GEMM")


def test_tokens_overlap_engines(quantised):
    """Double buffering works: some LOAD runs while an earlier GEMM of the same layer computes."""
    _, g, x = quantised("grouped_wide")
    cfg = NpuConfig(16, 16, act_depth=400, wgt_depth=2 * 9 * 16 * 4)
    (p, r), = _check_bit_exact(g, x, cfg)
    ds = [decode(i) for i in p.instructions]
    assert any(d.deps.pop_prev for d in ds if d.name in ("GEMM", "POST"))
    assert any(d.deps.pop_next for d in ds if d.name == "LOAD")
    sched = r.schedule
    overlap = 0
    for lo, hi in p.layers().values():
        gem = [e for e in sched[lo:hi] if e.name == "GEMM"]
        loads = [e for e in sched[lo:hi] if e.name == "LOAD"]
        overlap += sum(1 for L in loads for G in gem if G.pc < L.pc and L.start < G.end)
    assert overlap > 0
    assert r.mac_active == sum(d["k_h"] * d["k_w"] * d["cb_count"] * d["out_h"] * d["out_w"]
                               for d in ds if d.name == "GEMM")


@pytest.mark.parametrize("name", ["mixed_cnn", "residual_scales", "grouped_wide", "flatten_head",
                                  "host_middle"])
def test_agrees_with_onnxruntime(quantised, name):
    qdq, g, _ = quantised(name)
    b = compile_model(None, None, qdq=qdq)
    shape = MODELS[name][1]
    rng = np.random.default_rng(5)
    rep = verify_bundle(b, [rng.standard_normal(shape).astype(np.float32) for _ in range(4)],
                        classifier=name != "host_middle")
    print(f"[{name}] {rep.final_within_1:.2f}% within 1 LSB, {rep.final_equal:.2f}% equal, "
          f"top-1 {rep.top1_same}")
    assert rep.passed, rep.summary()


def test_tiling_helpers():
    b = band_input(0, 2, 17, 3, 2, 1)  # rows 0,1 of a stride-2 3x3 with pad 1
    assert (b.i0, b.in_rows, b.pad_t) == (0, 4, 1)
    b = band_input(2, 4, 17, 3, 2, 1)
    assert (b.i0, b.in_rows, b.pad_t) == (3, 5, 0)
    bl = bands(8, 3, 17, 3, 2, 0)
    assert [(x.r0, x.r1) for x in bl] == [(0, 3), (3, 6), (6, 8)]
    assert reduction_chunks(0, 10, 9, 16, 9 * 16 * 4, "t") == [(0, 4), (4, 4), (8, 2)]
    with pytest.raises(TilingError, match="WGT"):
        reduction_chunks(0, 1, 49, 16, 100, "t")


def test_layer_too_big_is_named_error():
    cfg = NpuConfig(16, 16, act_depth=40)
    b = cm.Builder(0)
    y = b.conv("x", 3, 8, 3)
    m = b.model((1, 3, 12, 12), [y])
    rng = np.random.default_rng(0)
    with pytest.raises(TilingError, match="does not fit ACT"):
        compile_model(m, [rng.standard_normal((1, 3, 12, 12)).astype(np.float32)], config=cfg)


def test_fc_on_batch_as_image():
    """A (B, K) FC runs as a 1x1 conv over a 1 x B image; B = 3 rows at once."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 20])
    rng = np.random.default_rng(2)
    w = helper.make_tensor("w", TensorProto.FLOAT, [20, 18], rng.standard_normal((20, 18)).ravel().tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [18], rng.standard_normal(18).tolist())
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"]),
                           helper.make_node("Relu", ["y"], ["z"])], "fc", [x],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 18])], [w, bias])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    calib = [rng.standard_normal((3, 20)).astype(np.float32) for _ in range(8)]
    bnd = compile_model(m, calib)
    xin = rng.standard_normal((3, 20)).astype(np.float32)
    _, vals = bnd.run(xin, return_intermediates=True)
    ref = run_ir(bnd.graph, bnd.graph.quantize_inputs({"x": xin}))
    for t, v in ref.items():
        assert np.array_equal(np.asarray(vals[t]).reshape(v.shape), v)


def test_ramp_bands_partition_rows():
    """A short first band (>= 2*ROWS pixels), the rest balanced, every row once, none over r."""
    from presil.host.compiler.tiling import ramp_bands
    for oh, r, ow in [(14, 14, 14), (56, 7, 56), (112, 12, 112), (7, 7, 7), (5, 2, 40), (30, 30, 3)]:
        bs = ramp_bands(oh, r, oh, 3, 1, 1, ow, 16)
        assert [b.r0 for b in bs] == [0] + [b.r1 for b in bs[:-1]] and bs[-1].r1 == oh
        assert all(b.rows <= r for b in bs)
        if len(bs) > 1 and bs[0].rows < bs[1].rows:
            assert bs[0].rows * ow >= 32


def test_streaming_order(quantised):
    """Next layer's block-0 constants load before the FENCE, outputs are stored per
    block (one strided word per pixel), and the program still passes the race checker."""
    _, g, x = quantised("mixed_cnn")
    (p, _), = _check_bit_exact(g, x, None)
    ds = [decode(i) for i in p.instructions]
    before_fence = [ds[i - 1] for i, d in enumerate(ds) if d.name == "FENCE"]
    assert any(d.name == "LOAD" and d["mem"] in (1, 2) for d in before_fence)
    assert any(d.name == "STORE" and d["x_words"] == 1 and d["y_count"] > 1 for d in ds)

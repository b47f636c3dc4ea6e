"""Space-to-depth lowering of few-channel strided convs on a segment input (the
stem): bit-exact against run_ir on every tensor, race-free, exact zero-point
padding (asymmetric, odd kernels, odd image sizes), the host packing at the
bundle boundary, and the stem's cost-model utilisation against its
first-principles ceiling."""

from __future__ import annotations

import math

import numpy as np
import pytest

import compiler_models as cm
from presil.golden import iss
from presil.golden.isa import decode
from presil.host.compiler import ir, partition, quantize, to_ir
from presil.host.compiler.bundle import Bundle, compile_model
from presil.host.compiler.lower import SpaceToDepth, lower_segment, program_feeds
from presil.host.compiler.reference import run_ir
from presil.host.compiler.tiling import NpuConfig

from test_lower import SMALL, _check_bit_exact


def _stem(cin, k, stride, pads, hw, seed, *, cout=20, second=True):
    """A strided stem conv on the graph input, then (optionally) a 3x3 conv so the
    stem's output is an intermediate tensor the ISS captures."""
    b = cm.Builder(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    w = b.const((b.rng.standard_normal((cout, cin, kh, kw)) / np.sqrt(cin * kh * kw)).astype(np.float32))
    y = b.relu(b.node("Conv", ["x", w, b.const((0.1 * b.rng.standard_normal(cout)).astype(np.float32))],
                      kernel_shape=[kh, kw], strides=list(stride), pads=list(pads)))
    if second:
        y = b.conv(y, cout, 8, 3)
    return b.model((1, cin) + tuple(hw), [y])


# (cin, kernel, stride, pads t,l,b,r, input HxW): odd sizes, asymmetric and odd
# padding (pad % stride != 0 -> the host pre-pads; pad // stride -> GEMM pad_t/l).
CASES = {
    "7x7s2p3_c3_odd": (3, 7, (2, 2), (3, 3, 3, 3), (23, 21)),
    "7x7s2p3_c3_even": (3, 7, (2, 2), (3, 3, 3, 3), (32, 32)),
    "5x5s2_asym_c3": (3, 5, (2, 2), (2, 1, 1, 2), (15, 13)),
    "5x5s2_asym2_c3": (3, 5, (2, 2), (0, 3, 2, 0), (14, 17)),
    "3x3s2p1_c4": (4, 3, (2, 2), (1, 1, 1, 1), (17, 16)),      # 4*4 = ROWS lanes exactly
    "3x3s2_nopad_c3": (3, 3, (2, 2), (0, 0, 0, 0), (9, 11)),
    "7x7s3p2_c1": (1, 7, (3, 3), (2, 3, 1, 0), (20, 19)),       # block 3: 9 channels, 3x3 taps
    "4x3s2x1_c2": (2, (4, 3), (2, 1), (1, 1, 2, 1), (11, 7)),   # stride only along H
    "1x1s2_c3": (3, 1, (2, 2), (0, 0, 0, 0), (13, 12)),
}


@pytest.fixture(scope="module")
def stems():
    cache = {}

    def get(name):
        if name not in cache:
            cin, k, stride, pads, hw = CASES[name]
            shape = (1, cin) + hw
            rng = np.random.default_rng(5)
            qdq = quantize(_stem(cin, k, stride, pads, hw, seed=3),
                           [rng.standard_normal(shape).astype(np.float32) for _ in range(6)])
            cache[name] = (to_ir(qdq), rng.standard_normal(shape).astype(np.float32))
        return cache[name]
    return get


def _stem_gemms(p, g):
    lo, hi = p.layers()[g.nodes[0].name]
    return [d for d in (decode(i) for i in p.instructions[lo:hi]) if d.name == "GEMM"]


@pytest.mark.parametrize("config", [None, SMALL], ids=["default", "small_sram"])
@pytest.mark.parametrize("name", list(CASES))
def test_bit_exact(stems, name, config):
    """ISS == run_ir on every tensor (race checker on), and the stem really is lowered
    as a stride-1 ceil(k/s) conv over s*s*C channels of a host-packed input."""
    g, x = stems(name)
    (p, _), = _check_bit_exact(g, x, config)
    cin, k, (sh, sw), pads, _ = CASES[name]
    kh, kw = (k, k) if isinstance(k, int) else k
    (desc, lay), = p.meta["input_layouts"].items()
    assert lay["block"] == [sh, sw] and lay["shape"][3] == cin * sh * sw
    assert lay["pre"] == [pads[0] % sh, pads[1] % sw] and lay["fill"] == g.tensors[g.inputs[0]].quant.zero_point
    gem = _stem_gemms(p, g)
    assert all((d["k_h"], d["k_w"]) == (math.ceil(kh / sh), math.ceil(kw / sw)) for d in gem)
    assert all(d["stride_h"] == d["stride_w"] == 1 and d["pad_l"] == pads[1] // sw for d in gem)
    assert gem[0]["pad_t"] == pads[0] // sh and {d["pad_t"] for d in gem[1:]} <= {0, pads[0] // sh}


def test_disabled_and_ineligible(stems):
    """space_to_depth=False keeps the plain lowering; a conv whose s*s*C exceeds ROWS,
    or whose input is produced on the NPU, is never re-laid out."""
    g, x = stems("7x7s2p3_c3_odd")
    (p, _), = _check_bit_exact(g, x, NpuConfig(space_to_depth=False))
    assert p.meta["input_layouts"] == {}
    assert all(d["k_h"] == 7 and d["stride_h"] == 2 for d in _stem_gemms(p, g))
    # mixed_cnn's second strided conv reads an NPU intermediate; host_middle's 8-channel
    # stride-2 conv would need 32 lanes.
    for make, shape in ((cm.host_middle, (1, 3, 9, 9)),):
        rng = np.random.default_rng(2)
        gg = to_ir(quantize(make(), [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]))
        for s in partition(gg):
            if s.device == "npu":
                assert lower_segment(gg, s).meta["input_layouts"] == {}


def test_pack_is_padded_space_to_depth():
    """The host packing is exactly: pad with the zero point, then space-to-depth."""
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (2, 7, 9, 3), dtype=np.int8)
    s = SpaceToDepth.plan(x.shape, (2, 2), (3, 1, 3, 1), zp=-7)
    assert s.pre == (1, 1) and s.shape == (2, 4, 5, 12)
    xp = np.full((2, 8, 10, 3), -7, np.int8)
    xp[:, 1:8, 1:10] = x
    got = s.pack(x)
    for dy in range(2):
        for dx in range(2):
            c0 = (dy * 2 + dx) * 3
            assert np.array_equal(got[..., c0:c0 + 3], xp[:, dy::2, dx::2])
    assert SpaceToDepth.from_meta(s.to_meta("t")) == s


def test_bundle_packs_inputs_and_round_trips(stems):
    """Bundle.run packs the input at the segment boundary (manifest input_layouts),
    intermediates equal run_ir, and a saved bundle still carries the layout."""
    cin, k, stride, pads, hw = CASES["5x5s2_asym_c3"]
    shape = (1, cin) + hw
    rng = np.random.default_rng(9)
    b = compile_model(_stem(cin, k, stride, pads, hw, seed=4),
                      [rng.standard_normal(shape).astype(np.float32) for _ in range(6)])
    x = rng.standard_normal(shape).astype(np.float32)
    npu = next(s for s in b.segments if s["device"] == "npu")
    assert list(npu["input_layouts"].values())[0]["layout"] == "space_to_depth"
    outs, vals = b.run(x, return_intermediates=True)
    ref = run_ir(b.graph, b.graph.quantize_inputs({"x": x}))
    for n in b.graph.nodes:
        for t in n.outputs:
            assert np.array_equal(vals[t], ref[t]), t
    b2 = Bundle.from_bytes(b.to_bytes())
    outs2 = b2.run(x)
    assert all(np.array_equal(outs[k_], outs2[k_]) for k_ in outs)


def _resnet50_stem_graph() -> ir.Graph:
    """ResNet-50's conv1 alone in the IR: 224x224x3 -> 112x112x64, 7x7 /2 pad 3, ReLU."""
    rng = np.random.default_rng(1)
    g = ir.Graph("stem")
    x = g.add_input(ir.Tensor("x", (1, 224, 224, 3), "int8", ir.QParams(0.02, -3)))
    y = g.add_tensor(ir.Tensor("y", (1, 112, 112, 64), "int8", ir.QParams(0.05, -128)))
    w = rng.integers(-127, 128, (64, 7, 7, 3), dtype=np.int8)
    g.add_node(ir.Conv.build("conv1", x, y, w, np.full(64, 0.004), rng.integers(-500, 500, 64),
                             stride=(2, 2), pads=(3, 3, 3, 3), activation="relu"))
    g.add_output("y")
    return g


def test_resnet50_stem_utilisation():
    """Cost-model MAC utilisation of the stem's lowering against its ceiling from
    first principles. Per output pixel and 16-channel output block the array spends
    one cycle per weight tile, plus one POST cycle:
      plain:          3/16 lanes                       -> 3/16 * 49/49 * 49/50
      space-to-depth: 12/16 lanes x 49 of 4x4*4 taps   -> 12/16 * 49/64 * 16/17
    (the lanes x taps product alone is 57.4 %: a 2x2 space-to-depth cannot reach 60 %)."""
    g = _resnet50_stem_graph()
    seg, = partition(g)
    cfg = NpuConfig()
    rows = cfg.rows
    cin, k, s = 3, 7, 2
    k2 = math.ceil(k / s)
    lanes = cin * s * s / rows                            # 12 / 16
    taps = k * k / (k2 * k2 * s * s)                      # 49 / 64
    ceiling = lanes * taps * (k2 * k2) / (k2 * k2 + 1)   # POST: 1 cycle per pixel per block
    plain_ceiling = cin / rows * (k * k) / (k * k + 1)
    p = lower_segment(g, seg, config=cfg)
    feeds = program_feeds(p, {"x": np.zeros((1, 224, 224, 3), np.int8)})
    r = iss.run(p, feeds, check_races=False)
    ideal = g.macs() / (rows * cfg.cols)
    util = ideal / r.cycles
    # Fixed costs (first band's load, per-GEMM fill/drain, the last store) are a few %.
    assert util >= 0.95 * ceiling, f"stem utilisation {util:.3f} < 95% of its ceiling {ceiling:.3f}"
    assert util > 2.5 * plain_ceiling

"""Hypothesis properties of golden.ops, each checked against an independent
computation (plain int64 / Python ints / Fractions), never against itself."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from presil.golden import arith, ops
from presil.golden.arith import GoldenError

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
PROP = settings(max_examples=50, deadline=None)


# ------------------------------------------------------------ independent refs

def ref_mbqm(x: int, m: int, shift: int) -> int:
    """Plain-int single-rounding MBQM straight from the contract: Python's //
    floors, so this is floor(x*M / 2**ts + 1/2), then saturated to int32."""
    ts = 31 - shift
    r = (x * m + 2 ** (ts - 1)) // 2**ts
    return min(max(r, I32_MIN), I32_MAX)


def ref_conv_acc(x, w, zp, stride, pads, groups):
    sh, sw = stride
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=zp)
    cout, kh, kw, cin_g = w.shape
    win = sliding_window_view(xp - zp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    cg = cout // groups
    return np.concatenate([
        np.einsum("nhwcij,oijc->nhwo", win[:, :, :, g * cin_g:(g + 1) * cin_g],
                  w[g * cg:(g + 1) * cg].astype(np.int64)) for g in range(groups)], axis=-1)


def rng_of(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------ strategies

@st.composite
def conv_geometry(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3, "dw"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    if groups == "dw":
        cin = draw(st.integers(1, 21))
        groups, cout = cin, cin * draw(st.integers(1, 3))
    else:
        cin = groups * draw(st.integers(1, 7))
        cout = groups * draw(st.integers(1, 7))
    h = draw(st.integers(max(1, kh - pads[0] - pads[2]), 11))
    w = draw(st.integers(max(1, kw - pads[1] - pads[3]), 11))
    n = draw(st.integers(1, 2))
    return n, h, w, cin, cout, (kh, kw), (sh, sw), pads, groups


def make_x_w(geom, seed, extreme=False):
    n, h, w, cin, cout, (kh, kw), _, _, groups = geom
    r = rng_of(seed)
    if extreme:  # saturation corners: only the int8 end points
        x = r.choice(np.array([-128, 127], np.int8), (n, h, w, cin))
        wt = r.choice(np.array([-128, 127], np.int8), (cout, kh, kw, cin // groups))
    else:
        x = r.integers(-128, 128, (n, h, w, cin), dtype=np.int8)
        wt = r.integers(-128, 128, (cout, kh, kw, cin // groups), dtype=np.int8)
    return x, wt


zps = st.integers(-128, 127)
seeds = st.integers(0, 2**32 - 1)
# Q31 multipliers with the extremes weighted in, and shifts incl. large negatives.
multipliers = st.one_of(st.sampled_from([2**30, 2**30 + 1, 2**31 - 2, 2**31 - 1]),
                        st.integers(2**30, 2**31 - 1))
neg_shifts = st.one_of(st.sampled_from([-31, -30, -24, -1, 0]), st.integers(-31, 2))


# ------------------------------------------------------------ conv

@PROP
@given(geom=conv_geometry(), zp=zps, seed=seeds, extreme=st.booleans())
def test_conv_acc_matches_int64_reference(geom, zp, seed, extreme):
    x, w = make_x_w(geom, seed, extreme)
    _, _, _, _, _, _, stride, pads, groups = geom
    got = ops.conv2d_acc(x, w, zp, stride=stride, pads=pads, groups=groups)
    assert got.dtype == np.int32
    assert np.array_equal(got.astype(np.int64), ref_conv_acc(x, w, zp, stride, pads, groups))


@PROP
@given(geom=conv_geometry(), zp=zps, seed=seeds)
def test_bias_folding_identity(geom, zp, seed):
    # sum (x - zx) w == sum x w  -  zx * sum w   when padding carries zx:
    # hardware can run raw x with zp-padding and fold zx * sum(w) into bias.
    x, w = make_x_w(geom, seed)
    _, _, _, _, cout, _, stride, (pt, pl, pb, pr), groups = geom
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=zp)
    raw = ops.conv2d_acc(xp, w, 0, stride=stride, groups=groups).astype(np.int64)
    folded = raw - zp * w.astype(np.int64).sum(axis=(1, 2, 3))
    centred = ops.conv2d_acc(x, w, zp, stride=stride, pads=(pt, pl, pb, pr), groups=groups)
    assert np.array_equal(folded, centred.astype(np.int64))


@PROP
@given(geom=conv_geometry(), zp=zps, out_zp=zps, seed=seeds, m=multipliers, shift=neg_shifts,
       extreme=st.booleans(), act=st.sampled_from(["none", "relu", "relu6"]))
def test_conv2d_requantisation_per_element(geom, zp, out_zp, seed, m, shift, extreme, act):
    x, w = make_x_w(geom, seed, extreme)
    _, _, _, _, cout, _, stride, pads, groups = geom
    r = rng_of(seed + 1)
    bias = r.integers(-(2**20), 2**20, cout).astype(np.int32)
    mult = np.full(cout, m, np.int64)
    mult[::2] = r.integers(2**30, 2**31, mult[::2].size)  # per-channel variety
    shifts = np.full(cout, shift, np.int64)
    lo, hi = arith.activation_bounds(act, 0.05, out_zp)
    y = ops.conv2d(x, w, bias, x_zp=zp, multiplier=mult, shift=shifts, out_zp=out_zp,
                   stride=stride, pads=pads, groups=groups, act_min=lo, act_max=hi)
    acc = ref_conv_acc(x, w, zp, stride, pads, groups) + bias
    flat = acc.reshape(-1, cout)
    sample = rng_of(seed).integers(0, flat.shape[0], min(flat.shape[0], 40))
    for i in sample:
        for c in range(cout):
            v = ref_mbqm(int(flat[i, c]), int(mult[c]), int(shifts[c])) + out_zp
            assert y.reshape(-1, cout)[i, c] == min(max(v, lo), hi)
    assert y.min() >= lo and y.max() <= hi


@PROP
@given(geom=conv_geometry(), zp=zps, out_zp=zps, seed=seeds, m=multipliers,
       shift=st.integers(-12, 4), scale=st.floats(0.001, 1.0))
def test_relu_relu6_are_clamps_of_plain_output(geom, zp, out_zp, seed, m, shift, scale):
    x, w = make_x_w(geom, seed)
    _, _, _, _, cout, _, stride, pads, groups = geom
    kw = dict(x_zp=zp, multiplier=m, shift=shift, out_zp=out_zp, stride=stride, pads=pads,
              groups=groups)
    plain = ops.conv2d(x, w, None, **kw).astype(np.int64)
    relu = ops.conv2d(x, w, None, **kw, act_min=out_zp, act_max=127)
    assert np.array_equal(relu, np.maximum(plain, out_zp))
    lo, hi = arith.relu6_bounds(scale, out_zp)
    assert hi == min(127, out_zp + int(np.floor(6 / scale + 0.5)))
    relu6 = ops.conv2d(x, w, None, **kw, act_min=lo, act_max=hi)
    assert np.array_equal(relu6, np.clip(plain, lo, hi))
    # ReLU6 in real terms: (y - zp) * scale never exceeds 6 by more than half an LSB
    assert ((relu6.astype(np.int64) - out_zp) * scale <= 6 + scale / 2 + 1e-9).all()


# ------------------------------------------------------------ MBQM accuracy

@PROP
@given(xs=st.lists(st.integers(I32_MIN, I32_MAX), min_size=1, max_size=32), m=multipliers,
       shift=st.one_of(neg_shifts, st.integers(-31, 30)))
def test_mbqm_error_bound_vs_exact_rational(xs, m, shift):
    # One rounding: |MBQM(x) - x*M*2**(shift-31)| <= 1/2 unless the result
    # saturated (double rounding allowed 1/2 + 2**-(right+1)).
    got = arith.mbqm(np.array(xs, np.int64), m, shift)
    for x, g in zip(xs, got.tolist()):
        exact = Fraction(x * m) * Fraction(2) ** (shift - 31)
        if g in (I32_MIN, I32_MAX) and not I32_MIN <= exact <= I32_MAX:
            continue
        assert abs(g - exact) <= Fraction(1, 2)


@PROP
@given(xs=st.lists(st.integers(I32_MIN, I32_MAX), min_size=1, max_size=32),
       real=st.floats(2.0**-32, 2.0**30 * 0.999))
def test_mbqm_error_bound_vs_real_multiplier(xs, real):
    # Against the real multiplier the documented bound adds quantize_multiplier's
    # relative error: |MBQM(x) - x*real| <= 1/2 + |x|*real*2**-31.
    m, shift = arith.quantize_multiplier(real)
    got = arith.mbqm(np.array(xs, np.int64), m, shift)
    r = Fraction(real)
    for x, g in zip(xs, got.tolist()):
        exact = x * r
        if g in (I32_MIN, I32_MAX) and not I32_MIN <= exact <= I32_MAX:
            continue
        assert abs(g - exact) <= Fraction(1, 2) + abs(exact) * Fraction(1, 2**31)


# ------------------------------------------------------------ FC / matmul

@PROP
@given(b=st.integers(1, 9), k=st.integers(1, 300), n=st.integers(1, 37), zp=zps, seed=seeds,
       m=multipliers, shift=neg_shifts, out_zp=zps)
def test_fully_connected(b, k, n, zp, seed, m, shift, out_zp):
    r = rng_of(seed)
    x = r.integers(-128, 128, (b, k), dtype=np.int8)
    w = r.integers(-128, 128, (n, k), dtype=np.int8)
    bias = r.integers(I32_MIN, I32_MAX, n, endpoint=True).astype(np.int32)
    acc = (x.astype(np.int64) - zp) @ w.astype(np.int64).T
    assert np.array_equal(ops.fully_connected_acc(x, w, zp), acc)
    y = ops.fully_connected(x, w, bias, x_zp=zp, multiplier=m, shift=shift, out_zp=out_zp)
    tot = arith.wrap_int32(acc + bias)  # int32 wrap of acc + bias
    want = [[min(max(ref_mbqm(int(v), m, shift) + out_zp, -128), 127) for v in row]
            for row in tot.tolist()]
    assert y.tolist() == want


def test_accumulator_wraps_like_int32():
    # K = 70000 of (-128 - 127) * -128 = 32640 each: 2.28e9 > INT32_MAX.
    k = 70000
    x = np.full((1, k), -128, np.int8)
    w = np.full((1, k), -128, np.int8)
    acc = ops.fully_connected_acc(x, w, 127)
    assert int(acc[0, 0]) == int(arith.wrap_int32(np.int64(32640 * k)))
    assert int(acc[0, 0]) < 0  # it really wrapped


# ------------------------------------------------------------ add

@PROP
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=seeds,
       za=zps, zb=zps, zo=zps,
       sa=st.floats(1e-4, 1.0), sb=st.floats(1e-4, 1.0), so=st.floats(1e-3, 1.0),
       extreme=st.booleans())
def test_add(shape, seed, za, zb, zo, sa, sb, so, extreme):
    assume(2 * max(sa, sb) / (2**20 * so) < 2**30)
    r = rng_of(seed)
    if extreme:
        a = r.choice(np.array([-128, 127], np.int8), shape)
        b = r.choice(np.array([-128, 127], np.int8), shape)
    else:
        a = r.integers(-128, 128, shape, dtype=np.int8)
        b = r.integers(-128, 128, shape, dtype=np.int8)
    p = ops.add_params(sa, sb, so)
    y = ops.add(a, b, a_zp=za, b_zp=zb, out_zp=zo, params=p)
    # commutative (the scaled inputs are summed symmetrically)
    y2 = ops.add(b, a, a_zp=zb, b_zp=za, out_zp=zo, params=(p[2], p[3], p[0], p[1], p[4], p[5]))
    assert np.array_equal(y, y2)
    # plain-int transcription of the TFLite kernel
    for av, bv, yv in list(zip(a.ravel().tolist(), b.ravel().tolist(), y.ravel().tolist()))[:30]:
        s_ = ref_mbqm((av - za) << 20, p[0], p[1]) + ref_mbqm((bv - zb) << 20, p[2], p[3])
        assert yv == min(max(ref_mbqm(s_, p[4], p[5]) + zo, -128), 127)
    # and close to the real-valued sum: within 1 LSB unless clamped
    exact = ((a.astype(np.float64) - za) * sa + (b.astype(np.float64) - zb) * sb) / so + zo
    inside = (exact > -127.5) & (exact < 126.5)
    assert (np.abs(y[inside] - exact[inside]) <= 1.0).all()


# ------------------------------------------------------------ pools

@st.composite
def pool_geometry(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pads = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)),
            draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)))
    h = draw(st.integers(max(1, kh - pads[0] - pads[2]), 10))
    w = draw(st.integers(max(1, kw - pads[1] - pads[3]), 10))
    return (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 19)), (kh, kw),
            (draw(st.integers(1, 3)), draw(st.integers(1, 3))), pads)


@PROP
@given(geom=pool_geometry(), seed=seeds)
def test_max_pool_is_max_of_valid(geom, seed):
    n, h, w, c, k, s, (pt, pl, pb, pr) = geom
    x = rng_of(seed).integers(-128, 128, (n, h, w, c), dtype=np.int8)
    y = ops.max_pool(x, k, stride=s, pads=(pt, pl, pb, pr))
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)),
                constant_values=-np.inf)
    want = sliding_window_view(xp, k, axis=(1, 2))[:, ::s[0], ::s[1]].max(axis=(-1, -2))
    assert np.array_equal(y.astype(np.float64), want)


@PROP
@given(geom=pool_geometry(), seed=seeds, in_zp=zps, out_zp=zps, m=multipliers,
       shift=st.integers(-8, 1), include_pad=st.booleans())
def test_avg_pool_definition(geom, seed, in_zp, out_zp, m, shift, include_pad):
    n, h, w, c, k, s, (pt, pl, pb, pr) = geom
    x = rng_of(seed).integers(-128, 128, (n, h, w, c), dtype=np.int8)
    y = ops.avg_pool(x, k, stride=s, pads=(pt, pl, pb, pr), in_zp=in_zp, out_zp=out_zp,
                     multiplier=m, shift=shift, count_include_pad=include_pad)
    xp = np.pad(x.astype(np.int64) - in_zp, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ones = np.pad(np.ones((h, w), np.int64), ((pt, pb), (pl, pr)))
    sums = sliding_window_view(xp, k, axis=(1, 2))[:, ::s[0], ::s[1]].sum(axis=(-1, -2))
    cnt = sliding_window_view(ones, k)[::s[0], ::s[1]].sum(axis=(-1, -2))
    if include_pad:
        cnt[:] = k[0] * k[1]
    for idx in list(np.ndindex(sums.shape))[:60]:
        t = ref_mbqm(int(sums[idx]), m, shift)
        nn = int(cnt[idx[1], idx[2]])
        q = (t + nn // 2) // nn if t >= 0 else -((-t + nn // 2) // nn)  # half away from 0
        assert y[idx] == min(max(q + out_zp, -128), 127)


@PROP
@given(n=st.integers(1, 2), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 19),
       seed=seeds, zp=zps)
def test_global_avg_pool_identity_scale_is_rounded_mean(n, h, w, c, seed, zp):
    x = rng_of(seed).integers(-128, 128, (n, h, w, c), dtype=np.int8)
    m, s = arith.quantize_multiplier(1.0)
    y = ops.global_avg_pool(x, in_zp=zp, out_zp=zp, multiplier=m, shift=s)
    assert y.shape == (n, 1, 1, c)
    tot = (x.astype(np.int64) - zp).sum(axis=(1, 2), keepdims=True)
    q = np.sign(tot) * ((np.abs(tot) + (h * w) // 2) // (h * w))
    assert np.array_equal(y, np.clip(q + zp, -128, 127))


# ------------------------------------------------------------ bad input

X = np.zeros((1, 5, 5, 4), np.int8)
W = np.zeros((6, 3, 3, 4), np.int8)
Q = dict(x_zp=0, multiplier=2**30, shift=0, out_zp=0)
P = dict(in_zp=0, out_zp=0, multiplier=2**30, shift=1)


@pytest.mark.parametrize("call", [
    lambda: ops.conv2d_acc(X.astype(np.int16), W),                        # dtype
    lambda: ops.conv2d_acc(X, W.astype(np.uint8)),                        # dtype
    lambda: ops.conv2d_acc(X[0], W),                                      # rank
    lambda: ops.conv2d_acc(X, W, groups=3),                               # groups !| C
    lambda: ops.conv2d_acc(X, W[:, :, :, :2], groups=1),                  # I mismatch
    lambda: ops.conv2d_acc(X, np.zeros((6, 7, 7, 4), np.int8)),           # kernel > input
    lambda: ops.conv2d_acc(X, W, stride=0),
    lambda: ops.conv2d_acc(X, W, pads=(1, 1, 1)),
    lambda: ops.conv2d_acc(X, W, pads=-1),
    lambda: ops.conv2d_acc(X, W, x_zp=128),
    lambda: ops.conv2d(X, W, np.zeros(6, np.int64), **Q),                 # bias dtype
    lambda: ops.conv2d(X, W, np.zeros(5, np.int32), **Q),                 # bias shape
    lambda: ops.conv2d(X, W, None, **Q, act_min=5, act_max=4),            # bounds inverted
    lambda: ops.conv2d(X, W, None, **{**Q, "multiplier": np.full(5, 2**30)}),
    lambda: ops.conv2d(X, W, None, **{**Q, "shift": 31}),
    lambda: ops.fully_connected(X[0, 0], W[:, 0, 0, :3], None, **Q),      # K mismatch
    lambda: ops.matmul(X[0, 0], X[0, 0], a_zp=0, multiplier=2**30, shift=0, out_zp=0),
    lambda: ops.add(X, X.astype(np.uint8), a_zp=0, b_zp=0, out_zp=0, params=ops.add_params(1, 1, 1)),
    lambda: ops.add(X, X[:, :2], a_zp=0, b_zp=0, out_zp=0, params=ops.add_params(1, 1, 1)),
    lambda: ops.add(X, X, a_zp=0, b_zp=0, out_zp=0, params=(1, 2)),
    lambda: ops.add_params(0.0, 1.0, 1.0),
    lambda: ops.max_pool(X, 3, pads=3),                                   # pad >= kernel
    lambda: ops.max_pool(X, 6),                                           # kernel > input
    lambda: ops.max_pool(X.astype(np.float32), 2),
    lambda: ops.avg_pool(X, 2, **P, act_min=1, act_max=0),
    lambda: ops.avg_pool(X, 2, **{**P, "multiplier": np.array([2**30, 2**30])}),
    lambda: ops.requantize(np.zeros(3, np.float64), 2**30, 0, 0),
    lambda: ops.conv_requant_params(0.1, [0.1, -0.2], 0.3),
])
def test_bad_input_raises_golden_error(call):
    with pytest.raises(GoldenError):
        call()


def test_golden_error_is_value_error():
    assert issubclass(GoldenError, ValueError)

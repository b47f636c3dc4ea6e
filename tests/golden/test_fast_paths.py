"""The golden ops' fast paths (float32 GEMMs with exactness bounds, float64
requantisation, the weight memo, the Add table) against plain int64 references,
at the corners where a fast path could go wrong: partial sums around float32's
2**24, accumulators that wrap int32, requantisation near its float64 exactness
condition, saturation."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from presil.golden import ops
from presil.golden.arith import GoldenError

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# ------------------------------------------------------------ int64 references

def ref_acc(x, w, zp, stride=1, pads=(0, 0, 0, 0)):
    """conv accumulator (no wrap), NHWC x OHWI, groups 1, padding carries zp, in int64."""
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=zp)
    win = sliding_window_view(xp - zp, w.shape[1:3], axis=(1, 2))[:, ::stride, ::stride]
    return np.einsum("nhwcij,oijc->nhwo", win, w.astype(np.int64))


def ref_requant(acc, bias, m, s, zp, lo=-128, hi=127):
    """clamp(MBQM(wrap32(acc + bias), M, shift) + zp): single rounding, in int64."""
    a = acc.astype(np.int64) + (0 if bias is None else bias.astype(np.int64))
    a = (a - I32_MIN) % 2**32 + I32_MIN
    ts = 31 - np.asarray(s, np.int64)
    r = (a * np.asarray(m, np.int64) + np.left_shift(np.int64(1), ts - 1)) >> ts
    return np.clip(np.clip(r, I32_MIN, I32_MAX) + zp, lo, hi).astype(np.int8)


def ref_mbqm(x, m, s):
    ts = 31 - s
    return np.clip((x * m + (1 << (ts - 1))) >> ts, I32_MIN, I32_MAX)


def ref_add(a, b, za, zb, zo, params, lo=-128, hi=127):
    am, ash, bm, bsh, om, osh = params
    sa = ref_mbqm((a.astype(np.int64) - za) << ops.ADD_LEFT_SHIFT, am, ash)
    sb = ref_mbqm((b.astype(np.int64) - zb) << ops.ADD_LEFT_SHIFT, bm, bsh)
    return np.clip(ref_mbqm(sa + sb, om, osh) + zo, lo, hi).astype(np.int8)


# ------------------------------------------------------------ GEMM exactness

def near_bound(rng, n, h, cin, cout, k, x_hi=127, w_hi=127):
    """x at the top of int8 (|x - (-128)| = 255 or 254) and all-positive weights
    near 127: every partial sum grows monotonically, so a float32 GEMM whose sums
    pass 2**24 would round (the values are not multiples of a large power of two)."""
    x = (x_hi - (rng.random((n, h, h, cin)) < 0.3)).astype(np.int8)
    w = (w_hi - 2 * (rng.random((cout, k, k, cin)) < 0.3)).astype(np.int8)
    return x, w


@pytest.mark.parametrize("cin,k,what", [
    (8, 3, "one float32 GEMM (cheap bound)"),
    (64, 3, "two tap chunks (8 taps + 1)"),
    (512, 3, "one tap per chunk (each just below 2**24)"),
    (540, 3, "a single tap above 2**24: float64"),
    (1100, 1, "1x1 above 2**24: float64"),
])
def test_gemm_exact_at_float32_bound(cin, k, what):
    rng = np.random.default_rng(cin)
    x, w = near_bound(rng, 1, k + 1, cin, 16, k)
    got = ops._conv_gemm(x, w, -128, 1, 0, 1).product()
    want = ref_acc(x, w, -128)
    assert np.abs(want).max() > 2**24 or cin == 8
    np.testing.assert_array_equal(got, want)


def test_gemm_chunk_plans():
    """The tiers behind test_gemm_exact_at_float32_bound do what the cases say."""
    rng = np.random.default_rng(1)
    plans = {}
    for cin, k in ((8, 3), (64, 3), (512, 3), (540, 3)):
        x, w = near_bound(rng, 1, k + 1, cin, 16, k)
        plans[cin] = ops._gemm_chunks(x, -128, ops._weights(w, (16, k * k, cin)))
    assert plans[8] == [(0, 72)]
    assert plans[64] == [(0, 8 * 64), (8 * 64, 9 * 64)]
    assert plans[512] == [(t * 512, (t + 1) * 512) for t in range(9)]
    assert plans[540] is None


def test_gemm_tap_summed_bound():
    """max(a) * sum|w| > 2**24 but sum_c a_c sum_taps |w| <= 2**24: one GEMM."""
    cin = 256
    x = np.where(np.arange(cin) < 128, 127, -127).astype(np.int8) * np.ones((1, 4, 4, 1), np.int8)
    w = np.where(np.arange(cin) < 128, 1, 127).astype(np.int8) * np.ones((16, 3, 3, 1), np.int8)
    w[:, 1, 1, 5] = -3
    wts = ops._weights(w, (16, 9, cin))
    assert 255 * wts.abs_sum.max() > 2**24
    assert ops._gemm_chunks(x, -128, wts) == [(0, 9 * cin)]
    np.testing.assert_array_equal(ops._conv_gemm(x, w, -128, 1, 0, 1).product(), ref_acc(x, w, -128))


def test_conv2d_end_to_end_beyond_float32_bound():
    """conv2d (chunked GEMM, then the int64 requantisation its accumulators need):
    bias centres every output on a known value, multiplier 1.0 shows each LSB."""
    rng = np.random.default_rng(7)
    x, w = near_bound(rng, 1, 3, 512, 32, 3)
    acc = ref_acc(x, w, -128)[0, 0, 0]
    offset = rng.integers(-100, 100, 32)
    bias = (offset - acc).astype(np.int32)
    y = ops.conv2d(x, w, bias, x_zp=-128, multiplier=2**30, shift=1, out_zp=3)
    np.testing.assert_array_equal(y[0, 0, 0], np.clip(offset + 3, -128, 127))


@pytest.mark.parametrize("n,hw,stride,pads", [(1, 70, 1, (1, 1, 1, 1)), (1, 101, 2, (0, 1, 2, 0)),
                                               (2, 70, 1, (1, 0, 1, 2)), (1, 50, 1, (0, 0, 0, 0))])
def test_conv2d_im2col_by_row_blocks(n, hw, stride, pads):
    """Large single images copy their im2col a block of output rows at a time."""
    rng = np.random.default_rng(hw)
    x = rng.integers(-128, 128, (n, hw, hw, 5), dtype=np.int8)
    w = rng.integers(-128, 128, (24, 3, 3, 5), dtype=np.int8)
    bias = rng.integers(-2**15, 2**15, 24).astype(np.int32)
    m, s = ops.conv_requant_params(0.05, rng.uniform(0.002, 0.02, 24), 0.1)
    y = ops.conv2d(x, w, bias, x_zp=-7, multiplier=m, shift=s, out_zp=4, stride=stride, pads=pads)
    np.testing.assert_array_equal(y, ref_requant(ref_acc(x, w, -7, stride, pads), bias, m, s, 4))
    g = ops._conv_gemm(x, w, -7, stride, pads, 1)
    full = g.product().reshape(g.p, 24)
    for r0, r1 in ((0, 1), (3, 77), (g.p - 5, g.p)):  # blocks that start or end inside an output row
        np.testing.assert_array_equal(g.block(r0, r1, np.empty((r1 - r0, 24), np.float32)), full[r0:r1])


def test_fully_connected_beyond_float32_bound():
    rng = np.random.default_rng(3)
    x, w = near_bound(rng, 2, 1, 4096, 24, 1)
    x, w = x.reshape(2, 4096), w.reshape(24, 4096)
    acc = ref_acc(x.reshape(2, 1, 1, -1), w.reshape(24, 1, 1, -1), 5)[:, 0, 0]
    m, s = ops.conv_requant_params(0.05, rng.uniform(0.002, 0.02, 24), 0.1)
    bias = rng.integers(-2**20, 2**20, 24).astype(np.int32)
    y = ops.fully_connected(x, w, bias, x_zp=5, multiplier=m, shift=s, out_zp=-7)
    np.testing.assert_array_equal(y, ref_requant(acc, bias, m, s, -7))


# ------------------------------------------------------------ requantisation

@pytest.mark.parametrize("seed", range(6))
def test_conv2d_requant_around_float64_condition(seed):
    """Accumulators from small to ~2**23, Q31 multipliers at their ends, shifts
    from -31 to +2, biases near the int32 ends (wrap) and clamps: the float64 path
    where its exactness condition holds, the int64 path where it does not."""
    rng = np.random.default_rng(seed)
    cin, cout = int(rng.choice([16, 64, 300])), 32
    x = rng.integers(-128, 128, (2, 5, 5, cin), dtype=np.int8)
    w = rng.integers(-128, 128, (cout, 3, 3, cin), dtype=np.int8)
    if seed % 2:  # large accumulators (all-positive products)
        x, w = np.abs(x.astype(np.int16)).clip(0, 127).astype(np.int8), np.abs(w.astype(np.int16)).clip(0, 127).astype(np.int8)
    m = rng.choice([2**30, 2**30 + 1, 2**31 - 2, 2**31 - 1], cout) if seed < 3 else rng.integers(2**30, 2**31, cout)
    s = rng.integers(-31, 3, cout)
    bias = rng.integers(-2**20, 2**20, cout)
    bias[:4] = [I32_MAX, I32_MIN, I32_MAX - 1000, I32_MIN + 1000]  # acc + bias wraps
    bias = bias.astype(np.int32)
    zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    lo = int(rng.integers(-128, 0))
    hi = int(rng.integers(lo, 128))
    y = ops.conv2d(x, w, bias, x_zp=zp, multiplier=m, shift=s, out_zp=out_zp, act_min=lo, act_max=hi)
    np.testing.assert_array_equal(y, ref_requant(ref_acc(x, w, zp), bias, m, s, out_zp, lo, hi))


def test_requant_fast_refuses_what_it_cannot_do_exactly():
    """Direct checks of the float64 requantisation on chosen accumulators: exact
    where it runs, None (-> int64 path) past its condition or when acc + bias wraps."""
    class G:  # a _Gemm stand-in whose product is acc
        def __init__(self, acc):
            self.shape, self.p, self.block_rows, self.acc = acc.shape, acc.shape[0], 1024, acc

        def block(self, r0, r1, out):
            return self.acc[r0:r1]

    m = np.array([2**31 - 1, 2**30, 2**31 - 1, 2**30 + 12345])
    s = np.array([0, -5, -12, 0])
    base = np.arange(-3000, 3000, dtype=np.float64).reshape(-1, 1) * np.ones(4)
    for scale in (1, 2**8, 2**12):
        acc = (base * scale).astype(np.float32)  # up to 3000 * 2**12 ~ 2**23.5
        y = ops._requant_fast(G(acc), None, m, s, 3, -128, 127)
        if scale == 2**12:
            assert y is None  # |acc| * M > 2**52
        else:
            np.testing.assert_array_equal(y, ref_requant(acc.astype(np.int64), None, m, s, 3))
    acc = np.full((4, 4), 1000.0, np.float32)
    assert ops._requant_fast(G(acc), np.full(4, I32_MAX, np.int32), m, s, 0, -128, 127) is None  # wraps
    assert ops._requant_fast(G(acc), None, m, np.array([0, -5, -20, 0]), 0, -128, 127) is None  # 2**ts too large


def test_weight_memo_sees_in_place_changes():
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 6, 6, 16), dtype=np.int8)
    w = rng.integers(-128, 128, (8, 3, 3, 16), dtype=np.int8)
    args = dict(x_zp=1, multiplier=2**30, shift=-6, out_zp=0)
    before = ops.conv2d(x, w, None, **args)
    w[:, 1, 1, :] = rng.integers(-128, 128, (8, 16), dtype=np.int8)
    np.testing.assert_array_equal(ops.conv2d(x, w, None, **args),
                                  ref_requant(ref_acc(x, w, 1), None, 2**30, -6, 0))
    w[...] = before[0, 0, 0, 0]  # every weight changed
    np.testing.assert_array_equal(ops.conv2d(x, w, None, **args),
                                  ref_requant(ref_acc(x, w, 1), None, 2**30, -6, 0))


# ------------------------------------------------------------ Add table

@pytest.mark.parametrize("seed", range(4))
def test_add_table_matches_int64_reference(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (1, 64, 64, 32), dtype=np.int8)  # > _ADD_TABLE_MIN elements
    b = a[:, ::-1] if seed % 2 else rng.integers(-128, 128, (1, 1, 1, 32), dtype=np.int8)  # broadcast
    sa, sb, so = (float(v) for v in rng.uniform(0.01, 0.5, 3))
    params = ops.add_params(sa, sb, so)
    za, zb, zo = (int(v) for v in rng.integers(-128, 128, 3))
    lo, hi = (-128, 127) if seed < 2 else (zo, 127)
    y = ops.add(a, b, a_zp=za, b_zp=zb, out_zp=zo, params=params, act_min=lo, act_max=hi)
    assert a.size >= ops._ADD_TABLE_MIN and y.shape == a.shape
    np.testing.assert_array_equal(y, ref_add(a, b, za, zb, zo, params, lo, hi))


def test_add_table_saturation_corners():
    """Multipliers at the Q31 ends and shifts that saturate the input terms."""
    v = np.arange(256, dtype=np.uint8).view(np.int8)
    a, b = np.repeat(v, 256).reshape(1, 256, 256, 1), np.tile(v, 256).reshape(1, 256, 256, 1)
    for params in [(2**31 - 1, -1, 2**31 - 1, -1, 2**31 - 1, 0), (2**30, -10, 2**31 - 1, -12, 2**30, 2),
                   (0, 0, 2**31 - 1, -11, 2**31 - 1, -20)]:
        y = ops.add(a, b, a_zp=-128, b_zp=127, out_zp=0, params=params)
        np.testing.assert_array_equal(y, ref_add(a, b, -128, 127, 0, params))


def test_add_table_refuses_int32_overflow_like_the_direct_formula():
    """sa + sb outside int32 for some pair: the table is not used, so large and
    small inputs behave alike (no error unless a present pair overflows)."""
    params = (2**31 - 1, 12, 2**31 - 1, 12, 2**30, 0)
    small = np.zeros((1, 4, 4, 1), np.int8)
    big = np.zeros((1, 256, 256, 1), np.int8)
    for x in (small, big):
        np.testing.assert_array_equal(ops.add(x, x, a_zp=0, b_zp=0, out_zp=0, params=params),
                                      ref_add(x, x, 0, 0, 0, params))
        with pytest.raises(GoldenError, match="outside int32"):
            ops.add(x + 100, x + 100, a_zp=-128, b_zp=-128, out_zp=0, params=params)

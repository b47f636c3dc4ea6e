"""golden.arith against a plain-Python-int transcription of the definitions.

The reference functions below are written straight from the contract
(docs/arithmetic.md) with Python's unbounded ints and exact rationals
(Fraction); they share no code with golden/arith.py.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presil.golden import arith
from presil.golden.arith import GoldenError

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------------- reference

def ref_mbqm(x: int, m: int, shift: int) -> int:
    """Single-rounding MBQM as an exact rational: saturate(floor(x*M/2**ts + 1/2)),
    ts = 31 - shift.  No shifts or int64 tricks, so it checks the golden
    model's (x*M + 2**(ts-1)) >> ts independently."""
    exact = Fraction(x * m, 2 ** (31 - shift))
    return min(max(math.floor(exact + Fraction(1, 2)), I32_MIN), I32_MAX)


def ref_quantize_multiplier(real: float):
    if real == 0:
        return 0, 0
    frac, shift = math.frexp(real)
    scaled = frac * 2**31
    q = math.floor(scaled + 0.5)  # std::round, frac > 0
    if q == 2**31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


# ---------------------------------------------------------------- values

EDGE_I32 = [I32_MIN, I32_MIN + 1, -(2**30) - 1, -(2**30), -(2**30) + 1, -65537, -3, -2, -1,
            0, 1, 2, 3, 65535, 2**30 - 1, 2**30, 2**30 + 1, I32_MAX - 1, I32_MAX]
EDGE_M = [0, 2**30, 2**30 + 1, 1518500250, 2**31 - 2, 2**31 - 1]
i32 = st.integers(I32_MIN, I32_MAX)
q31 = st.one_of(st.just(0), st.integers(2**30, I32_MAX))
shifts = st.integers(-31, 30)


def test_mbqm_edges_every_shift():
    xs = np.array(EDGE_I32, np.int64)
    for shift in range(-31, 31):
        for m in EDGE_M:
            got = arith.multiply_by_quantized_multiplier(xs, m, shift)
            want = [ref_mbqm(int(x), m, shift) for x in xs]
            assert got.tolist() == want, (m, shift)


def test_mbqm_single_rounding_examples():
    # Ties (k + 1/2) go toward +inf for both signs (not away from zero).
    assert arith.mbqm(np.array([1, -1, 3, -3]), 2**30, 0).tolist() == [1, 0, 2, -1]
    assert arith.mbqm(np.array([6, -6, 2, -2]), 2**30, -1).tolist() == [2, -1, 1, 0]
    # One rounding only: 5 * 0.25 = 1.25 -> 1 (double rounding gave 2: SRDHM
    # first rounded 2.5 up to 3, then 3 / 2 rounded up again).
    assert int(arith.mbqm(5, 2**30, -1)) == 1
    assert arith.mbqm(np.array([4 * 7 + 1, -(4 * 7 + 1)]), 2**30, -1).tolist() == [7, -7]
    # The most extreme tie: INT32_MIN * 2**30 / 2**62 = -1/2 -> 0.
    assert int(arith.mbqm(I32_MIN, 2**30, -31)) == 0
    assert int(arith.mbqm(I32_MIN + 1, 2**30, -31)) == 0   # -1/2 + 2**-32 -> 0
    assert int(arith.mbqm(I32_MIN, 2**31 - 1, -31)) == -1  # just below -1/2


def test_mbqm_exact_ties_every_shift():
    # x*M = o*t * 2**(ts-1) with o, t odd is an exact tie (o*t)/2 for
    # ts = 31 - shift; it must become (o*t + 1)/2.  M = o * 2**e, x = t * 2**d,
    # d + e = ts - 1, so every shift -31..30 gets ties (shift 30: e = d = 0,
    # M itself odd).
    rng = np.random.default_rng(5)
    for shift in range(-31, 31):
        ts = 31 - shift
        e = min(30, ts - 1)
        d = ts - 1 - e
        o = 2 * rng.integers(2 ** (29 - e), 2 ** (30 - e), 8) + 1 if e < 30 else np.array([1])
        o = np.concatenate([o, [2 ** (31 - e) - 1]])  # M = 2**31 - 2**e, near the top
        m = o << e
        assert ((m >= 2**30) & (m <= I32_MAX)).all()
        tmax = 2 ** (31 - d) - 1 if d < 31 else 0
        t = 2 * rng.integers(-(tmax // 2) - 1, tmax // 2 + 1, 16) + 1 if tmax else np.array([-1])
        for mm, oo in zip(m.tolist(), o.tolist()):
            x = t << d
            assert ((x >= I32_MIN) & (x <= I32_MAX)).all()
            want = [min(max((oo * int(tt) + 1) // 2, I32_MIN), I32_MAX) for tt in t]
            got = arith.mbqm(x, mm, shift).tolist()
            assert got == want == [ref_mbqm(int(v), mm, shift) for v in x], shift


def test_mbqm_result_saturates():
    # Only shift > 0 can leave int32; the product itself is never saturated
    # first (no saturating left shift any more): 3 * 2**20 << 10 overflows
    # int32 but 3 * 2**20 * 2**10 * 0.5 = 3 * 2**29 does not.
    assert int(arith.mbqm(3 * 2**20, 2**30, 10)) == 3 * 2**29
    # shift 30, M = 2**30: x * 2**29; x = 4 reaches 2**31 -> INT32_MAX, while
    # -4 gives exactly INT32_MIN and -5 saturates.
    xs = np.array([3, 4, -4, -5, I32_MAX, I32_MIN], np.int64)
    assert arith.mbqm(xs, 2**30, 30).tolist() == [3 * 2**29, I32_MAX, I32_MIN, I32_MIN,
                                                  I32_MAX, I32_MIN]
    assert int(arith.mbqm(I32_MAX, I32_MAX, 30)) == I32_MAX
    assert int(arith.mbqm(I32_MIN, I32_MAX, 30)) == I32_MIN
    # shift <= 0 never saturates: the extreme products stay inside.
    assert int(arith.mbqm(I32_MIN, I32_MAX, 0)) == -(2**31 - 1)
    assert int(arith.mbqm(I32_MAX, I32_MAX, 0)) == 2**31 - 2


def test_mbqm_scalar_and_mixed_broadcast():
    # Scalar M with per-channel shifts (and the reverse) broadcast like numpy.
    x = np.arange(-40, 41, dtype=np.int32).reshape(-1, 3)
    s = np.array([-3, 0, 2])
    m = np.array([2**30, 1518500250, I32_MAX])
    got = arith.mbqm(x, 2**30, s)
    assert got.tolist() == [[ref_mbqm(int(v), 2**30, int(s[c])) for c, v in enumerate(r)]
                            for r in x]
    got = arith.mbqm(x, m, -5)
    assert got.tolist() == [[ref_mbqm(int(v), int(m[c]), -5) for c, v in enumerate(r)]
                            for r in x]
    assert int(arith.mbqm(np.int32(7), 2**30, -1)) == 2  # 0-d input


def test_mbqm_per_channel_broadcast():
    rng = np.random.default_rng(1)
    x = rng.integers(I32_MIN, I32_MAX, (7, 5, 13), endpoint=True)
    m = rng.integers(2**30, 2**31, 13)
    s = rng.integers(-31, 31, 13)
    got = arith.mbqm(x, m, s)
    want = [[[ref_mbqm(int(x[i, j, c]), int(m[c]), int(s[c])) for c in range(13)]
             for j in range(5)] for i in range(7)]
    assert got.tolist() == want


def test_mbqm_blocked_path_equals_unblocked():
    # Large enough to take the cache-blocked loop; compare with per-element ref
    # on a sample and with the small-array path on all of it.
    rng = np.random.default_rng(2)
    x = rng.integers(I32_MIN, I32_MAX, (3000, 37), endpoint=True)
    m = rng.integers(2**30, 2**31, 37)
    s = rng.integers(-31, 31, 37)
    big = arith.mbqm(x, m, s)
    rows = [arith.mbqm(x[i], m, s) for i in range(0, 3000, 97)]
    assert all((big[i * 97] == r).all() for i, r in enumerate(rows))
    idx = rng.integers(0, x.size, 300)
    flat = x.reshape(-1)
    for k in idx:
        c = int(k) % 37
        assert big.reshape(-1)[k] == ref_mbqm(int(flat[k]), int(m[c]), int(s[c]))


@settings(max_examples=500, deadline=None)
@given(x=i32, m=q31, shift=shifts)
def test_mbqm_random(x, m, shift):
    assert int(arith.mbqm(x, m, shift)) == ref_mbqm(x, m, shift)


@settings(max_examples=300, deadline=None)
@given(q=st.integers(-(2**30), 2**30), m=st.integers(2**30, I32_MAX), shift=shifts)
def test_mbqm_random_near_ties(q, m, shift):
    # x chosen so x*M/2**ts is within one x-step of q + 1/2: exercises the
    # rounding boundary, which uniform x almost never hits for large ts.
    ts = 31 - shift
    x = (2 * q + 1) * 2 ** (ts - 1) // m
    for v in (x - 1, x, x + 1):
        if I32_MIN <= v <= I32_MAX:
            assert int(arith.mbqm(v, m, shift)) == ref_mbqm(v, m, shift)


@settings(max_examples=50, deadline=None)
@given(xs=st.lists(i32, min_size=1, max_size=64), m=q31, shift=shifts)
def test_mbqm_random_vector(xs, m, shift):
    got = arith.mbqm(np.array(xs, np.int64), m, shift)
    assert got.tolist() == [ref_mbqm(x, m, shift) for x in xs]


# ---------------------------------------------------------------- quantize_multiplier

@settings(max_examples=300, deadline=None)
@given(real=st.floats(min_value=2.0**-31, max_value=2.0**30 * 0.999, allow_nan=False,
                      allow_infinity=False))
def test_quantize_multiplier_round_trip(real):
    m, shift = arith.quantize_multiplier(real)
    assert (m, shift) == ref_quantize_multiplier(real)
    assert 2**30 <= m <= 2**31 - 1 and -31 <= shift <= 30
    back = m * 2.0 ** (shift - 31)
    # q = round(frac * 2**31) with frac >= 1/2: error <= 1/2 ulp of Q31 -> 2**-31 relative.
    assert abs(back - real) <= real * 2.0**-31


def test_quantize_multiplier_special_values():
    assert arith.quantize_multiplier(0.0) == (0, 0)
    assert arith.quantize_multiplier(1.0) == (2**30, 1)
    assert arith.quantize_multiplier(0.5) == (2**30, 0)
    assert arith.quantize_multiplier(0.25) == (2**30, -1)
    # Rounds up to 2**31: renormalised to 2**30 with shift + 1.
    assert arith.quantize_multiplier(1 - 2.0**-40) == (2**30, 1)
    # Below 2**-32 the shift would be < -31: flushed to zero like TFLite.
    assert arith.quantize_multiplier(2.0**-33) == (0, 0)
    assert arith.quantize_multiplier(2.0**-32) == (2**30, -31)


def test_quantize_multiplier_rounds_half_away_not_even():
    # frac * 2**31 = 2**30 + 0.5 exactly: std::round goes up, Python round() would not.
    real = (2**30 + 0.5) / 2**31
    assert arith.quantize_multiplier(real) == (2**30 + 1, 0)
    real = (2**30 + 1.5) / 2**31
    assert arith.quantize_multiplier(real) == (2**30 + 2, 0)


@pytest.mark.parametrize("bad", [-1e-9, -1.0, float("nan"), float("inf"), -float("inf")])
def test_quantize_multiplier_rejects(bad):
    with pytest.raises(GoldenError):
        arith.quantize_multiplier(bad)
    with pytest.raises(GoldenError):
        arith.quantize_multiplier_array([0.5, bad])


def test_quantize_multiplier_too_large():
    with pytest.raises(GoldenError):
        arith.quantize_multiplier(2.0**31)
    assert arith.quantize_multiplier(2.0**30 - 1)[1] == 30


def test_quantize_multiplier_array_matches_scalar():
    rng = np.random.default_rng(3)
    reals = np.concatenate([
        np.exp2(rng.uniform(-34, 29, 500)), [0.0, 0.5, 1.0, 1 - 2.0**-40, 2.0**-33,
                                             (2**30 + 0.5) / 2**31]])
    m, s = arith.quantize_multiplier_array(reals)
    assert [(int(a), int(b)) for a, b in zip(m, s)] == [arith.quantize_multiplier(r) for r in reals]


# ---------------------------------------------------------------- helpers / errors

def test_wrap_and_saturate():
    x = np.array([2**31, -(2**31) - 1, 2**32 + 5, -5, I32_MAX], np.int64)
    assert arith.wrap_int32(x).tolist() == [I32_MIN, I32_MAX, 5, -5, I32_MAX]
    assert arith.saturate_int32(x).tolist() == [I32_MAX, I32_MIN, I32_MAX, -5, I32_MAX]
    # numpy's int64 -> int32 cast (used in the ops' hot path) wraps identically.
    big = np.random.default_rng(4).integers(-(2**52), 2**52, 1000)
    assert (big.astype(np.int32).astype(np.int64) == arith.wrap_int32(big)).all()


def test_activation_bounds():
    assert arith.relu_bounds(-5) == (-5, 127)
    assert arith.relu6_bounds(0.05, -128) == (-128, -8)  # 6/0.05 = 120
    assert arith.relu6_bounds(0.01, 0) == (0, 127)  # 600 clamps to 127
    assert arith.relu6_bounds(6 / 20.5, 0) == (0, 21)  # 20.5 rounds away from zero (not to 20)
    assert arith.activation_bounds(None, 1.0, 3) == (-128, 127)
    with pytest.raises(GoldenError):
        arith.activation_bounds("gelu", 1.0, 0)
    with pytest.raises(GoldenError):
        arith.check_act_bounds(10, 9)
    with pytest.raises(GoldenError):
        arith.check_act_bounds(-129, 0)
    with pytest.raises(GoldenError):
        arith.relu_bounds(128)


@pytest.mark.parametrize("call", [
    lambda: arith.mbqm(np.array([1.5]), 2**30, 0),            # float input
    lambda: arith.mbqm(np.array([2**31]), 2**30, 0),          # outside int32
    lambda: arith.mbqm(1, 2**30 - 1, 0),                      # M not Q31-normalised
    lambda: arith.mbqm(1, 2**31, 0),                          # M too big
    lambda: arith.mbqm(1, 2**30, 31),                         # shift too big
    lambda: arith.mbqm(1, 2**30, -32),                        # shift too small
    lambda: arith.clamp(np.array([1]), 5, 4),
])
def test_bad_input_raises(call):
    with pytest.raises(GoldenError):
        call()

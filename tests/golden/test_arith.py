"""golden.arith against a plain-Python-int transcription of the definitions.

The reference functions below are written straight from the contract
(docs/arithmetic.md) with Python's unbounded ints and explicit C-style
truncating division; they share no code with golden/arith.py.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presil.golden import arith
from presil.golden.arith import GoldenError

I32_MIN, I32_MAX = -(2**31), 2**31 - 1


# ---------------------------------------------------------------- reference

def c_div(a: int, b: int) -> int:
    """C integer division: truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbpot(x: int, e: int) -> int:
    mask = (1 << e) - 1
    rem = x & mask  # Python & on negatives is two's complement: same as C
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > threshold else 0)


def ref_mbqm(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    x1 = min(max(x * (1 << left), I32_MIN), I32_MAX)
    return ref_rdbpot(ref_srdhm(x1, m), right)


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


def test_srdhm_edges_exhaustive_pairs():
    a = np.array([p for p in EDGE_I32 for _ in EDGE_I32], np.int64)
    b = np.array([q for _ in EDGE_I32 for q in EDGE_I32], np.int64)
    got = arith.srdhm(a, b)
    want = [ref_srdhm(int(p), int(q)) for p, q in zip(a, b)]
    assert got.tolist() == want


def test_srdhm_saturating_case():
    assert arith.srdhm(I32_MIN, I32_MIN) == I32_MAX
    assert arith.srdhm(I32_MIN, I32_MAX) == ref_srdhm(I32_MIN, I32_MAX)


def test_srdhm_ties_round_toward_plus_inf():
    # a * b = +-2**30 is exactly +-0.5 after the /2**31.
    assert arith.srdhm(2**15, 2**15) == 1   # +0.5 -> 1
    assert arith.srdhm(-(2**15), 2**15) == 0  # -0.5 -> 0
    assert arith.srdhm(-3 * 2**15, 2**15) == -1  # -1.5 -> -1
    assert arith.srdhm(3 * 2**15, 2**15) == 2  # +1.5 -> 2


def test_rdbpot_all_exponents_edges():
    xs = np.array(EDGE_I32 + list(range(-40, 41)), np.int64)
    for e in range(32):
        got = arith.rounding_divide_by_pot(xs, e)
        assert got.tolist() == [ref_rdbpot(int(x), e) for x in xs], e


def test_rdbpot_ties_half_away_from_zero():
    assert arith.rounding_divide_by_pot(np.array([1, -1, 3, -3, 5, -5]), 1).tolist() == \
        [1, -1, 2, -2, 3, -3]
    assert arith.rounding_divide_by_pot(np.array([2, -2, 6, -6]), 2).tolist() == [1, -1, 2, -2]


def test_rdbpot_per_element_exponent():
    xs = np.arange(-70, 71, dtype=np.int64)
    es = np.arange(xs.size) % 32
    got = arith.rounding_divide_by_pot(xs, es)
    assert got.tolist() == [ref_rdbpot(int(x), int(e)) for x, e in zip(xs, es)]


def test_mbqm_edges_every_shift():
    xs = np.array(EDGE_I32, np.int64)
    for shift in range(-31, 31):
        for m in EDGE_M:
            got = arith.multiply_by_quantized_multiplier(xs, m, shift)
            want = [ref_mbqm(int(x), m, shift) for x in xs]
            assert got.tolist() == want, (m, shift)


def test_mbqm_left_shift_saturates():
    # 2**20 << 30 would overflow int32: saturate to INT32_MAX/MIN first.
    m = 2**31 - 1
    assert arith.mbqm(2**20, m, 30) == ref_srdhm(I32_MAX, m)
    assert arith.mbqm(-(2**20), m, 30) == ref_srdhm(I32_MIN, m)
    assert arith.mbqm(2**20, m, 30) == ref_mbqm(2**20, m, 30)


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


@settings(max_examples=300, deadline=None)
@given(a=i32, b=i32)
def test_srdhm_random(a, b):
    assert int(arith.srdhm(a, b)) == ref_srdhm(a, b)


@settings(max_examples=300, deadline=None)
@given(x=i32, e=st.integers(0, 31))
def test_rdbpot_random(x, e):
    assert int(arith.rounding_divide_by_pot(x, e)) == ref_rdbpot(x, e)


@settings(max_examples=500, deadline=None)
@given(x=i32, m=q31, shift=shifts)
def test_mbqm_random(x, m, shift):
    assert int(arith.mbqm(x, m, shift)) == ref_mbqm(x, m, shift)


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
    lambda: arith.rounding_divide_by_pot(1, 32),
    lambda: arith.srdhm(2**31, 1),
    lambda: arith.clamp(np.array([1]), 5, 4),
])
def test_bad_input_raises(call):
    with pytest.raises(GoldenError):
        call()

"""The NPU's integer arithmetic: the bit-exact definition of requantisation.

Everything here is vectorised numpy over int64 arrays.  int64 is wide enough
for every intermediate: the largest product is int32 x Q31 < 2**62, plus a
rounding constant <= 2**61.  Per-channel multipliers/shifts
broadcast against the last (channel) axis like any numpy operand.

The definitions follow the TFLite reference kernels (requantisation: the
single-rounding TFLITE_SINGLE_ROUNDING build); see
docs/arithmetic.md for the written contract.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT8_MIN = -128
INT8_MAX = 127

# Q31 multipliers live in [2**30, 2**31 - 1] (fraction in [0.5, 1)) or are 0.
Q31_MIN = 2**30
SHIFT_MIN = -31
SHIFT_MAX = 30


class GoldenError(ValueError):
    """Invalid input to the golden model (dtype, shape, parameter range)."""


# --------------------------------------------------------------------------
# saturation / wrapping helpers
# --------------------------------------------------------------------------

def _i64(x) -> np.ndarray:
    """Integer input as int64; refuses floats so no value is silently rounded."""
    a = np.asarray(x)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise GoldenError(f"expected an integer array, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def saturate_int32(x) -> np.ndarray:
    """Clamp to [INT32_MIN, INT32_MAX] (int64 result)."""
    return np.clip(_i64(x), INT32_MIN, INT32_MAX)


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap to int32 range (int64 result): the accumulator's
    overflow behaviour."""
    x = _i64(x)
    return ((x - INT32_MIN) & 0xFFFFFFFF) + INT32_MIN


def clamp(x, lo: int, hi: int) -> np.ndarray:
    """Clamp to [lo, hi] (int64 result); lo > hi is an error, not an empty range."""
    if lo > hi:
        raise GoldenError(f"clamp bounds inverted: {lo} > {hi}")
    return np.clip(_i64(x), lo, hi)


def _check_int32_range(x: np.ndarray, what: str) -> None:
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise GoldenError(f"{what} outside int32 range")


def _check_multiplier(m: np.ndarray, shift: np.ndarray) -> None:
    if m.size and not np.all((m == 0) | ((m >= Q31_MIN) & (m <= INT32_MAX))):
        raise GoldenError("multiplier must be 0 or in [2**30, 2**31 - 1]")
    if shift.size and (shift.min() < SHIFT_MIN or shift.max() > SHIFT_MAX):
        raise GoldenError(f"shift must be in [{SHIFT_MIN}, {SHIFT_MAX}]")


# --------------------------------------------------------------------------
# requantisation: single-rounding MultiplyByQuantizedMultiplier
# --------------------------------------------------------------------------

# Elements per block in the blocked MBQM loop: keeps the int64 temporaries
# inside L2 cache, which is ~3x faster than whole-array passes.
_BLOCK = 1 << 15


def _mbqm_plan(m: np.ndarray, s: np.ndarray):
    """Per-channel constants: total_shift = 31 - shift (1..62) and the rounding
    constant 2**(total_shift - 1).  Only shift > 0 (total_shift <= 30) can
    leave the int32 range (shift <= 0: |x*M| / 2**31 < 2**31 - 1), so the
    saturation is skipped when no channel has one."""
    m, s = np.broadcast_arrays(m, s)  # so x*M already has the in-place ops' shape
    ts = 31 - s
    return m, ts, np.int64(1) << (ts - 1), bool(np.any(s > 0))


def _mbqm_apply(x: np.ndarray, plan) -> np.ndarray:
    """floor((x*M + 2**(ts-1)) / 2**ts), saturated: ONE rounding, half toward +inf.

    |x*M| < 2**62 and the constant is <= 2**61, so the sum fits int64; numpy's
    >> on int64 is an arithmetic (flooring) shift.
    """
    m, ts, rnd, may_saturate = plan
    r = np.asarray(x * m)  # 0-d inputs give a scalar; in-place ops need an array
    r += rnd
    r >>= ts
    if may_saturate:
        np.clip(r, INT32_MIN, INT32_MAX, out=r)
    return r


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(x, M, shift) ~= x * M * 2**shift / 2**31.

    Single-rounding form (TFLite's TFLITE_SINGLE_ROUNDING reference kernel):
    saturate_int32((x*M + 2**(30 - shift)) >> (31 - shift)), arithmetic shift,
    i.e. the exact product rounded once, half toward +inf.  multiplier/shift
    may be scalars or per-channel arrays broadcasting against x.
    """
    return requantize_raw(x, multiplier, shift)


def requantize_raw(x, multiplier, shift, zp: int = 0, lo: int | None = None,
                   hi: int | None = None, dtype=np.int64) -> np.ndarray:
    """MBQM(x, M, shift) + zp, optionally clamped to [lo, hi], cast to dtype.

    One cache-blocked loop so the int64 temporaries stay in L2.
    """
    narrow = np.asarray(x).dtype in (np.int8, np.int16, np.int32)
    x = _i64(x)
    m = _i64(multiplier)
    s = _i64(shift)
    if not narrow:  # int32-or-narrower inputs are in range by type
        _check_int32_range(x, "requantisation input")
    _check_multiplier(m, s)
    plan = _mbqm_plan(m, s)

    def finish(v: np.ndarray) -> np.ndarray:
        if zp:
            v += zp
        if lo is not None:
            np.clip(v, lo, hi, out=v)
        return v

    # Blocked over rows when M/shift are scalars or vectors along the last axis.
    if x.ndim >= 1 and x.size > _BLOCK and all(
            a.ndim == 0 or (a.ndim == 1 and a.shape[0] in (1, x.shape[-1])) for a in (m, s)):
        flat = x.reshape(-1, x.shape[-1])
        out = np.empty(flat.shape, dtype)
        rows = max(1, _BLOCK // max(1, flat.shape[1]))
        for r in range(0, flat.shape[0], rows):
            out[r:r + rows] = finish(_mbqm_apply(flat[r:r + rows], plan))
        return out.reshape(x.shape)
    return np.asarray(finish(np.asarray(_mbqm_apply(x, plan)))).astype(dtype)


# Short alias used by the ops.
mbqm = multiply_by_quantized_multiplier


# --------------------------------------------------------------------------
# multiplier quantisation
# --------------------------------------------------------------------------

def _round_half_away(v: float) -> int:
    # TfLiteRound is std::round (half away from zero); Python's round() is
    # half-to-even, so it must not be used here.  v >= 0 in our callers.
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= M * 2**shift / 2**31, M a Q31 value.

    real == 0 -> (0, 0); tiny reals whose shift would be < -31 -> (0, 0)
    (as TFLite); shift > 30 is unrepresentable -> GoldenError.
    """
    try:
        real = float(real)
    except (TypeError, ValueError) as exc:
        raise GoldenError(f"multiplier must be a real number: {real!r}") from exc
    if not math.isfinite(real):
        raise GoldenError(f"multiplier must be finite: {real}")
    if real < 0:
        raise GoldenError(f"multiplier must be >= 0: {real}")
    if real == 0:
        return 0, 0
    frac, shift = math.frexp(real)  # real = frac * 2**shift, frac in [0.5, 1)
    # frac * 2**31 is exact in float64 (power-of-two scaling), so is +0.5.
    q = _round_half_away(frac * (1 << 31))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < SHIFT_MIN:
        return 0, 0
    if shift > SHIFT_MAX:
        raise GoldenError(f"multiplier {real} too large (shift {shift} > {SHIFT_MAX})")
    return int(q), int(shift)


def quantize_multiplier_array(reals) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised quantize_multiplier for per-channel arrays (int64 M, shift)."""
    r = np.asarray(reals, dtype=np.float64)
    if not np.all(np.isfinite(r)):
        raise GoldenError("multipliers must be finite")
    if np.any(r < 0):
        raise GoldenError("multipliers must be >= 0")
    frac, shift = np.frexp(r)
    q = np.floor(frac * 2.0**31 + 0.5).astype(np.int64)  # half away (frac >= 0)
    shift = shift.astype(np.int64)
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    shift = np.where(carry, shift + 1, shift)
    zero = (r == 0) | (shift < SHIFT_MIN)
    q = np.where(zero, 0, q)
    shift = np.where(zero, 0, shift)
    if shift.size and shift.max() > SHIFT_MAX:
        raise GoldenError(f"multiplier too large (shift > {SHIFT_MAX})")
    return q, shift


def dequantize_multiplier(multiplier, shift) -> np.ndarray:
    """The real value M * 2**shift / 2**31 that (M, shift) encodes (float64)."""
    return np.asarray(multiplier, dtype=np.float64) * np.exp2(
        np.asarray(shift, dtype=np.float64) - 31
    )


# --------------------------------------------------------------------------
# activation bounds
# --------------------------------------------------------------------------

def _check_zp(zp: int, what: str = "zero point") -> int:
    if int(zp) != zp or not INT8_MIN <= zp <= INT8_MAX:
        raise GoldenError(f"{what} must be an int in [-128, 127]: {zp}")
    return int(zp)


def check_act_bounds(act_min: int, act_max: int) -> tuple[int, int]:
    """Validate fused-activation clamp bounds: -128 <= act_min <= act_max <= 127."""
    if int(act_min) != act_min or int(act_max) != act_max:
        raise GoldenError("activation bounds must be integers")
    if not INT8_MIN <= act_min <= act_max <= INT8_MAX:
        raise GoldenError(
            f"need -128 <= act_min <= act_max <= 127, got {act_min}, {act_max}"
        )
    return int(act_min), int(act_max)


def relu_bounds(out_zp: int) -> tuple[int, int]:
    """Clamp bounds implementing ReLU in the output's quantised domain."""
    return _check_zp(out_zp, "out_zp"), INT8_MAX


def relu6_bounds(out_scale: float, out_zp: int) -> tuple[int, int]:
    """Clamp bounds implementing ReLU6: [zp, min(127, zp + round(6 / scale))]."""
    zp = _check_zp(out_zp, "out_zp")
    if not (math.isfinite(out_scale) and out_scale > 0):
        raise GoldenError(f"out_scale must be finite and > 0: {out_scale}")
    return zp, min(INT8_MAX, zp + _round_half_away(6.0 / out_scale))


def activation_bounds(kind: str | None, out_scale: float, out_zp: int) -> tuple[int, int]:
    """(act_min, act_max) for kind in {None, 'none', 'relu', 'relu6'}."""
    if kind in (None, "none"):
        _check_zp(out_zp, "out_zp")
        return INT8_MIN, INT8_MAX
    if kind == "relu":
        return relu_bounds(out_zp)
    if kind == "relu6":
        return relu6_bounds(out_scale, out_zp)
    raise GoldenError(f"unknown activation {kind!r}")

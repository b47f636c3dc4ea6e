"""Numpy reference ops of the NPU: bit-exact by definition (docs/arithmetic.md).

Layouts: activations NHWC int8, conv weights OHWI int8 (I = C_in / groups),
FC weights (N_out, K) int8, bias int32, per-channel multipliers along the
output-channel (last) axis.

Speed: no Python loop per pixel or MAC.  The reference paths run conv and
matmul as float64 BLAS GEMMs on the integer values, which is exact (see
_check_exact_k).  conv2d and fully_connected take faster paths with the same
results: float32 GEMMs under exactness bounds, float64 requantisation under an
exactness condition, int64 where neither holds (see "fast exact paths"); add
looks large tensors up in a table of its own formula.
"""

from __future__ import annotations

import numpy as np

from .arith import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    GoldenError,
    _check_zp,
    check_act_bounds,
    mbqm,
    quantize_multiplier,
    quantize_multiplier_array,
    requantize_raw,
)

# TFLite's int8 Add pre-shifts the zero-point-corrected inputs by 20 bits so
# the < 1 input multipliers keep ~20 bits of precision.
ADD_LEFT_SHIFT = 20

# Every |operand product| is < 2**16 ((x - zx) and (w - zw) are both within
# [-255, 255]), so with K < 2**37 every partial sum is an integer < 2**53 and
# float64 adds it exactly, in any order BLAS chooses (FMA included).
_MAX_EXACT_K = 2**37

# Upper bound on float64 elements of one im2col block (~128 MiB).
_IM2COL_BLOCK = 1 << 24


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------

def _int8(a, name: str, ndim: int | None = None) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.int8:
        raise GoldenError(f"{name} must be int8, got {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise GoldenError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return a


def _bias(bias, n: int) -> np.ndarray | None:
    if bias is None:
        return None
    b = np.asarray(bias)
    if b.dtype != np.int32:
        raise GoldenError(f"bias must be int32, got {b.dtype}")
    if b.shape != (n,):
        raise GoldenError(f"bias must have shape ({n},), got {b.shape}")
    return b.astype(np.int64)


def _pair(v, name: str) -> tuple[int, int]:
    t = (v, v) if np.isscalar(v) else tuple(v)
    if len(t) != 2 or any(int(e) != e or e < 1 for e in t):
        raise GoldenError(f"{name} must be a positive int or a pair of them: {v!r}")
    return int(t[0]), int(t[1])


def _pads(p) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from an int or a 4-tuple."""
    t = (p,) * 4 if np.isscalar(p) else tuple(p)
    if len(t) != 4 or any(int(e) != e or e < 0 for e in t):
        raise GoldenError(f"pads must be an int >= 0 or (top, left, bottom, right): {p!r}")
    return tuple(int(e) for e in t)  # type: ignore[return-value]


def _out_size(n: int, k: int, s: int, p0: int, p1: int, what: str) -> int:
    o = (n + p0 + p1 - k) // s + 1
    if n + p0 + p1 < k or o < 1:
        raise GoldenError(f"{what}: kernel {k} larger than padded input {n + p0 + p1}")
    return o


def _check_exact_k(k: int) -> None:
    if k >= _MAX_EXACT_K:
        raise GoldenError(f"reduction length {k} >= 2**37: float64 GEMM would not be exact")


def _requant_params(multiplier, shift, n: int) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(multiplier)
    s = np.asarray(shift)
    for a, what in ((m, "multiplier"), (s, "shift")):
        if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != n):
            raise GoldenError(f"{what} must be a scalar or shape ({n},), got {a.shape}")
    return m, s


# --------------------------------------------------------------------------
# requantisation
# --------------------------------------------------------------------------

def requantize(acc, multiplier, shift, out_zp: int, act_min: int = INT8_MIN,
               act_max: int = INT8_MAX) -> np.ndarray:
    """int32 accumulator -> int8: clamp(MBQM(acc, M, shift) + out_zp, act_min, act_max).

    multiplier/shift are scalars or per-channel along acc's last axis.  The
    zero-point add is done in int64, so it cannot wrap before the clamp.
    """
    out_zp = _check_zp(out_zp, "out_zp")
    act_min, act_max = check_act_bounds(act_min, act_max)
    return requantize_raw(acc, multiplier, shift, out_zp, act_min, act_max, np.int8)


def conv_requant_params(in_scale: float, w_scales, out_scale: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (M, shift) for real = in_scale * w_scale[c] / out_scale (in float64)."""
    w = np.atleast_1d(np.asarray(w_scales, dtype=np.float64))
    if not (np.all(w > 0) and in_scale > 0 and out_scale > 0):
        raise GoldenError("scales must be > 0")
    return quantize_multiplier_array(float(in_scale) * w / float(out_scale))


# --------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------

def _wrap32(acc_f64: np.ndarray) -> np.ndarray:
    """Exact-integer float64 accumulator -> int32 with two's-complement wrap.

    float64 -> int64 is exact (|v| < 2**53); numpy's int64 -> int32 cast keeps
    the low 32 bits, i.e. wraps like the hardware accumulator (the tests
    check it against the explicit arith.wrap_int32).
    """
    return acc_f64.astype(np.int64).astype(np.int32)


def conv2d_acc(x, w, x_zp: int = 0, *, stride=1, pads=0, groups: int = 1) -> np.ndarray:
    """int32 accumulator of a 2-D convolution (dilation 1), before bias/requant.

    x: (N, H, W, C_in) int8 NHWC; w: (C_out, KH, KW, C_in/groups) int8 OHWI.
    Returns acc[n, oh, ow, co] = sum (x - x_zp) * w, wrapped to int32, as an
    int32 array.  Padded pixels carry x_zp, i.e. contribute 0.
    """
    return _wrap32(_conv_acc_f64(x, w, x_zp, stride, pads, groups))


def _conv_acc_f64(x, w, x_zp, stride, pads, groups) -> np.ndarray:
    """conv2d_acc before the int32 wrap, as exact integers in float64."""
    x = _int8(x, "x", 4)
    w = _int8(w, "w", 4)
    x_zp = _check_zp(x_zp, "x_zp")
    sh, sw = _pair(stride, "stride")
    pt, pl, pb, pr = _pads(pads)
    n, h, wd, cin = x.shape
    cout, kh, kw, cin_g = w.shape
    if int(groups) != groups or groups < 1:
        raise GoldenError(f"groups must be a positive int: {groups}")
    if cin % groups or cout % groups:
        raise GoldenError(f"groups={groups} must divide C_in={cin} and C_out={cout}")
    if cin_g != cin // groups:
        raise GoldenError(f"weight I dim {cin_g} != C_in/groups = {cin // groups}")
    oh = _out_size(h, kh, sh, pt, pb, "conv2d height")
    ow = _out_size(wd, kw, sw, pl, pr, "conv2d width")
    k = kh * kw * cin_g
    _check_exact_k(k)

    # Centre then zero-pad: identical to padding the raw input with x_zp.
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, cin), np.float64)
    xp[:, pt:pt + h, pl:pl + wd, :] = x
    xp[:, pt:pt + h, pl:pl + wd, :] -= x_zp
    wf = w.astype(np.float64)
    g = groups
    cout_g = cout // g

    def window(i: int, j: int, r0: int, r1: int) -> np.ndarray:
        # Input pixels seen by kernel tap (i, j) for output rows [r0, r1).
        return xp[:, i + r0 * sh:i + (r1 - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]

    if cin_g == 1 and g > 1:
        # Depthwise (optionally with channel multiplier): a GEMM would have
        # K = 1, so accumulate taps element-wise; loop over (kh, kw) only.
        src = np.arange(cout) // cout_g  # input channel feeding each output channel
        acc = np.zeros((n, oh, ow, cout), np.float64)
        for i in range(kh):
            for j in range(kw):
                win = window(i, j, 0, oh)
                acc += (win if cout_g == 1 else win[..., src]) * wf[:, i, j, 0]
    else:
        # im2col (filled per tap) + one GEMM per block of output rows.
        wmat = wf.reshape(g, cout_g, k).transpose(0, 2, 1)  # (G, K, cout_g)
        rows = max(1, _IM2COL_BLOCK // max(1, n * ow * kh * kw * cin))
        acc = np.empty((n, oh, ow, cout), np.float64)
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            cols = np.empty((n, r1 - r0, ow, kh, kw, cin), np.float64)
            for i in range(kh):
                for j in range(kw):
                    cols[:, :, :, i, j, :] = window(i, j, r0, r1)
            p = n * (r1 - r0) * ow
            if g == 1:
                blk = cols.reshape(p, k) @ wmat[0]
            else:
                cg = cols.reshape(p, kh * kw, g, cin_g).transpose(2, 0, 1, 3).reshape(g, p, k)
                blk = np.matmul(cg, wmat).transpose(1, 0, 2).reshape(p, cout)
            acc[:, r0:r1] = blk.reshape(n, r1 - r0, ow, cout)
    return acc


def conv2d(x, w, bias, *, x_zp: int, multiplier, shift, out_zp: int, stride=1,
           pads=0, groups: int = 1, act_min: int = INT8_MIN,
           act_max: int = INT8_MAX) -> np.ndarray:
    """Quantised conv2d: clamp(MBQM(acc + bias, M[c], shift[c]) + out_zp).

    bias: (C_out,) int32 or None; multiplier/shift: scalar or (C_out,).
    Returns (N, OH, OW, C_out) int8.
    """
    g = _conv_gemm(x, w, x_zp, stride, pads, groups)
    if g is None:
        acc = _conv_acc_f64(x, w, x_zp, stride, pads, groups)
    else:
        y = _requant_fast(g, bias, multiplier, shift, out_zp, act_min, act_max)
        if y is not None:
            return y
        acc = g.product().astype(np.float64)
    return _bias_requant(acc, bias, multiplier, shift, out_zp, act_min, act_max)


# --------------------------------------------------------------------------
# fast exact paths (performance only: same results as the reference paths)
# --------------------------------------------------------------------------

_F32_EXACT = float(2**24)  # float32 holds every integer of magnitude <= 2**24


class _Weights:
    """What the fast GEMM derives from one int8 weight tensor (C_out, taps, C_in):
    the float32 matrix as (K, C_out), contiguous (the layout BLAS multiplies
    fastest here, also for the few-row GEMMs of the last stages, whose weights
    come cold from memory), and per output channel sum_k |w| (exact, float64);
    |w| as float32, (C_out, taps, C_in) and summed over taps (C_out, C_in), only
    when a tighter bound is needed."""

    def __init__(self, w: np.ndarray):
        self.shape = w.shape
        w2 = w.reshape(w.shape[0], -1)
        self.f32t = np.ascontiguousarray(w2.T, dtype=np.float32)
        self.abs_sum = np.abs(w2, dtype=np.int32).sum(axis=1).astype(np.float64)
        self._abs = None
        self.nbytes = 2 * self.f32t.nbytes  # with abs, counted from the start

    @property
    def abs(self) -> np.ndarray:
        if self._abs is None:
            a = np.ascontiguousarray(np.abs(self.f32t.T)).reshape(self.shape)  # C order: reshapes stay views
            # summed over taps: integers <= taps * 128, exact in float32 (taps <= 512 used)
            self._abs = (a, a.sum(axis=1) if self.shape[1] > 1 else a[:, 0])
        return self._abs


# Derived weights of recently used tensors: id(w) -> (copy of w, _Weights).  A hit
# needs the stored copy to equal w (an id can be reused, an array rewritten), so
# it always equals what w gives now.  LRU, bounded in bytes (ResNet-50: ~230 MB).
_WMEMO: dict[int, tuple[np.ndarray, _Weights]] = {}
_WMEMO_MAX_BYTES = 512 << 20
_wmemo_bytes = 0


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal int8 arrays of the same shape (compared 8 bytes at a time when possible)."""
    if a.flags.c_contiguous and b.flags.c_contiguous and a.size % 8 == 0:
        a, b = a.reshape(-1).view(np.uint64), b.reshape(-1).view(np.uint64)
    return bool(np.array_equal(a, b))


def _weights(w: np.ndarray, shape: tuple[int, int, int]) -> _Weights:
    """_Weights of int8 w viewed as shape (C_out, taps, C_in)."""
    global _wmemo_bytes
    key = id(w)
    hit = _WMEMO.pop(key, None)
    if hit is not None:
        _wmemo_bytes -= hit[0].nbytes + hit[1].nbytes
        if hit[0].shape != w.shape or not _same(hit[0], w):
            hit = None
    if hit is None:
        hit = (w.copy(), _Weights(w.reshape(shape)))
    _WMEMO[key] = hit  # most recently used last
    _wmemo_bytes += hit[0].nbytes + hit[1].nbytes
    while _wmemo_bytes > _WMEMO_MAX_BYTES and len(_WMEMO) > 1:
        c, d = _WMEMO.pop(next(iter(_WMEMO)))
        _wmemo_bytes -= c.nbytes + d.nbytes
    return hit[1]


def _gemm_chunks(x: np.ndarray, x_zp: int, wts: _Weights) -> list[tuple[int, int]] | None:
    """Column ranges of the im2col matrix (columns k = (tap, input channel ci), in
    weight order) whose float32 GEMMs are exact; one range: the whole GEMM; None:
    run it in float64 (exact as K < 2**37 keeps every sum < 2**53).

    With a_c = max |x - x_zp| over the pixels of channel ci (padding adds 0), every
    partial sum of output c, in any order or blocking BLAS picks (FMA included), is
    bounded by S_c = sum_k a_c |w[c, k]|: a range whose S_c is <= 2**24 for every c
    only forms integers float32 holds exactly.  Ranges are whole taps."""
    cout, taps, cin = wts.shape
    k = taps * cin
    if not x.size:
        return [(0, k)]
    # Cheap bound first: S_c <= max(a) * sum_k |w[c, k]| (exact integers < 2**53).
    amax = max(int(x.max()) - x_zp, x_zp - int(x.min()))
    if amax * wts.abs_sum.max(initial=0.0) <= _F32_EXACT:
        return [(0, k)]
    if cin >= 1 << 21:
        return None
    # S_c (per tap) from a float32 mat-vec: the terms are exact non-negative integers,
    # so the computed sum is >= (1 - 2 cin u) * the exact one (u = 2**-24, needs
    # cin u < 1/4); dividing by that, a further 1 + 2**-20 (the float64 rounding of
    # that division) and rounding up to an integer give integer upper bounds, whose
    # cumulative sums and their differences are then exact in float64.
    xf = x.reshape(-1, cin)
    a_c = np.maximum(xf.max(axis=0).astype(np.float32) - x_zp, x_zp - xf.min(axis=0).astype(np.float32))
    w_abs, w_abs_taps = wts.abs
    fudge = (1.0 + 2.0**-20) / (1.0 - 2 * cin * 2.0**-24)
    if 1 < taps <= 512:  # S_c itself from |w| summed over taps: terms <= 512 * 128 * 255 < 2**24
        if np.ceil((w_abs_taps @ a_c).astype(np.float64) * fudge).max(initial=0.0) <= _F32_EXACT:
            return [(0, k)]
    per_tap = (w_abs.reshape(cout * taps, cin) @ a_c).astype(np.float64)
    per_tap = np.ceil(per_tap * fudge).reshape(cout, taps)
    if per_tap.max(initial=0.0) > _F32_EXACT:
        return None  # one tap alone may leave float32's exact integers
    cum = np.cumsum(per_tap, axis=1)
    # Greedy: each range ends before the tap that would take some channel's sum
    # above 2**24.
    chunks = []
    t0 = 0
    while t0 < taps:
        base = cum[:, t0 - 1:t0] if t0 else 0.0
        over = ((cum[:, t0:] - base) > _F32_EXACT).any(axis=0)
        t1 = t0 + (int(np.argmax(over)) if over.any() else taps - t0)
        chunks.append((t0 * cin, t1 * cin))
        t0 = t1
    return chunks


class _Gemm:
    """cols (P, K) float32 (x - x_zp, im2col) @ W.T as exact integers, computed by
    row blocks (so requantisation can follow each block while it is in cache).
    cols is a 2-D array, or the im2col window view (OH, OW, KH, KW, C_in) of one
    image, copied a block of output rows at a time (so the copy stays in cache
    for its GEMM); then block_rows is a whole number of output rows.  shape: the
    product's shape, channels last."""

    def __init__(self, cols: np.ndarray, x: np.ndarray, x_zp: int, wts: _Weights, shape: tuple):
        self.cols, self.wt, self.shape = cols, wts.f32t, shape
        self.p = int(np.prod(shape[:-1]))
        self.block_rows = -(-1024 // cols.shape[1]) * cols.shape[1] if cols.ndim == 5 else 1024
        self.chunks = _gemm_chunks(x, x_zp, wts)
        if self.chunks is None:
            self.wt64 = self.wt.astype(np.float64)

    def _rows(self, r0: int, r1: int) -> np.ndarray:
        if self.cols.ndim == 2:
            return self.cols[r0:r1]
        ow = self.cols.shape[1]
        h0, h1 = r0 // ow, -(-r1 // ow)
        c = self.cols[h0:h1].reshape((h1 - h0) * ow, self.wt.shape[0])
        return c[r0 - h0 * ow:r1 - h0 * ow]

    def block(self, r0: int, r1: int, out: np.ndarray) -> np.ndarray:
        """Rows [r0, r1) of the product; out: a float32 (r1 - r0, C_out) buffer
        that may (or may not) receive them."""
        c = self._rows(r0, r1)
        if self.chunks is None:
            return c.astype(np.float64) @ self.wt64
        if len(self.chunks) == 1:
            return np.matmul(c, self.wt, out=out)
        acc = None
        for k0, k1 in self.chunks:  # float64 sums of exact float32 GEMMs
            part = c[:, k0:k1] @ self.wt[k0:k1]
            acc = part.astype(np.float64) if acc is None else np.add(acc, part, out=acc)
        return acc

    def product(self) -> np.ndarray:
        return self.block(0, self.p, np.empty((self.p, self.wt.shape[1]), np.float32)).reshape(self.shape)


def _conv_gemm(x, w, x_zp, stride, pads, groups) -> _Gemm | None:
    """conv2d_acc before the int32 wrap as a _Gemm for a groups == 1 conv, or None
    (then the reference path runs).  im2col is one sliding_window_view copy (none
    for a 1x1 stride-1 conv)."""
    x = _int8(x, "x", 4)
    w = _int8(w, "w", 4)
    if int(groups) != groups or groups != 1 or w.shape[3] != x.shape[3]:
        return None  # grouped / depthwise / invalid: the reference path (and its errors)
    x_zp = _check_zp(x_zp, "x_zp")
    sh, sw = _pair(stride, "stride")
    pt, pl, pb, pr = _pads(pads)
    n, h, wd, cin = x.shape
    cout, kh, kw, _ = w.shape
    oh = _out_size(h, kh, sh, pt, pb, "conv2d height")
    ow = _out_size(wd, kw, sw, pl, pr, "conv2d width")
    k = kh * kw * cin
    _check_exact_k(k)
    if n * oh * ow * k > 4 * _IM2COL_BLOCK:
        return None  # huge im2col: the row-blocked reference path bounds memory
    # Centre then zero-pad (== padding the raw input with x_zp); float32 holds the
    # integers in [-255, 255] exactly.
    if kh == kw == 1 and not (pt or pl or pb or pr):  # only the pixels the conv reads
        xs = x[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, :]
        cols = np.subtract(xs, np.float32(x_zp), dtype=np.float32).reshape(n * oh * ow, cin)
    elif pt or pl or pb or pr:
        xp = np.zeros((n, h + pt + pb, wd + pl + pr, cin), np.float32)
        np.subtract(x, np.float32(x_zp), out=xp[:, pt:pt + h, pl:pl + wd, :], dtype=np.float32)
    else:
        xp = np.subtract(x, np.float32(x_zp), dtype=np.float32)
    if kh == kw == 1 and (pt or pl or pb or pr):
        cols = xp[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, :].reshape(n * oh * ow, cin)
    elif kh > 1 or kw > 1:
        win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
        win = win[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]  # (n, oh, ow, cin, kh, kw)
        cols = win.transpose(0, 1, 2, 4, 5, 3)  # (tap, cin) = OHWI order
        cols = cols[0] if n == 1 and oh * ow > 2048 else cols.reshape(n * oh * ow, k)
    return _Gemm(cols, x, x_zp, _weights(w, (cout, kh * kw, cin)), (n, oh, ow, cout))


# _requant_consts results by parameter values (one entry per conv/FC layer).
_RQ_CONSTS: dict[tuple, tuple | None] = {}
_RQ_CONSTS_MAX = 4096


def _requant_consts(bias, multiplier, shift, out_zp, act_min, act_max, nch):
    """_requant_fast's per-channel constants (c, e, M, limit, |bias|, amax_ok,
    act_min + 128, act_max + 128) after the reference path's checks (raising its
    errors), or None when the parameters are invalid (then the reference path
    raises); memoised by the parameters' values."""
    try:
        key = (nch, out_zp, act_min, act_max) + tuple(
            None if a is None else (np.asarray(a).dtype.str, np.shape(a), np.asarray(a).tobytes())
            for a in (bias, multiplier, shift))
        if key in _RQ_CONSTS:
            return _RQ_CONSTS[key]
    except TypeError:  # unhashable scalars: no memo
        key = None
    b = _bias(bias, nch)
    m, s = _requant_params(multiplier, shift, nch)
    out_zp = _check_zp(out_zp, "out_zp")
    act_min, act_max = check_act_bounds(act_min, act_max)
    mi = np.broadcast_to(np.asarray(m), (nch,))
    si = np.broadcast_to(np.asarray(s), (nch,))
    consts = None
    if (np.issubdtype(mi.dtype, np.integer) and np.issubdtype(si.dtype, np.integer)
            and np.all((mi == 0) | ((mi >= 2**30) & (mi <= 2**31 - 1))) and np.all((si >= -31) & (si <= 30))):
        mi, si = mi.astype(np.int64), si.astype(np.int64)
        bb = np.zeros(nch, np.float64) if b is None else b.astype(np.float64)
        ts = (31 - si).astype(np.float64)
        c = mi * np.exp2(-ts)  # exact: an integer < 2**31 times a power of two
        e = bb * c + (0.5 + out_zp + 128)  # exact where the condition holds (|bias| <= U)
        # The condition in float64 with a 2x margin (the float64 evaluation of these
        # positive terms errs by far less than a factor 2): U*M <= limit per channel.
        limit = 2.0**52 - np.exp2(ts - 1) - 256 * np.exp2(ts)
        babs = np.abs(bb)
        # The same condition for a block's max |acc| over all channels, amax: amax <
        # amax_ok implies it for every channel (rounding here is covered by the margin).
        with np.errstate(divide="ignore"):
            amax_ok = min(2.0**31 - babs.max(initial=0.0), float(np.min(limit / mi, initial=np.inf) - babs.max(initial=0.0)))
        consts = (c, e, mi, limit, babs, amax_ok, act_min + 128, act_max + 128)
    if key is not None:
        if len(_RQ_CONSTS) >= _RQ_CONSTS_MAX:
            _RQ_CONSTS.clear()
        _RQ_CONSTS[key] = consts
    return consts


def _requant_fast(g: _Gemm, bias, multiplier, shift, out_zp, act_min, act_max):
    """g's product + bias, requantised and clamped, in float64 by cache-sized row
    blocks, or None when the parameters are invalid or a block fails the
    exactness condition below (then the int64 reference path runs, and raises
    its errors).

    With A = acc + bias (integer, |A| <= U = max |acc| of the channel in the block
    + |bias|), M, ts = 31 - shift:
      reference: clamp(floor((A*M + 2**(ts-1)) / 2**ts) [saturated] + zp, lo, hi)
    Here: y = acc * c + e with c = M * 2**-ts and e = bias * c + 0.5 + zp + 128,
    clipped to [lo + 128, hi + 128] and cast to uint8 (truncation == floor there,
    as y >= 0), then - 128 as a XOR of the top bit.  If U < 2**31, A is its own
    int32 wrap.  If U*M + 2**(ts-1) + 256 * 2**ts <= 2**53, then acc*c, e and y are
    exact values (each is an integer of magnitude <= 2**53 times 2**-ts: c is M
    scaled by a power of two, so a product or sum whose exact value is such a
    number is representable and float64 returns it unrounded), y = (A*M + 2**(ts-1)
    + (zp + 128) * 2**ts) / 2**ts exactly, and floor(y) = the reference's r + zp +
    128 (zp an integer).  The int32 saturation of r is dropped: [lo - zp, hi - zp]
    lies inside the int32 range, so saturating before the clamp changes nothing."""
    nch = g.shape[-1]
    consts = _requant_consts(bias, multiplier, shift, out_zp, act_min, act_max, nch)
    if consts is None:
        return None
    c, e, mi, limit, babs, amax_ok, lo, hi = consts
    p = g.p
    if not p * nch:
        return np.zeros(g.shape, np.int8)
    out = np.empty((p, nch), np.uint8)
    rows = max(1, (1 << 16) // nch)  # requantisation block: ~0.5 MB of float64
    grows = g.block_rows  # GEMM block, >= 1024 rows
    buf = np.empty((min(grows, p), nch), np.float32)
    y = np.empty((min(rows, p), nch), np.float64)
    for g0 in range(0, p, grows):
        acc = g.block(g0, min(p, g0 + grows), buf[:min(grows, p - g0)])
        for r0 in range(0, acc.shape[0], rows):
            a = acc[r0:r0 + rows]
            yb = y[:a.shape[0]]
            amax = max(float(np.maximum.reduce(a, axis=None)), -float(np.minimum.reduce(a, axis=None)))
            if not amax < amax_ok:
                u = np.maximum(a.max(axis=0), -a.min(axis=0)).astype(np.float64) + babs
                if u.max() >= 2.0**31 or np.any(u * mi > limit):
                    return None
            yb[...] = a  # (a cast copy then a float64 product beats one mixed-type multiply)
            yb *= c
            yb += e
            np.clip(yb, lo, hi, out=yb)
            out[g0 + r0:g0 + r0 + a.shape[0]] = yb
    out ^= 0x80
    return out.view(np.int8).reshape(g.shape)


def _bias_requant(acc_f64, bias, multiplier, shift, out_zp, act_min, act_max):
    # Bias added in float64 (still exact: |acc| < 2**53, |bias| < 2**31), then
    # one wrap: wrap(wrap(acc) + bias) == wrap(acc + bias) in modular arithmetic.
    n = acc_f64.shape[-1]
    b = _bias(bias, n)
    m, s = _requant_params(multiplier, shift, n)
    if b is not None:
        acc_f64 += b
    return requantize(_wrap32(acc_f64), m, s, out_zp, act_min, act_max)


# --------------------------------------------------------------------------
# matmul / fully connected
# --------------------------------------------------------------------------

def matmul_acc(a, b, a_zp: int = 0, b_zp: int = 0) -> np.ndarray:
    """int32 accumulator sum_k (a - a_zp)[m, k] * (b - b_zp)[k, n], wrapped.

    a: (M, K) int8, b: (K, N) int8 -> (M, N) int32.
    """
    return _wrap32(_matmul_f64(a, b, a_zp, b_zp))


def _matmul_f64(a, b, a_zp, b_zp) -> np.ndarray:
    a = _int8(a, "a", 2)
    b = _int8(b, "b", 2)
    a_zp = _check_zp(a_zp, "a_zp")
    b_zp = _check_zp(b_zp, "b_zp")
    if a.shape[1] != b.shape[0]:
        raise GoldenError(f"matmul inner dims differ: {a.shape} @ {b.shape}")
    _check_exact_k(a.shape[1])
    af = a.astype(np.float64) - a_zp
    bf = b.astype(np.float64) - b_zp
    return af @ bf


def matmul(a, b, *, a_zp: int, b_zp: int = 0, multiplier, shift, out_zp: int,
           bias=None, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Quantised (M, K) @ (K, N) -> (M, N) int8; multiplier/shift scalar or (N,)."""
    acc = _matmul_f64(a, b, a_zp, b_zp)
    return _bias_requant(acc, bias, multiplier, shift, out_zp, act_min, act_max)


def fully_connected_acc(x, w, x_zp: int = 0) -> np.ndarray:
    """int32 accumulator of FC: x (B, K) int8, w (N_out, K) int8 -> (B, N_out)."""
    return _wrap32(_fc_f64(x, w, x_zp))


def _fc_f64(x, w, x_zp) -> np.ndarray:
    x = _int8(x, "x", 2)
    w = _int8(w, "w", 2)
    if x.shape[1] != w.shape[1]:
        raise GoldenError(f"FC: x has K={x.shape[1]}, w has K={w.shape[1]}")
    return _matmul_f64(x, w.T, x_zp, 0)


def fully_connected(x, w, bias, *, x_zp: int, multiplier, shift, out_zp: int,
                    act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Quantised FC: x (B, K) int8, w (N_out, K) int8 per-channel -> (B, N_out) int8."""
    g = _fc_gemm(x, w, x_zp)
    if g is None:
        acc = _fc_f64(x, w, x_zp)
    else:
        y = _requant_fast(g, bias, multiplier, shift, out_zp, act_min, act_max)
        if y is not None:
            return y
        acc = g.product().astype(np.float64)
    return _bias_requant(acc, bias, multiplier, shift, out_zp, act_min, act_max)


def _fc_gemm(x, w, x_zp) -> _Gemm | None:
    """_fc_f64's product as a _Gemm (a 1x1 conv on one pixel), or None on invalid
    input (then _fc_f64 raises)."""
    x = _int8(x, "x", 2)
    w = _int8(w, "w", 2)
    if x.shape[1] != w.shape[1]:
        return None
    x_zp = _check_zp(x_zp, "a_zp")  # _matmul_f64's check and message
    _check_exact_k(x.shape[1])
    cols = np.subtract(x, np.float32(x_zp), dtype=np.float32)
    return _Gemm(cols, x, x_zp, _weights(w, (w.shape[0], 1, w.shape[1])), (x.shape[0], w.shape[0]))


# --------------------------------------------------------------------------
# element-wise add
# --------------------------------------------------------------------------

def add_params(a_scale: float, b_scale: float, out_scale: float
               ) -> tuple[int, int, int, int, int, int]:
    """TFLite int8 Add parameters (a_M, a_shift, b_M, b_shift, out_M, out_shift)."""
    for s, what in ((a_scale, "a_scale"), (b_scale, "b_scale"), (out_scale, "out_scale")):
        if not (np.isfinite(s) and s > 0):
            raise GoldenError(f"{what} must be finite and > 0: {s}")
    twice_max = 2.0 * max(float(a_scale), float(b_scale))
    a_m, a_s = quantize_multiplier(float(a_scale) / twice_max)
    b_m, b_s = quantize_multiplier(float(b_scale) / twice_max)
    o_m, o_s = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(out_scale)))
    return a_m, a_s, b_m, b_s, o_m, o_s


# add() of large tensors looks its outputs up in a table of the formula below
# evaluated for all 256 x 256 input pairs; tables of recent parameter sets are kept.
_ADD_TABLE_MIN = 1 << 16
_ADD_BLOCK = 1 << 16
_ADD_TABLES: dict[tuple, np.ndarray | None] = {}
_ADD_TABLES_MAX = 64


def _add_table(a_zp, b_zp, out_zp, params, act_min, act_max) -> np.ndarray | None:
    """add()'s result for a = byte i >> 8, b = byte i & 255 (as int8) at index i,
    computed by the same formula; None when the parameters are not all integer
    scalars or some pair's sa + sb leaves the int32 range (then the direct formula
    runs: it raises only for the pairs present)."""
    if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in params):
        return None
    key = (a_zp, b_zp, out_zp, act_min, act_max) + tuple(int(p) for p in params)
    if key in _ADD_TABLES:
        return _ADD_TABLES[key]
    a_m, a_s, b_m, b_s, o_m, o_s = params
    v = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int64)  # byte -> int8 value
    sa = mbqm((v - a_zp) << ADD_LEFT_SHIFT, a_m, a_s)
    sb = mbqm((v - b_zp) << ADD_LEFT_SHIFT, b_m, b_s)
    table = None
    if sa.max() + sb.max() <= INT32_MAX and sa.min() + sb.min() >= INT32_MIN:
        t = mbqm(sa[:, None] + sb[None, :], o_m, o_s) + out_zp
        table = np.clip(t, act_min, act_max).astype(np.int8).ravel()
    if len(_ADD_TABLES) >= _ADD_TABLES_MAX:
        _ADD_TABLES.pop(next(iter(_ADD_TABLES)))
    _ADD_TABLES[key] = table
    return table


def add(a, b, *, a_zp: int, b_zp: int, out_zp: int, params,
        act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """TFLite reference int8 Add (numpy broadcasting between a and b).

    params = add_params(a_scale, b_scale, out_scale).
    """
    a = _int8(a, "a")
    b = _int8(b, "b")
    a_zp = _check_zp(a_zp, "a_zp")
    b_zp = _check_zp(b_zp, "b_zp")
    out_zp = _check_zp(out_zp, "out_zp")
    act_min, act_max = check_act_bounds(act_min, act_max)
    if len(params) != 6:
        raise GoldenError("params must be the 6-tuple from add_params")
    a_m, a_s, b_m, b_s, o_m, o_s = params
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError as exc:
        raise GoldenError(f"add: shapes {a.shape} and {b.shape} do not broadcast") from exc
    if np.prod(shape) >= _ADD_TABLE_MIN:
        table = _add_table(a_zp, b_zp, out_zp, params, act_min, act_max)
        if table is not None:
            a, b = (np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1).view(np.uint8) for v in (a, b))
            out = np.empty(a.size, np.int8)
            idx = np.empty(min(a.size, _ADD_BLOCK), np.uint16)  # cache-sized index blocks (uint16: ~25% faster)
            for i in range(0, a.size, _ADD_BLOCK):
                j = idx[:min(_ADD_BLOCK, a.size - i)]
                np.left_shift(a[i:i + _ADD_BLOCK], 8, out=j, dtype=np.uint16)
                j |= b[i:i + _ADD_BLOCK]
                np.take(table, j, out=out[i:i + _ADD_BLOCK])
            return out.reshape(shape)
    sa = mbqm((a.astype(np.int64) - a_zp) << ADD_LEFT_SHIFT, a_m, a_s)
    sb = mbqm((b.astype(np.int64) - b_zp) << ADD_LEFT_SHIFT, b_m, b_s)
    v = mbqm(sa + sb, o_m, o_s) + out_zp
    return np.clip(v, act_min, act_max).astype(np.int8)


# --------------------------------------------------------------------------
# pooling
# --------------------------------------------------------------------------

def _pool_geometry(x, kernel, stride, pads, what):
    x = _int8(x, "x", 4)
    kh, kw = _pair(kernel, "kernel")
    sh, sw = _pair(stride, "stride")
    pt, pl, pb, pr = _pads(pads)
    # A pad >= kernel would allow windows with no valid element.
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise GoldenError(f"{what}: pads {pads} must be smaller than kernel {(kh, kw)}")
    n, h, w, c = x.shape
    oh = _out_size(h, kh, sh, pt, pb, f"{what} height")
    ow = _out_size(w, kw, sw, pl, pr, f"{what} width")
    return x, (kh, kw), (sh, sw), (pt, pl, pb, pr), (oh, ow)


def max_pool(x, kernel, *, stride=1, pads=0) -> np.ndarray:
    """Max over the valid (non-padded) window elements; NHWC int8 -> int8.

    The output keeps the input's scale and zero point.
    """
    x, (kh, kw), (sh, sw), (pt, pl, pb, pr), (oh, ow) = _pool_geometry(
        x, kernel, stride, pads, "max_pool")
    n, h, w, c = x.shape
    # Pad with a value below every int8 so padding never wins; pads < kernel
    # guarantees each window holds at least one real pixel.
    xp = np.full((n, h + pt + pb, w + pl + pr, c), INT8_MIN - 1, np.int16)
    xp[:, pt:pt + h, pl:pl + w, :] = x
    out = np.full((n, oh, ow, c), INT8_MIN - 1, np.int16)
    for i in range(kh):
        for j in range(kw):
            np.maximum(out, xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :],
                       out=out)
    return out.astype(np.int8)


def _valid_counts(n: int, k: int, s: int, p0: int, o: int) -> np.ndarray:
    start = np.arange(o) * s - p0
    return np.minimum(start + k, n) - np.maximum(start, 0)


def avg_pool(x, kernel, *, stride=1, pads=0, in_zp: int, out_zp: int, multiplier,
             shift, count_include_pad: bool = False, act_min: int = INT8_MIN,
             act_max: int = INT8_MAX) -> np.ndarray:
    """Average pool: q = round_half_away(MBQM(sum_valid(x - in_zp), M, shift) / n).

    (M, shift) encodes in_scale / out_scale; n is the number of valid window
    elements, or kh*kw when count_include_pad.  NHWC int8 -> int8.
    """
    x, (kh, kw), (sh, sw), (pt, pl, pb, pr), (oh, ow) = _pool_geometry(
        x, kernel, stride, pads, "avg_pool")
    in_zp = _check_zp(in_zp, "in_zp")
    out_zp = _check_zp(out_zp, "out_zp")
    act_min, act_max = check_act_bounds(act_min, act_max)
    m, s = np.asarray(multiplier), np.asarray(shift)
    if m.ndim or s.ndim:
        raise GoldenError("avg_pool multiplier/shift must be scalars")
    n, h, w, c = x.shape
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c), np.int64)
    xp[:, pt:pt + h, pl:pl + w, :] = x
    xp[:, pt:pt + h, pl:pl + w, :] -= in_zp
    acc = np.zeros((n, oh, ow, c), np.int64)
    for i in range(kh):
        for j in range(kw):
            acc += xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
    if count_include_pad:
        cnt = np.full((oh, ow), kh * kw, np.int64)
    else:
        cnt = np.outer(_valid_counts(h, kh, sh, pt, oh), _valid_counts(w, kw, sw, pl, ow))
    cnt = cnt[None, :, :, None]
    t = mbqm(acc, m, s)  # |acc| <= 255 * kh * kw: int32 unless the window is huge
    # Integer division rounding half away from zero: the TFLite
    # (t +- n/2) / n with C truncation.
    q = np.sign(t) * ((np.abs(t) + cnt // 2) // cnt)
    return np.clip(q + out_zp, act_min, act_max).astype(np.int8)


def global_avg_pool(x, *, in_zp: int, out_zp: int, multiplier, shift,
                    act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Average pool over the whole spatial extent: (N, H, W, C) -> (N, 1, 1, C)."""
    x = _int8(x, "x", 4)
    return avg_pool(x, (x.shape[1], x.shape[2]), stride=1, pads=0, in_zp=in_zp,
                    out_zp=out_zp, multiplier=multiplier, shift=shift,
                    act_min=act_min, act_max=act_max)

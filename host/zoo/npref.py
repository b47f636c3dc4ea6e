"""Minimal numpy reference ops (NCHW), shared by the BN calibration and the digits trainer.

Written for clarity and determinism, not speed: convolutions are im2col + one matmul,
depthwise convolutions and pools are a loop over the kernel taps.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def pad_nchw(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """pads = (top, left, bottom, right), the ONNX order."""
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def out_size(size: int, k: int, s: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - k) // s + 1


def im2col(x: np.ndarray, kh: int, kw: int, strides, pads) -> tuple[np.ndarray, int, int]:
    """[N,C,H,W] -> ([N*Ho*Wo, C*kh*kw], Ho, Wo); column order (c, i, j) matches ONNX weights."""
    sh, sw = strides
    xp = pad_nchw(x, pads)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # [N,C,Ho,Wo,kh,kw]
    n, c, ho, wo = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * kh * kw), ho, wo


def conv2d(x, w, b=None, strides=(1, 1), pads=(0, 0, 0, 0), group: int = 1) -> np.ndarray:
    n, c, h, wd = x.shape
    co, cpg, kh, kw = w.shape
    if group == 1:
        cols, ho, wo = im2col(x, kh, kw, strides, pads)
        y = (cols @ w.reshape(co, -1).T).reshape(n, ho, wo, co).transpose(0, 3, 1, 2)
    elif group == c == co and cpg == 1:  # depthwise
        sh, sw = strides
        xp = pad_nchw(x, pads)
        ho = out_size(h, kh, sh, pads[0], pads[2])
        wo = out_size(wd, kw, sw, pads[1], pads[3])
        y = np.zeros((n, c, ho, wo), dtype=np.result_type(x, w))
        for i in range(kh):
            for j in range(kw):
                y += xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] * w[None, :, 0, i, j, None, None]
    else:
        raise NotImplementedError("only group=1 and depthwise convolutions")
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y)


def pool2d(x, kernel, strides, pads, mode: str) -> np.ndarray:
    """Max or average pool; average pads must be 0 (ONNX count_include_pad=0 is then moot)."""
    kh, kw = kernel
    sh, sw = strides
    n, c, h, w = x.shape
    if mode == "avg":
        assert not any(pads), "average pooling with padding is not needed by the zoo"
    xp = pad_nchw(x, pads, -np.inf if mode == "max" else 0.0)
    ho = out_size(h, kh, sh, pads[0], pads[2])
    wo = out_size(w, kw, sw, pads[1], pads[3])
    y = None
    for i in range(kh):
        for j in range(kw):
            t = xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            y = t.copy() if y is None else (np.maximum(y, t) if mode == "max" else y + t)
    return y if mode == "max" else y / (kh * kw)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)

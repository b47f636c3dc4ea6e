"""Packing of tensors and parameters into the byte layouts the NPU's memories use.

Activations: NHWC with channels zero-padded to a multiple of ROWS; one word is
ROWS int8 channels of one pixel, words ordered [N][H][W][CB].
Weights: for one block of COLS output channels, tile t = (kh*k_w + kw)*cb_count + cb
of ROWS words; word r = input channel r of block cb_start + cb, COLS bytes (the
block's output channels).
PAR: per output block three words of COLS int32: bias, multiplier, shift.
"""

from __future__ import annotations

import numpy as np


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def padded_channels(c: int, rows: int) -> int:
    return _ceil_div(c, rows) * rows


def _int8(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.int8:
        raise TypeError(f"{what} must be int8, got {a.dtype}")
    return a


def pack_activation(x_nhwc: np.ndarray, rows: int) -> np.ndarray:
    """int8 NHWC -> uint8 bytes in the padded NHWC word layout."""
    x = _int8(x_nhwc, "activation")
    if x.ndim != 4:
        raise ValueError(f"activation must be NHWC, got shape {x.shape}")
    n, h, w, c = x.shape
    out = np.zeros((n, h, w, padded_channels(c, rows)), dtype=np.int8)
    out[..., :c] = x
    return out.view(np.uint8).ravel()


def unpack_activation(buf, shape_nhwc, rows: int) -> np.ndarray:
    """Inverse of pack_activation: bytes (any buffer) -> int8 NHWC of shape_nhwc."""
    n, h, w, c = (int(v) for v in shape_nhwc)
    cp = padded_channels(c, rows)
    a = np.frombuffer(bytes(buf), dtype=np.int8) if not isinstance(buf, np.ndarray) else buf.view(np.int8).ravel()
    if a.size != n * h * w * cp:
        raise ValueError(f"expected {n * h * w * cp} bytes for {shape_nhwc}, got {a.size}")
    return a.reshape(n, h, w, cp)[..., :c].copy()


def pack_conv_weights(w_ohwi: np.ndarray, rows: int, cols: int, *, oc_block: int = 0,
                      cb_start: int = 0, cb_count: int | None = None) -> np.ndarray:
    """int8 weights [O][KH][KW][I] -> uint8 WGT words for output block oc_block,
    reducing over input channel blocks [cb_start, cb_start + cb_count)."""
    w = _int8(w_ohwi, "weights")
    if w.ndim != 4:
        raise ValueError(f"weights must be OHWI, got shape {w.shape}")
    o, kh, kw, i = w.shape
    if cb_count is None:
        cb_count = _ceil_div(i, rows) - cb_start
    if not 0 <= oc_block < _ceil_div(o, cols) or cb_count < 1:
        raise ValueError("oc_block or cb_count out of range")
    # Zero-pad O to the block and I to the reduced blocks, then reorder.
    ip = (cb_start + cb_count) * rows
    full = np.zeros((cols, kh, kw, max(ip, i)), dtype=np.int8)
    blk = w[oc_block * cols:(oc_block + 1) * cols]
    full[: blk.shape[0], :, :, :i] = blk
    part = full[:, :, :, cb_start * rows: ip]  # [c][kh][kw][cb*rows + r]
    tiles = part.reshape(cols, kh, kw, cb_count, rows).transpose(1, 2, 3, 4, 0)  # [kh][kw][cb][r][c]
    return np.ascontiguousarray(tiles).view(np.uint8).ravel()


def pack_post_params(bias_i32, mult_i32, shift_i32, cols: int) -> np.ndarray:
    """Per-output-channel bias/multiplier/shift -> uint8 PAR words: for each
    block of COLS channels the three words bias, mult, shift (padding: 0)."""
    arrs = [np.asarray(a, dtype=np.int64).ravel() for a in (bias_i32, mult_i32, shift_i32)]
    c = arrs[0].size
    if any(a.size != c for a in arrs):
        raise ValueError("bias, mult and shift must have the same length")
    for a in arrs:
        if a.size and (a.min() < -(2**31) or a.max() >= 2**31):
            raise ValueError("PAR values must fit int32")
    nb = _ceil_div(c, cols)
    out = np.zeros((nb, 3, cols), dtype="<i4")
    for k, a in enumerate(arrs):
        flat = np.zeros(nb * cols, dtype=np.int64)
        flat[:c] = a
        out[:, k, :] = flat.reshape(nb, cols)
    return out.view(np.uint8).ravel()

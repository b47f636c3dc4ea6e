"""Tiling arithmetic: how a layer is cut to fit the target's SRAMs.

Pure functions of shapes and the NpuConfig (no instructions here): output row
bands whose input band (with halo) and output band fit ACT and whose pixel
count fits ACC, channel-block groups for pools, and reduction chunks for
weights that do not fit one WGT buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

from presil.golden.isa import ISA

from .errors import CompilerError


class TilingError(CompilerError):
    """A layer cannot be tiled for the target's SRAM sizes or field widths."""


@dataclass(frozen=True)
class NpuConfig:
    """Array size and SRAM depths (words) of the target."""
    rows: int = ISA.default_rows
    cols: int = ISA.default_cols
    act_depth: int = ISA.memories["ACT"].default_depth
    wgt_depth: int = ISA.memories["WGT"].default_depth
    par_depth: int = ISA.memories["PAR"].default_depth
    acc_depth: int = ISA.memories["ACC"].default_depth
    # Lower few-channel strided convs on a segment input by host space-to-depth
    # (lower.SpaceToDepth); off only to measure or to feed plain-layout inputs.
    space_to_depth: bool = True

    def __post_init__(self):
        if self.rows != self.cols:
            raise CompilerError(f"this ISA version requires ROWS == COLS, got {self.rows}x{self.cols}")

    @property
    def depths(self) -> dict[str, int]:
        return {"ACT": self.act_depth, "WGT": self.wgt_depth, "PAR": self.par_depth, "ACC": self.acc_depth}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Band:
    """Output rows [r0, r1) and the input rows [i0, i0 + in_rows) they read."""
    r0: int
    r1: int
    i0: int
    in_rows: int
    pad_t: int  # top padding inside this band's tile (0 unless the band touches the top)

    @property
    def rows(self) -> int:
        return self.r1 - self.r0


def band_input(r0: int, r1: int, h: int, k: int, s: int, pt: int) -> Band:
    first = r0 * s - pt
    last = min(h, (r1 - 1) * s - pt + k)  # one past the last input row any window reads
    i0 = max(0, first)
    return Band(r0, r1, i0, max(1, last - i0), max(0, -first))


def bands(oh: int, r: int, h: int, k: int, s: int, pt: int) -> list[Band]:
    """Balanced bands of at most r rows."""
    n = ceil_div(oh, r)
    r = ceil_div(oh, n)
    return [band_input(r0, min(oh, r0 + r), h, k, s, pt) for r0 in range(0, oh, r)]


def ramp_bands(oh: int, r: int, h: int, k: int, s: int, pt: int, ow: int, rows: int,
               min_rows: int = 1) -> list[Band]:
    """bands() with a short first band: its input load is exposed after the
    layer's FENCE, the later bands' loads hide under the previous band's compute.
    The first band keeps >= 2*rows pixels (a GEMM tile streams >= rows pixels)
    and >= min_rows rows (enough compute to hide the second band's load)."""
    r0 = max(ceil_div(2 * rows, ow), min_rows)
    if r0 > r // 2 or oh <= r0:
        return bands(oh, r, h, k, s, pt)
    n = ceil_div(oh - r0, r)
    rr = ceil_div(oh - r0, n)
    return [band_input(0, r0, h, k, s, pt)] + [band_input(a, min(oh, a + rr), h, k, s, pt)
                                                for a in range(r0, oh, rr)]


def max_in_rows(r: int, h: int, k: int, s: int) -> int:
    return min(h, (r - 1) * s + k)


def choose_band_rows(oh: int, ow: int, h: int, w: int, k: int, s: int, in_words_per_px: int,
                     out_words_per_px: int, act_depth: int, acc_pixels: int | None, what: str, *,
                     out_slots: int = 0) -> tuple[int, int]:
    """(rows per band, buffers) with the largest band that fits: double buffered
    (2 inputs + 2 outputs in ACT) if possible, else single buffered. With
    out_slots the output is instead a ring of that many one-word-per-pixel
    buffers of a band (a conv requantises and stores one channel block at a time)."""
    for nbuf in (2, 1):
        best = 0
        for r in range(1, oh + 1):
            if acc_pixels is not None and r * ow > acc_pixels:
                break
            out = out_slots * r * ow if out_slots else nbuf * r * ow * out_words_per_px
            if nbuf * max_in_rows(r, h, k, s) * w * in_words_per_px + out > act_depth:
                break
            best = r
        if best:
            return best, nbuf
    raise TilingError(f"{what}: one output row ({ow} px) with its {k}-row input band does not fit "
                      f"ACT ({act_depth} words) / ACC; column tiling is not implemented")


def reduction_chunks(cb_start: int, cb_count: int, taps: int, rows: int, wgt_words: int,
                     what: str) -> list[tuple[int, int]]:
    """Split input blocks [cb_start, cb_start + cb_count) into (start, count) chunks
    whose weights (taps * count tiles of `rows` words) fit `wgt_words`."""
    per = min(255, wgt_words // (taps * rows))
    if per < 1:
        raise TilingError(f"{what}: one input block of a {taps}-tap kernel needs {taps * rows} WGT words, "
                          f"the buffer has {wgt_words}")
    n = ceil_div(cb_count, per)
    per = ceil_div(cb_count, n)
    return [(c, min(per, cb_start + cb_count - c)) for c in range(cb_start, cb_start + cb_count, per)]

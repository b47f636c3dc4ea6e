"""The back end: one NPU segment of the IR -> one Program (golden.asm.ProgramBuilder).

Every tensor a segment node reads or writes is a DRAM tensor (padded NHWC,
channels in blocks of ROWS): segment inputs/outputs have roles input/output,
the rest intermediate, so the ISS can capture every layer's result. Each layer
streams DRAM -> SRAM -> DRAM in tiles (tiling.py); layers are separated by a
FENCE (a STORE -> LOAD hazard through device memory has no token path), and
inside a layer double-buffered ACT/WGT addresses let loads of tile i+1 and
stores of tile i-1 overlap compute of tile i, with tokens derived by
schedule.Emitter.

Lowerings (docs/architecture.md §4.2):
- Conv: row bands x output channel blocks x reduction chunks (accumulate=1);
  grouped/depthwise as block-diagonal tiles over the blocks the groups read.
  A strided conv with few input channels on a segment input (the stem) runs
  on a host space-to-depth of that input (SpaceToDepth; the program declares
  the packed layout in meta "input_layouts", program_feeds applies it).
  Loads run one band / one output block ahead and each block is requantised
  into one of OUT_SLOTS one-block ACT buffers and stored from there right after
  its POST, so ACT holds input bands (larger bands, fewer GEMM fills) and little
  beyond the first band and the last block is exposed. The first band's first
  GEMM runs in pieces (input blocks of a 1x1 conv, else rows) that start as
  their input arrives; a 1x1 conv with stride s loads only every s-th input row.
- FullyConnected: a convolution -- on a 1 x B "image" of K channels for a
  (B, K) input, or an HxW kernel without padding on an HxW input for a
  flattened (B, H, W, C) map (the front end already ordered its weight
  columns H, W, C, so NHWC bytes need no permutation).
- Add: chunks of words. MaxPool / AvgPool / GlobalAvgPool: POOL over row
  bands and channel-block groups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from math import isqrt

import numpy as np

from presil.golden.asm import ProgramBuilder
from presil.golden.cost import COST
from presil.golden.isa import ISA
from presil.golden.layout import pack_conv_weights, pack_post_params
from presil.golden.program import NAME_BYTES, Program

from . import ir
from .errors import CompilerError
from .partition import Segment, partition
from .schedule import Emitter
from .tiling import (Band, NpuConfig, TilingError, band_input, bands, ceil_div, choose_band_rows, max_in_rows,
                     ramp_bands, reduction_chunks)

COMPILER = "presil.host.compiler"

# Field limits of GEMM / POOL geometry (isa.toml widths).
_GEMM_MAX = {"k": 15, "stride": 7, "pad": 15, "dim": 4095, "cb": 255}
_POOL_MAX = {"k": 255, "stride": 15, "pad": 15, "dim": 4095, "cb": 255}
# Output block buffers of a conv, and at most how many row pieces the first GEMM of a
# tile with an exposed input load runs in (see _ConvLayer.emit).
OUT_SLOTS = 3
MAX_ROW_PIECES = 4


def dram_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The NHWC descriptor shape of an IR tensor: rank 4 as is, (B, K) as (B, 1, 1, K)."""
    if len(shape) == 4:
        return tuple(shape)  # type: ignore[return-value]
    if len(shape) == 2:
        return (shape[0], 1, 1, shape[1])
    raise CompilerError(f"NPU tensors must be rank 2 or 4, got shape {shape}")


def desc_name(name: str, taken: set[str]) -> str:
    """A unique descriptor name of at most NAME_BYTES UTF-8 bytes."""
    out = name
    if len(name.encode("utf-8")) > NAME_BYTES or not name or name in taken:
        h = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
        head = name.encode("utf-8")[:NAME_BYTES - 11].decode("utf-8", "ignore")
        out = f"{head}~{h}"
        k = 0
        while out in taken:
            k += 1
            out = f"{head[:-3]}~{h}{k:02d}"
    taken.add(out)
    return out


@dataclass
class _T:
    """A tensor in the DMA window."""
    desc: str
    offset: int
    shape: tuple[int, int, int, int]
    quant: ir.QParams


def _check(what: str, limits: dict, *, k=(1, 1), stride=(1, 1), pads=(0, 0), dims=(), cb=1) -> None:
    bad = []
    if max(k) > limits["k"]:
        bad.append(f"kernel {k} > {limits['k']}")
    if max(stride) > limits["stride"]:
        bad.append(f"stride {stride} > {limits['stride']}")
    if max(pads) > limits["pad"]:
        bad.append(f"padding {pads} > {limits['pad']}")
    if dims and max(dims) > limits["dim"]:
        bad.append(f"spatial size {max(dims)} > {limits['dim']}")
    if cb > limits["cb"]:
        bad.append(f"{cb} channel blocks > {limits['cb']}")
    if bad:
        raise TilingError(f"{what}: outside the ISA's field ranges: {', '.join(bad)}")


# --------------------------------------------------------------------------
# space-to-depth (docs/architecture.md §4.2)
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class SpaceToDepth:
    """Host layout of a segment input for a few-channel strided conv (the stem).

    The host pads the int8 NHWC image with `fill` (the input zero point) by
    `pre` rows/cols at the top/left and up to a multiple of the block at the
    bottom/right, then packs each sh x sw block of pixels into one pixel of
    sh*sw*C channels ordered (dy, dx, c). The conv becomes a stride-1 conv
    with a ceil(k/s) kernel on that grid; the rest of the original padding,
    whole blocks of zero points, is the GEMM's pad_t/pad_l and implied
    bottom/right padding. Padding is thus exactly x_zp everywhere.
    """
    block: tuple[int, int]               # (sh, sw) = the conv's stride
    pre: tuple[int, int]                 # pad_t % sh, pad_l % sw
    shape: tuple[int, int, int, int]     # (N, H', W', sh*sw*C)
    fill: int

    @classmethod
    def plan(cls, x_shape, stride, pads, zp: int) -> "SpaceToDepth":
        n, h, w, c = x_shape
        sh, sw = stride
        et, el = pads[0] % sh, pads[1] % sw
        return cls((sh, sw), (et, el), (n, ceil_div(et + h, sh), ceil_div(el + w, sw), sh * sw * c), int(zp))

    def pack(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        (sh, sw), (et, el) = self.block, self.pre
        _, H2, W2, _ = self.shape
        buf = np.full((n, H2 * sh, W2 * sw, c), self.fill, np.int8)
        buf[:, et:et + h, el:el + w] = x
        return np.ascontiguousarray(
            buf.reshape(n, H2, sh, W2, sw, c).transpose(0, 1, 3, 2, 4, 5).reshape(self.shape))

    @staticmethod
    def weights(w: np.ndarray, stride) -> np.ndarray:
        """OHWI (k_h, k_w) -> OHWI (ceil(k_h/sh), ceil(k_w/sw)) over (dy, dx, c) channels,
        tap (a, b) channel (dy, dx, c) = w[s*a + dy, s*b + dx, c] or 0 past the kernel."""
        o, kh, kw, c = w.shape
        sh, sw = stride
        ah, aw = ceil_div(kh, sh), ceil_div(kw, sw)
        z = np.zeros((o, ah * sh, aw * sw, c), np.int8)
        z[:, :kh, :kw] = w
        return np.ascontiguousarray(z.reshape(o, ah, sh, aw, sw, c).transpose(0, 1, 3, 2, 4, 5)
                                    .reshape(o, ah, aw, sh * sw * c))

    def to_meta(self, tensor: str) -> dict:
        return {"tensor": tensor, "layout": "space_to_depth", "block": list(self.block),
                "pre": list(self.pre), "shape": list(self.shape), "fill": self.fill}

    @classmethod
    def from_meta(cls, d: dict) -> "SpaceToDepth":
        if d.get("layout") != "space_to_depth":
            raise CompilerError(f"unknown input layout {d.get('layout')!r}")
        return cls(tuple(d["block"]), tuple(d["pre"]), tuple(d["shape"]), int(d["fill"]))


def program_feeds(program: Program, values) -> dict[str, np.ndarray]:
    """{IR tensor: int8 NHWC value} -> the program's input feeds {descriptor: array},
    packed into each input's declared host layout (meta "input_layouts")."""
    names = program.meta["tensor_names"]
    layouts = program.meta.get("input_layouts", {})
    feeds = {}
    for t in program.tensors:
        if t.role.name != "INPUT":
            continue
        v = np.asarray(values[names[t.name]])
        v = v.reshape(dram_shape(v.shape))
        feeds[t.name] = SpaceToDepth.from_meta(layouts[t.name]).pack(v) if t.name in layouts else v
    return feeds


# --------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------

class _ConvLayer:
    """Conv or FullyConnected as a convolution."""

    def __init__(self, lw: "SegmentLowering", n: ir.Node):
        self.lw, self.node, cfg = lw, n, lw.cfg
        g = lw.graph
        x, y = g.tensors[n.inputs[0]], g.tensors[n.outputs[0]]
        self.x_zp = x.quant.zero_point
        xs, ys = dram_shape(x.shape), dram_shape(y.shape)
        if isinstance(n, ir.Conv):
            self.w = n.weights
            self.stride, self.pads, self.groups = tuple(n.stride), tuple(n.pads), n.groups
            self.in_view, self.out_view = xs, ys
        else:
            b, h, w, c = xs
            if h == 1 and w == 1:  # (B, K): a 1 x B image, 1x1 kernel (same bytes)
                self.in_view, self.out_view = (1, 1, b, c), (1, 1, b, ys[3])
                self.w = n.weights.reshape(n.weights.shape[0], 1, 1, -1)
            else:  # flattened HxWxC map: an HxW kernel over the HxW image
                self.in_view, self.out_view = xs, (b, 1, 1, ys[3])
                self.w = n.weights.reshape(n.weights.shape[0], h, w, c)
            self.stride, self.pads, self.groups = (1, 1), (0, 0, 0, 0), 1
        self.stride = (1 if self.out_view[1] == 1 else self.stride[0], 1 if self.out_view[2] == 1 else self.stride[1])
        self.bias = n.folded_bias(self.x_zp)  # of the original weights: the same sum after re-layout
        self.in_key = n.inputs[0]
        self.s2d = None
        sh, sw = self.stride
        if (cfg.space_to_depth and isinstance(n, ir.Conv) and self.groups == 1 and max(sh, sw) >= 2
                and xs[3] * sh * sw <= cfg.rows and n.inputs[0] in lw.seg.inputs):
            # Few channels, strided, and the host writes this tensor: pack s x s pixels
            # into one ACT word (12 of 16 lanes for a 3-channel stride-2 stem instead of 3).
            self.s2d = SpaceToDepth.plan(xs, (sh, sw), self.pads, self.x_zp)
            self.w = SpaceToDepth.weights(self.w, (sh, sw))
            kh2, kw2 = self.w.shape[1:3]
            pt, pl = self.pads[0] // sh, self.pads[1] // sw
            _, h2, w2, _ = self.s2d.shape
            self.pads = (pt, pl, max(0, ys[1] - 1 + kh2 - pt - h2), max(0, ys[2] - 1 + kw2 - pl - w2))
            self.stride, self.in_view = (1, 1), self.s2d.shape
            self.in_key = (n.inputs[0], self.s2d)
        self.cout, self.kh, self.kw = self.w.shape[0], self.w.shape[1], self.w.shape[2]
        cin = self.in_view[3]
        R, C = cfg.rows, cfg.cols
        self.in_cb, self.out_cb = ceil_div(cin, R), ceil_div(self.cout, C)
        _, h, w, _ = self.in_view
        _check(f"layer '{n.name}'", _GEMM_MAX, k=(self.kh, self.kw), stride=self.stride,
               pads=self.pads, dims=(h, w) + tuple(self.out_view[1:3]), cb=self.in_cb)
        # Per output block: the input blocks its groups read, cut into WGT-sized chunks.
        cin_g, cout_g = self.w.shape[3], self.cout // self.groups
        half = cfg.wgt_depth // 2
        self.blocks = []
        for ob in range(self.out_cb):
            o0, o1 = ob * C, min(self.cout, ob * C + C)
            if self.groups == 1:
                lo, hi = 0, self.in_cb
            else:
                g0, g1 = o0 // cout_g, (o1 - 1) // cout_g
                lo, hi = (g0 * cin_g) // R, ((g1 + 1) * cin_g - 1) // R + 1
            self.blocks.append(reduction_chunks(lo, hi - lo, self.kh * self.kw, R, half, f"layer '{n.name}'"))

    def _block_weights(self, ob: int) -> np.ndarray:
        """OHWI weights of output block ob over all input channels (block-diagonal if grouped)."""
        C = self.lw.cfg.cols
        if self.groups == 1:
            return self.w[ob * C:(ob + 1) * C]
        o0, o1 = ob * C, min(self.cout, ob * C + C)
        cin_g, cout_g = self.w.shape[3], self.cout // self.groups
        dense = np.zeros((o1 - o0, self.kh, self.kw, self.in_view[3]), np.int8)
        for o in range(o0, o1):
            gi = o // cout_g
            dense[o - o0, :, :, gi * cin_g:(gi + 1) * cin_g] = self.w[o]
        return dense

    def consts(self, b: ProgramBuilder) -> None:
        R, C = self.lw.cfg.rows, self.lw.cfg.cols
        parts, self.chunk_words = [], []  # chunk_words[ob] = [(start, count, word offset, words)]
        off = 0
        for ob, chunks in enumerate(self.blocks):
            wb = self._block_weights(ob)
            row = []
            for cs, cn in chunks:
                p = pack_conv_weights(wb, R, C, oc_block=0, cb_start=cs, cb_count=cn)
                row.append((cs, cn, off, p.size // C))
                off += p.size // C
                parts.append(p)
            self.chunk_words.append(row)
        self.w_total = off
        self.w_dram = b.const(np.concatenate(parts))
        self.par_dram = b.const(pack_post_params(self.bias, self.node.multiplier, self.node.shift, C))

    def _ob_consts(self, em: Emitter, ob: int) -> None:
        """Resident weights and PAR words of output block ob (each loaded once, just
        ahead of the block that needs them rather than all before the first GEMM)."""
        cfg = self.lw.cfg
        if self.resident:
            row = self.chunk_words[ob]
            words = sum(w for *_, w in row)
            _load(em, "WGT", self.w_dram + row[0][2] * cfg.cols, row[0][2], words, cfg.cols)
        if self.par_resident:
            _load(em, "PAR", self.par_dram + 3 * ob * 4 * cfg.cols, 3 * ob, 3, 4 * cfg.cols)

    def prefetch(self, em: Emitter) -> None:
        """Before the FENCE that ends the previous layer: block 0's constants (its first
        weight chunk into the first streaming buffer if the weights are not resident).
        Constants have no device-memory hazard, and the emitter orders these loads
        after the previous layer's readers of the same SRAM words."""
        self._ob_consts(em, 0)
        if not self.resident:
            _, _, woff, words = self.chunk_words[0][0]
            _load(em, "WGT", self.w_dram + woff * self.lw.cfg.cols, 0, words, self.lw.cfg.cols)
        self.prefetched = True

    @property
    def resident(self) -> bool:
        return self.w_total <= self.lw.cfg.wgt_depth

    @property
    def par_resident(self) -> bool:
        return 3 * self.out_cb <= self.lw.cfg.par_depth

    def emit(self, em: Emitter, T: dict[str, _T]) -> None:
        cfg, n = self.lw.cfg, self.node
        R, C = cfg.rows, cfg.cols
        xt, yt = T[self.in_key], T[n.outputs[0]]
        N, H, W, _ = self.in_view
        _, OH, OW, _ = self.out_view
        kh, kw = self.kh, self.kw
        sh, sw = self.stride
        pt, pl = self.pads[0], self.pads[1]
        in_cb, out_cb = self.in_cb, self.out_cb
        # A 1x1 conv with stride sh reads every sh-th input row: load only those, so
        # a band of the same ACT size has sh times the pixels (row_step input rows
        # per loaded row; the GEMM then runs with stride 1 down the loaded rows).
        row_step = sh if kh == 1 and pt == 0 and W * in_cb <= _MAX_X else 1
        Hl, shl = (OH, 1) if row_step > 1 else (H, sh)
        # Each block is requantised into one of OUT_SLOTS one-block buffers and stored
        # from there, so ACT holds input bands rather than whole output bands.
        r, nbuf = choose_band_rows(OH, OW, Hl, W, kh, shl, in_cb, out_cb, cfg.act_depth, cfg.acc_depth,
                                   f"layer '{n.name}'", out_slots=OUT_SLOTS)
        in_sz = max_in_rows(r, Hl, kh, shl) * W * in_cb
        in_bufs = [i * in_sz for i in range(nbuf)]
        out_slots = [nbuf * in_sz + i * r * OW for i in range(OUT_SLOTS)]
        wgt_bytes, par_bytes = C, 4 * C
        resident, par_resident = self.resident, self.par_resident
        out_zp = self.lw.graph.tensors[n.outputs[0]].quant.zero_point
        half = cfg.wgt_depth // 2

        def load_rows(t: int, a: int, b: int) -> None:
            """Loaded input rows [a, b) of tile t (row_step input rows apart in DRAM)."""
            if a >= b:
                return
            img, band = tiles[t]
            x0 = xt.offset + img * H * W * in_cb * R + (band.i0 + a) * row_step * W * in_cb * R
            sram = in_bufs[t % nbuf] + a * W * in_cb
            if row_step == 1:
                _load(em, "ACT", x0, sram, (b - a) * W * in_cb, R)
            else:
                em.emit("LOAD", mem=ISA.memories["ACT"].id, dram_offset=x0, dram_stride=row_step * W * in_cb * R,
                        sram_addr=sram, sram_stride=W * in_cb, y_count=b - a, x_words=W * in_cb)

        def load_cbs(t: int, c0: int, c1: int) -> None:
            """Input blocks [c0, c1) of every pixel of tile t (row_step 1)."""
            img, band = tiles[t]
            em.emit("LOAD", mem=ISA.memories["ACT"].id,
                    dram_offset=xt.offset + ((img * H + band.i0) * W * in_cb + c0) * R, dram_stride=in_cb * R,
                    sram_addr=in_bufs[t % nbuf] + c0, sram_stride=in_cb, y_count=band.in_rows * W, x_words=c1 - c0)

        def gemm(band: Band, ib: int, k: int, cs: int, cn: int, wa: int, wgt_offset: int = 0, **fields) -> None:
            f = dict(accumulate=int(k > 0), in_addr=ib, in_h=band.in_rows, in_w=W, in_cb=in_cb, cb_start=cs,
                     cb_count=cn, out_h=band.rows, out_w=OW, k_h=kh, k_w=kw, stride_h=shl, stride_w=sw,
                     pad_t=band.pad_t, pad_l=pl, in_zp=self.x_zp, wgt_addr=wa + wgt_offset, acc_addr=0)
            em.emit("GEMM", **{**f, **fields})

        def pieces(t: int, band: Band) -> list[tuple[int, Callable[[], None], dict]]:
            """A tile whose input load is exposed (the first, or any single-buffered one)
            runs its first GEMM in pieces, each starting once its part of the input is
            in: [(words that part loads, its LOAD, the piece's GEMM fields)]. A 1x1
            conv whose first weight chunk spans every input block splits by input
            blocks (accumulating: all pixels per piece), others by at most
            MAX_ROW_PIECES row bands (each >= ROWS pixels). The compute engine idles
            about one piece's load and each piece adds a GEMM fill and drain: about
            sqrt(load / fill+drain) pieces."""
            ib = in_bufs[t % nbuf]
            n = max(1, isqrt(band.in_rows * W * in_cb // (2 * R + C)))
            cs0, cn0 = self.blocks[0][0]
            if kh == kw == 1 and row_step == 1 and (cs0, cn0) == (0, in_cb) and band.in_rows * W <= _MAX_X:
                cuts = [j * in_cb // min(n, in_cb) for j in range(min(n, in_cb) + 1)]
                return [((c1 - c0) * band.in_rows * W, partial(load_cbs, t, c0, c1),
                         dict(cb_start=c0, cb_count=c1 - c0, accumulate=int(c0 > 0), wgt_offset=c0 * R))
                        for c0, c1 in zip(cuts, cuts[1:])]
            p = max(1, min(n, MAX_ROW_PIECES, band.rows // ceil_div(R, OW)))
            out, done = [], 0
            for j in range(p):
                a, b = j * band.rows // p, (j + 1) * band.rows // p
                sub = band_input(band.r0 + a, band.r0 + b, Hl, kh, shl, pt)
                end = sub.i0 + sub.in_rows - band.i0  # loaded rows this piece reads
                out.append(((end - done) * W * in_cb, partial(load_rows, t, done, end),
                            dict(in_addr=ib + (sub.i0 - band.i0) * W * in_cb, in_h=sub.in_rows, out_h=sub.rows,
                                 pad_t=sub.pad_t, acc_addr=a * OW)))
                done = end
            return out

        # A short first band exposes less input load after the FENCE but costs a band more:
        # per block one more GEMM fill/drain per reduction chunk and one more POST pipeline.
        # The first band's compute must cover the second band's load and, with resident
        # weights, the other blocks' weights, which load during the first band.
        hide = max_in_rows(r, Hl, kh, shl) * W * in_cb + (self.w_total if resident else 0)
        first = ceil_div(hide, out_cb * kh * kw * in_cb * OW)
        plain, ramp = bands(OH, r, Hl, kh, shl, pt), ramp_bands(OH, r, Hl, kh, shl, pt, OW, R, first)
        extra = (sum(len(ch) for ch in self.chunk_words) * (2 * R + C) + out_cb * COST.post_pipeline) * (
            len(ramp) - len(plain))
        saved = pieces(0, plain[0])[0][0] - pieces(0, ramp[0])[0][0]
        tiles = [(img, band) for img in range(N) for band in (ramp if saved > extra else plain)]

        # Program order is the ISS's semantics; the emitter only adds tokens. Tile t+1's
        # input is loaded during tile t (double buffer), block ob+1's constants during
        # block ob of the first tile, so after the FENCE only the first piece of the first
        # tile's input and block 0's constants are exposed (and those are prefetched
        # before it if possible).
        prefetched = getattr(self, "prefetched", False)
        n_wload = n_post = 0
        for t, (img, band) in enumerate(tiles):
            ib = in_bufs[t % nbuf]
            split = pieces(t, band) if t == 0 or nbuf == 1 else None
            if split:
                split[0][1]()
                if t == 0 and not prefetched:
                    self._ob_consts(em, 0)
            y0 = yt.offset + (img * OH * OW + band.r0 * OW) * out_cb * R
            npx = band.rows * OW
            for ob, chunks in enumerate(self.chunk_words):
                if par_resident:
                    par = 3 * ob
                else:
                    par = 3 * (ob % 2) if cfg.par_depth >= 6 else 0  # double buffer if room
                    _load(em, "PAR", self.par_dram + 3 * ob * par_bytes, par, 3, par_bytes)
                for k, (cs, cn, woff, words) in enumerate(chunks):
                    if resident:
                        wa = woff
                    else:
                        wa = (n_wload % 2) * half
                        n_wload += 1
                        if not (prefetched and n_wload == 1):
                            _load(em, "WGT", self.w_dram + woff * wgt_bytes, wa, words, wgt_bytes)
                    if split and ob == 0 and k == 0:
                        for j, (_, load, fields) in enumerate(split):
                            if j:
                                load()
                            gemm(band, ib, k, cs, cn, wa, **fields)
                    else:
                        gemm(band, ib, k, cs, cn, wa)
                if t == 0 and ob + 1 < out_cb:
                    self._ob_consts(em, ob + 1)
                if nbuf > 1 and t + 1 < len(tiles):
                    # Tile t+1's input in pieces, one after each block of tile t, so that no
                    # block's weights queue behind one long LOAD on the in-order engine.
                    nxt = tiles[t + 1][1].in_rows
                    load_rows(t + 1, ob * nxt // out_cb, (ob + 1) * nxt // out_cb)
                slot = out_slots[n_post % OUT_SLOTS]
                n_post += 1
                em.emit("POST", acc_addr=0, out_addr=slot, count=npx, out_stride=1,
                        par_addr=par, out_zp=out_zp, clamp_min=n.act_min, clamp_max=n.act_max)
                # Each block is stored as soon as it is requantised (rows of one word,
                # out_cb words apart), so only the last block's store is exposed at the
                # layer's end. The STORE reads ACT only while the compute engine does
                # not (during the next POST), so the slot it reads is reused OUT_SLOTS
                # blocks later, not by the next POST.
                if out_cb == 1:
                    _store(em, y0, slot, npx, R)
                else:
                    em.emit("STORE", mem=0, dram_offset=y0 + ob * R, dram_stride=out_cb * R,
                            sram_addr=slot, sram_stride=1, y_count=npx, x_words=1)


class _PoolLayer:
    """MaxPool, AvgPool and GlobalAvgPool on POOL."""

    def __init__(self, lw: "SegmentLowering", n: ir.Node):
        self.lw, self.node = lw, n
        x = lw.graph.tensors[n.inputs[0]]
        _, h, w, _ = dram_shape(x.shape)
        if isinstance(n, ir.GlobalAvgPool):
            self.k, self.stride, self.pads = (h, w), (1, 1), (0, 0, 0, 0)
        else:
            self.k, self.stride, self.pads = tuple(n.kernel), tuple(n.stride), tuple(n.pads)
        # A stride along a dimension with one output is never applied: any legal value will do.
        _, oh, ow, _ = dram_shape(lw.graph.tensors[n.outputs[0]].shape)
        self.stride = (1 if oh == 1 else self.stride[0], 1 if ow == 1 else self.stride[1])
        _check(f"layer '{n.name}'", _POOL_MAX, k=self.k, stride=self.stride, pads=self.pads, dims=(h, w))

    def consts(self, b) -> None:
        pass

    def emit(self, em: Emitter, T: dict[str, _T]) -> None:
        cfg, n = self.lw.cfg, self.node
        R = cfg.rows
        xt, yt = T[n.inputs[0]], T[n.outputs[0]]
        N, H, W, Cc = xt.shape
        _, OH, OW, _ = yt.shape
        in_cb = ceil_div(Cc, R)
        kh, kw = self.k
        sh, sw = self.stride
        pt, pl = self.pads[0], self.pads[1]
        # Largest channel group (pooling is per channel) for which one output row fits.
        cbg = in_cb
        while True:
            try:
                r, nbuf = choose_band_rows(OH, OW, H, W, kh, sh, cbg, cbg, cfg.act_depth, None,
                                           f"layer '{n.name}'")
                break
            except TilingError:
                if cbg == 1:
                    raise
                cbg = max(1, cbg // 2)
        in_sz = max_in_rows(r, H, kh, sh) * W * cbg
        out_sz = r * OW * cbg
        mode = 0 if isinstance(n, ir.MaxPool) else 1
        fields = dict(mode=mode, count_include_pad=int(getattr(n, "count_include_pad", False)),
                      in_w=W, out_w=OW, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw, pad_l=pl,
                      in_zp=xt.quant.zero_point, out_zp=yt.quant.zero_point if mode else 0,
                      mult=int(getattr(n, "multiplier", 0)) if mode else 0,
                      shift=int(getattr(n, "shift", 0)) if mode else 0)
        tile = 0
        for img in range(N):
            x0 = xt.offset + img * H * W * in_cb * R
            y0 = yt.offset + img * OH * OW * in_cb * R
            for c0 in range(0, in_cb, cbg):
                cn = min(cbg, in_cb - c0)
                for band in bands(OH, r, H, kh, sh, pt):
                    ib = (tile % nbuf) * in_sz
                    obuf = nbuf * in_sz + (tile % nbuf) * out_sz
                    tile += 1
                    _load_px(em, x0 + (band.i0 * W * in_cb + c0) * R, ib, band.in_rows * W, cn, in_cb, R)
                    em.emit("POOL", in_addr=ib, in_h=band.in_rows, in_cb=cn, out_h=band.rows,
                            pad_t=band.pad_t, out_addr=obuf, **fields)
                    _store_px(em, y0 + (band.r0 * OW * in_cb + c0) * R, obuf, band.rows * OW, cn, in_cb, R)


class _AddLayer:
    def __init__(self, lw: "SegmentLowering", n: ir.Add):
        self.lw, self.node = lw, n

    def consts(self, b) -> None:
        pass

    def emit(self, em: Emitter, T: dict[str, _T]) -> None:
        cfg, n = self.lw.cfg, self.node
        R = cfg.rows
        at, bt, yt = T[n.inputs[0]], T[n.inputs[1]], T[n.outputs[0]]
        if at.shape != bt.shape or at.shape != yt.shape:
            raise CompilerError(f"layer '{n.name}': Add needs equal shapes, got {at.shape}, {bt.shape}")
        N, H, W, Cc = at.shape
        total = N * H * W * ceil_div(Cc, R)
        chunk = min(total, cfg.act_depth // 6, (1 << 20) - 1)
        nbuf = 2
        if chunk < 1:
            raise TilingError(f"layer '{n.name}': ACT too small for Add")
        am, ash, bm, bsh, om, osh = (int(v) for v in n.params)
        for i, w0 in enumerate(range(0, total, chunk)):
            cnt = min(chunk, total - w0)
            s = i % nbuf
            a_buf, b_buf, o_buf = (s * 3) * chunk, (s * 3 + 1) * chunk, (s * 3 + 2) * chunk
            _load(em, "ACT", at.offset + w0 * R, a_buf, cnt, R)
            _load(em, "ACT", bt.offset + w0 * R, b_buf, cnt, R)
            em.emit("ADD", a_addr=a_buf, b_addr=b_buf, out_addr=o_buf, count=cnt,
                    a_zp=at.quant.zero_point, b_zp=bt.quant.zero_point, out_zp=yt.quant.zero_point,
                    clamp_min=n.act_min, clamp_max=n.act_max, a_mult=am, a_shift=ash, b_mult=bm,
                    b_shift=bsh, out_mult=om, out_shift=osh)
            _store(em, yt.offset + w0 * R, o_buf, cnt, R)


# --------------------------------------------------------------------------
# DMA helpers
# --------------------------------------------------------------------------

_MAX_X = (1 << 16) - 1


def _load(em: Emitter, mem: str, dram: int, sram: int, words: int, word_bytes: int) -> None:
    """Contiguous words, in rows of at most 2^16 - 1 words (x_words is 16 bits)."""
    per = min(words, _MAX_X)
    while per > 1 and words % per:
        per -= 1
    em.emit("LOAD", mem=ISA.memories[mem].id, dram_offset=dram, dram_stride=per * word_bytes,
            sram_addr=sram, sram_stride=per, y_count=words // per, x_words=per)


def _store(em: Emitter, dram: int, sram: int, words: int, word_bytes: int) -> None:
    per = min(words, _MAX_X)
    while per > 1 and words % per:
        per -= 1
    em.emit("STORE", mem=0, dram_offset=dram, dram_stride=per * word_bytes, sram_addr=sram,
            sram_stride=per, y_count=words // per, x_words=per)


def _load_px(em, dram, sram, pixels, cn, in_cb, R) -> None:
    """`pixels` pixels, channel blocks [c0, c0 + cn) of in_cb (c0 folded into dram)."""
    if cn == in_cb:
        _load(em, "ACT", dram, sram, pixels * cn, R)
    else:
        em.emit("LOAD", mem=0, dram_offset=dram, dram_stride=in_cb * R, sram_addr=sram, sram_stride=cn,
                y_count=pixels, x_words=cn)


def _store_px(em, dram, sram, pixels, cn, in_cb, R) -> None:
    if cn == in_cb:
        _store(em, dram, sram, pixels * cn, R)
    else:
        em.emit("STORE", mem=0, dram_offset=dram, dram_stride=in_cb * R, sram_addr=sram, sram_stride=cn,
                y_count=pixels, x_words=cn)


# --------------------------------------------------------------------------
# segments
# --------------------------------------------------------------------------

class SegmentLowering:
    def __init__(self, graph: ir.Graph, segment: Segment, cfg: NpuConfig, name: str):
        if segment.device != "npu":
            raise CompilerError(f"segment {segment.name} runs on the host, not the NPU")
        self.graph, self.seg, self.cfg, self.name = graph, segment, cfg, name

    def _layer(self, n: ir.Node):
        if isinstance(n, (ir.Conv, ir.FullyConnected)):
            return _ConvLayer(self, n)
        if isinstance(n, (ir.MaxPool, ir.AvgPool, ir.GlobalAvgPool)):
            return _PoolLayer(self, n)
        if isinstance(n, ir.Add):
            return _AddLayer(self, n)
        raise CompilerError(f"layer '{n.name}': no NPU lowering for {n.op}")

    def build(self) -> Program:
        g, seg, cfg = self.graph, self.seg, self.cfg
        b = ProgramBuilder(cfg.rows, cfg.cols, name=self.name, compiler=COMPILER)
        layers = [self._layer(n) for n in seg.nodes]
        for lay in layers:  # the constant blob comes first in the window
            lay.consts(b)
        taken: set[str] = set()
        # A tensor key is an IR tensor name, or (name, SpaceToDepth) for an input the
        # host packs for a conv (its own descriptor; the plain one only if read plain).
        T: dict = {}
        keys = []
        for n, lay in zip(seg.nodes, layers):
            ins = [getattr(lay, "in_key", n.inputs[0])] + n.inputs[1:] if n.inputs else []
            keys += ins + n.outputs
        keys = list(dict.fromkeys(keys))
        layouts = {}
        for k in keys:
            t, s2d = (k, None) if isinstance(k, str) else k
            role = "input" if t in seg.inputs else "output" if t in seg.outputs else "intermediate"
            tt = g.tensors[t]
            shape = dram_shape(tt.shape) if s2d is None else s2d.shape
            name = t if s2d is None else f"{t}.s2d{s2d.block[0]}x{s2d.block[1]}"
            d = b.tensor(desc_name(name, taken), role, shape, tt.quant.scale, tt.quant.zero_point)
            T[k] = _T(d.name, d.dram_offset, shape, tt.quant)
            if s2d is not None:
                layouts[d.name] = s2d.to_meta(t)
        em = Emitter(cfg.rows, cfg.cols)
        lnames: set[str] = set()
        for i, (n, lay) in enumerate(zip(seg.nodes, layers)):
            lname = n.name
            while lname in lnames:
                lname += "'"
            lnames.add(lname)
            if i:
                em.fence()  # the next layer's LOADs read what this layer STOREd
            em.begin_layer(lname)
            lay.emit(em, T)
            if i + 1 < len(layers) and hasattr(layers[i + 1], "prefetch"):
                # The next layer's first constants load during this layer's tail; they
                # count in this layer's cycles, so layer spans never overlap.
                layers[i + 1].prefetch(em)
            em.end_layer()
        em.write_to(b)
        layer_names = [name for name, _, _ in em.layers]
        return b.build(
            segment=seg.index,
            tensor_names={T[k].desc: (k if isinstance(k, str) else k[0]) for k in keys},
            input_layouts=layouts,
            layer_ops=dict(zip(layer_names, (n.op for n in seg.nodes))),
            layer_macs=dict(zip(layer_names, (n.macs(g) for n in seg.nodes))),
            npu_config=cfg.depths,
        )


def lower_segment(graph: ir.Graph, segment: Segment, *, config: NpuConfig | None = None,
                  rows: int = 16, cols: int = 16, name: str | None = None) -> Program:
    """One NPU segment -> a validated Program."""
    cfg = config or NpuConfig(rows, cols)
    return SegmentLowering(graph, segment, cfg, name or f"{graph.name}.{segment.name}").build()


def lower(graph: ir.Graph, *, config: NpuConfig | None = None, rows: int = 16, cols: int = 16
          ) -> dict[int, Program]:
    """Every NPU segment of the graph -> {segment index: Program}."""
    cfg = config or NpuConfig(rows, cols)
    return {s.index: lower_segment(graph, s, config=cfg) for s in partition(graph) if s.device == "npu"}

"""The program file: header, instructions, tensor descriptors, constant blob and
JSON metadata (spec: docs/program-format.md). Reading is strict: anything
malformed raises ProgramFormatError naming the problem."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from presil.golden.device_errors import IsaError, ProgramFormatError
from presil.golden.footprint import check_static, dma_rows
from presil.golden.isa import INSTR_BYTES, decode, isa_hash
from presil.golden.layout import padded_channels

MAGIC = b"PRSLPRG\0"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
HEADER_SIZE = 128
TENSOR_DESC_SIZE = 96
ALIGN = 32
NAME_BYTES = 48
CRC_OFFSET = 124

# Header after the magic: offset 8 .. 80 (see docs/program-format.md).
_HDR = struct.Struct("<8sHHIIHHIIIIIIIIIIIIII")
_DESC = struct.Struct("<48sBBBB4IIIfi12s")
assert _HDR.size == 80 and _DESC.size == TENSOR_DESC_SIZE


class TensorRole(IntEnum):
    INPUT = 0
    OUTPUT = 1
    INTERMEDIATE = 2


def package_regmap_hash() -> int:
    """REGMAP_HASH of the register map this package was generated with (0 if the
    generated register module is not available yet)."""
    try:
        from presil.host.regs import REGMAP_HASH  # type: ignore[attr-defined]
    except ImportError:
        return 0
    return int(REGMAP_HASH)


@dataclass(frozen=True)
class TensorDesc:
    name: str
    role: TensorRole
    shape: tuple[int, int, int, int]  # N, H, W, C (unpadded)
    dram_offset: int
    size_bytes: int  # N*H*W*Cpad
    scale: float
    zero_point: int
    dtype: int = 0  # int8
    layout: int = 0  # NHWC, channels padded to a multiple of ROWS

    def to_bytes(self) -> bytes:
        return _DESC.pack(self.name.encode("utf-8"), int(self.role), self.dtype, self.layout, 0,
                          *self.shape, self.dram_offset, self.size_bytes, self.scale, self.zero_point,
                          bytes(12))


@dataclass
class Program:
    rows: int
    cols: int
    instructions: list[bytes]
    const: bytes = b""
    const_dram_offset: int = 0
    tensors: list[TensorDesc] = field(default_factory=list)
    dram_size: int = 0
    act_depth: int = 0
    wgt_depth: int = 0
    acc_depth: int = 0
    par_depth: int = 0
    meta: dict = field(default_factory=dict)
    isa_hash: int = field(default_factory=isa_hash)
    regmap_hash: int = field(default_factory=package_regmap_hash)
    format_major: int = FORMAT_MAJOR
    format_minor: int = FORMAT_MINOR

    @property
    def depths(self) -> dict[str, int]:
        return {"ACT": self.act_depth, "WGT": self.wgt_depth, "ACC": self.acc_depth, "PAR": self.par_depth}

    def tensor(self, name: str) -> TensorDesc:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def layers(self) -> dict[str, tuple[int, int]]:
        """Layer name -> [start, end) instruction index range, from the metadata."""
        return {k: (int(v[0]), int(v[1])) for k, v in self.meta.get("layers", {}).items()}

    # -- writing ------------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = json.dumps(self.meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
        instr_off = HEADER_SIZE
        tens_off = _align(instr_off + INSTR_BYTES * len(self.instructions))
        const_off = _align(tens_off + TENSOR_DESC_SIZE * len(self.tensors))
        meta_off = _align(const_off + len(self.const))
        buf = bytearray(meta_off + len(meta))
        _HDR.pack_into(buf, 0, MAGIC, self.format_major, self.format_minor, self.isa_hash, self.regmap_hash,
                       self.rows, self.cols, self.act_depth, self.wgt_depth, self.acc_depth, self.par_depth,
                       len(self.instructions), instr_off, const_off, len(self.const), self.const_dram_offset,
                       len(self.tensors), tens_off, self.dram_size, meta_off, len(meta))
        for i, ins in enumerate(self.instructions):
            buf[instr_off + INSTR_BYTES * i: instr_off + INSTR_BYTES * (i + 1)] = ins
        for i, t in enumerate(self.tensors):
            buf[tens_off + TENSOR_DESC_SIZE * i: tens_off + TENSOR_DESC_SIZE * (i + 1)] = t.to_bytes()
        buf[const_off: const_off + len(self.const)] = self.const
        buf[meta_off:] = meta
        struct.pack_into("<I", buf, CRC_OFFSET, zlib.crc32(bytes(buf)))
        return bytes(buf)

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    # -- reading ------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes, *, expect_isa_hash: int | None = -1,
                   expect_regmap_hash: int | None = -1) -> "Program":
        """Parse and validate. expect_*_hash: -1 (default) = this package's hash
        (the regmap hash is only checked once the package has one, i.e. != 0);
        None = do not check; an int = must equal it."""
        return _parse(bytes(data), expect_isa_hash, expect_regmap_hash)

    @classmethod
    def load(cls, path: str | Path, **kw) -> "Program":
        return cls.from_bytes(Path(path).read_bytes(), **kw)

    def validate(self) -> None:
        """Semantic checks (the same from_bytes applies), on an in-memory program."""
        _validate(self)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _fail(msg: str) -> ProgramFormatError:
    return ProgramFormatError(msg)


def _parse(data: bytes, expect_isa: int | None, expect_regmap: int | None) -> Program:
    if len(data) < HEADER_SIZE:
        raise _fail(f"truncated file: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    (magic, major, minor, ihash, rhash, rows, cols, act_d, wgt_d, acc_d, par_d, n_instr, instr_off,
     const_off, const_size, const_dram, n_tens, tens_off, dram_size, meta_off, meta_size) = _HDR.unpack_from(data)
    if magic != MAGIC:
        raise _fail(f"bad magic {magic!r} (expected {MAGIC!r})")
    if major != FORMAT_MAJOR or minor > FORMAT_MINOR:
        raise _fail(f"unsupported format version {major}.{minor} (reader supports {FORMAT_MAJOR}.{FORMAT_MINOR})")
    sections = {
        "instructions": (instr_off, n_instr * INSTR_BYTES),
        "tensor descriptors": (tens_off, n_tens * TENSOR_DESC_SIZE),
        "constant blob": (const_off, const_size),
        "metadata": (meta_off, meta_size),
    }
    end = max(off + size for off, size in sections.values())
    if end > len(data):
        raise _fail(f"truncated file: sections end at byte {end}, file has {len(data)} bytes")
    crc = struct.unpack_from("<I", data, CRC_OFFSET)[0]
    zeroed = data[:CRC_OFFSET] + bytes(4) + data[CRC_OFFSET + 4:]
    if zlib.crc32(zeroed) != crc:
        raise _fail(f"CRC mismatch: header says 0x{crc:08x}, contents give 0x{zlib.crc32(zeroed):08x}")
    if expect_isa == -1:
        expect_isa = isa_hash()
    if expect_isa is not None and ihash != expect_isa:
        raise _fail(f"ISA hash mismatch: program built for 0x{ihash:08x}, this ISA is 0x{expect_isa:08x}")
    if expect_regmap == -1:
        expect_regmap = package_regmap_hash() or None
    if expect_regmap is not None and rhash != expect_regmap:
        raise _fail(f"register map hash mismatch: program 0x{rhash:08x}, expected 0x{expect_regmap:08x}")
    if any(data[80:CRC_OFFSET]):
        raise _fail("reserved header bytes 80..123 are not zero")
    # Layout: aligned, non-overlapping, nothing after the last section, gaps zero.
    spans = sorted((off, off + size, name) for name, (off, size) in sections.items())
    prev_end, prev_name = HEADER_SIZE, "header"
    for off, stop, name in spans:
        if off % ALIGN:
            raise _fail(f"{name} section offset {off} is not {ALIGN}-byte aligned")
        if off < prev_end and stop > off:
            raise _fail(f"{name} section [{off}, {stop}) overlaps the {prev_name}")
        if stop > off:
            if any(data[prev_end:off]):
                raise _fail(f"non-zero padding before the {name} section")
            prev_end, prev_name = stop, name
    if end < len(data):
        raise _fail(f"{len(data) - end} trailing bytes after the last section")
    try:
        meta = json.loads(data[meta_off: meta_off + meta_size].decode("utf-8")) if meta_size else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _fail(f"metadata is not UTF-8 JSON: {e}") from None
    if not isinstance(meta, dict):
        raise _fail("metadata is not a JSON object")
    tensors = [_parse_desc(data, tens_off + TENSOR_DESC_SIZE * i, i) for i in range(n_tens)]
    prog = Program(
        rows=rows, cols=cols,
        instructions=[data[instr_off + INSTR_BYTES * i: instr_off + INSTR_BYTES * (i + 1)] for i in range(n_instr)],
        const=data[const_off: const_off + const_size], const_dram_offset=const_dram, tensors=tensors,
        dram_size=dram_size, act_depth=act_d, wgt_depth=wgt_d, acc_depth=acc_d, par_depth=par_d,
        meta=meta, isa_hash=ihash, regmap_hash=rhash, format_major=major, format_minor=minor,
    )
    _validate(prog)
    return prog


def _parse_desc(data: bytes, off: int, index: int) -> TensorDesc:
    (raw_name, role, dtype, layout, res8, n, h, w, c, dram_off, size, scale, zp, res) = _DESC.unpack_from(data, off)
    what = f"tensor descriptor {index}"
    name_b = raw_name.rstrip(b"\0")
    if not name_b or b"\0" in name_b:
        raise _fail(f"{what}: empty name or NUL inside the name")
    try:
        name = name_b.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(f"{what}: name is not UTF-8") from None
    if role not in TensorRole.__members__.values():
        raise _fail(f"{what} ({name}): unknown role {role}")
    if dtype != 0 or layout != 0:
        raise _fail(f"{what} ({name}): unsupported dtype {dtype} / layout {layout}")
    if res8 or any(res):
        raise _fail(f"{what} ({name}): reserved bytes are not zero")
    if not (scale > 0 and scale < float("inf")):
        raise _fail(f"{what} ({name}): scale {scale} is not a finite positive number")
    if not -128 <= zp <= 127:
        raise _fail(f"{what} ({name}): zero point {zp} outside int8")
    return TensorDesc(name, TensorRole(role), (n, h, w, c), dram_off, size, scale, zp, dtype, layout)


def _validate(p: Program) -> None:
    if p.rows < 1 or p.cols < 1:
        raise _fail(f"array size {p.rows}x{p.cols} is invalid")
    # Tensors and the constant blob: inside the window, pairwise disjoint.
    regions = [("constant blob", p.const_dram_offset, p.const_dram_offset + len(p.const))]
    names = set()
    for t in p.tensors:
        if t.name in names:
            raise _fail(f"duplicate tensor name {t.name!r}")
        names.add(t.name)
        if len(t.name.encode("utf-8")) > NAME_BYTES:
            raise _fail(f"tensor name {t.name!r} longer than {NAME_BYTES} bytes")
        n, h, w, c = t.shape
        if min(t.shape) < 1:
            raise _fail(f"tensor {t.name}: shape {t.shape} has a zero dimension")
        if t.size_bytes != n * h * w * padded_channels(c, p.rows):
            raise _fail(f"tensor {t.name}: size_bytes {t.size_bytes} != N*H*W*Cpad")
        regions.append((f"tensor {t.name}", t.dram_offset, t.dram_offset + t.size_bytes))
    for name, lo, hi in regions:
        if hi > p.dram_size and hi > lo:
            raise _fail(f"{name} [{lo}, {hi}) outside dram_size {p.dram_size}")
    live = sorted((lo, hi, name) for name, lo, hi in regions if hi > lo)
    for (lo1, hi1, n1), (lo2, hi2, n2) in zip(live, live[1:]):
        if lo2 < hi1:
            raise _fail(f"{n1} [{lo1}, {hi1}) overlaps {n2} [{lo2}, {hi2})")
    # Instructions: decodable, statically valid, within depths and the window, END last.
    if not p.instructions:
        raise _fail("no instructions (a program ends with END)")
    depths = p.depths
    for i, raw in enumerate(p.instructions):
        try:
            d = decode(raw)
            check_static(d, p.rows, p.cols, depths)
        except IsaError as e:
            raise _fail(f"instruction {i}: {e.code.name}: {e}") from None
        if d.name == "END" and i != len(p.instructions) - 1:
            raise _fail(f"instruction {i} is END but {len(p.instructions) - 1 - i} instruction(s) follow it")
        dma = dma_rows(d, p.rows, p.cols)
        if dma is not None and dma.end > p.dram_size:
            raise _fail(f"instruction {i} ({d.name}): DMA extent [{dma.offset}, {dma.end}) "
                        f"leaves [0, {p.dram_size})")
    if decode(p.instructions[-1]).name != "END":
        raise _fail("the program does not end with END")
    for k, (lo, hi) in p.layers().items():
        if not 0 <= lo <= hi <= len(p.instructions):
            raise _fail(f"layer {k!r}: instruction range [{lo}, {hi}) outside the program")

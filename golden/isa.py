"""The ISA spec (golden/isa.toml) as Python objects, plus instruction encode/decode.

isa.toml is the single source of truth; this module only reads it (once) and
applies its rules. Everything here is immutable.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from presil.golden.device_errors import ErrorCode, IsaError

INSTR_BYTES = 32
OPCODE_LSB, OPCODE_W = 0, 8
DEP_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
ENGINES = ("load", "compute", "store")


@dataclass(frozen=True)
class FieldSpec:
    name: str
    lsb: int
    width: int
    signed: bool
    min: int
    max: int
    desc: str

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


@dataclass(frozen=True)
class InstrSpec:
    name: str
    opcode: int
    engine: str  # load, compute, store or dispatch
    desc: str
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def allowed_deps(self) -> frozenset[str]:
        """Dependency flags this instruction may set: an engine without a
        previous (next) stage has none of the prev (next) flags."""
        if self.engine == "load":
            return frozenset({"pop_next", "push_next"})
        if self.engine == "compute":
            return frozenset(DEP_FLAGS)
        if self.engine == "store":
            return frozenset({"pop_prev", "push_prev"})
        return frozenset()


@dataclass(frozen=True)
class MemorySpec:
    name: str
    id: int
    desc: str
    word_bytes_expr: str  # "ROWS", "COLS" or "4*COLS"
    default_depth: int

    def word_bytes(self, rows: int, cols: int) -> int:
        return _eval_word_expr(self.word_bytes_expr, rows, cols)

    def elem_bytes(self) -> int:
        """Bytes per element of a word: int32 memories have '4*' in the width."""
        return 4 if self.word_bytes_expr.startswith("4*") else 1


@dataclass(frozen=True)
class Deps:
    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    def set_flags(self) -> tuple[str, ...]:
        return tuple(n for n in DEP_FLAGS if getattr(self, n))


@dataclass(frozen=True)
class DecodedInstr:
    name: str
    fields: Mapping[str, int]
    deps: Deps

    @property
    def spec(self) -> InstrSpec:
        return ISA.by_name[self.name]

    @property
    def engine(self) -> str:
        return self.spec.engine

    def __getitem__(self, key: str) -> int:
        return self.fields[key]


@dataclass(frozen=True)
class IsaSpec:
    name: str
    version: str
    instr_bits: int
    constants: Mapping[str, int]
    memories: Mapping[str, MemorySpec]
    default_rows: int
    default_cols: int
    axi_data_bytes: int
    dep_bits: Mapping[str, int]
    instructions: tuple[InstrSpec, ...]
    by_name: Mapping[str, InstrSpec] = field(repr=False)
    by_opcode: Mapping[int, InstrSpec] = field(repr=False)

    def memory_by_id(self, mem_id: int) -> MemorySpec:
        for m in self.memories.values():
            if m.id == mem_id:
                return m
        raise KeyError(mem_id)


def _eval_word_expr(expr: str, rows: int, cols: int) -> int:
    # The spec only uses products of integers and ROWS/COLS; no eval().
    value = 1
    for term in expr.replace(" ", "").split("*"):
        value *= {"ROWS": rows, "COLS": cols}.get(term) or int(term)
    return value


def isa_toml_bytes() -> bytes:
    """The spec file's bytes with CRLF normalised to LF (what the hash covers)."""
    raw = resources.files("presil.golden").joinpath("isa.toml").read_bytes()
    return raw.replace(b"\r\n", b"\n")


def isa_hash() -> int:
    """ISA_HASH: first 4 bytes (little-endian) of SHA-256 of isa.toml."""
    return _hash_cached()


@cache
def _hash_cached() -> int:
    return spec_hash(isa_toml_bytes())


def spec_hash(raw: bytes) -> int:
    """ISA_HASH of a spec file's bytes (CRLF normalised to LF first)."""
    return int.from_bytes(hashlib.sha256(raw.replace(b"\r\n", b"\n")).digest()[:4], "little")


def _field_from_toml(instr: str, d: dict) -> FieldSpec:
    width, signed = int(d["width"]), bool(d.get("signed", False))
    lo = -(1 << (width - 1)) if signed else 0
    hi = (1 << (width - 1)) - 1 if signed else (1 << width) - 1
    fmin, fmax = int(d.get("min", lo)), int(d.get("max", hi))
    if not lo <= fmin <= fmax <= hi:
        raise ValueError(f"isa.toml: {instr}.{d['name']}: min/max outside the field's width")
    return FieldSpec(d["name"], int(d["lsb"]), width, signed, fmin, fmax, d.get("desc", ""))


def load_spec(raw: bytes) -> IsaSpec:
    """Parse a spec file (the package's own is ISA; generators may read another copy)."""
    doc = tomllib.loads(raw.replace(b"\r\n", b"\n").decode("utf-8"))
    dep_bits = MappingProxyType({k: int(v) for k, v in doc["deps"].items()})
    instrs = []
    for d in doc["instructions"]:
        fields = tuple(_field_from_toml(d["name"], f) for f in d.get("fields", []))
        instrs.append(InstrSpec(d["name"], int(d["opcode"]), d["engine"], d["desc"].strip(), fields))
    _check_layout(instrs, dep_bits)
    mems = {
        name: MemorySpec(name, int(m["id"]), m["desc"], m["word_bytes"], int(m["default_depth"]))
        for name, m in doc["memories"].items()
    }
    return IsaSpec(
        name=doc["isa"]["name"],
        version=doc["isa"]["version"],
        instr_bits=int(doc["isa"]["instr_bits"]),
        constants=MappingProxyType(dict(doc["constants"])),
        memories=MappingProxyType(mems),
        default_rows=int(doc["array"]["default_rows"]),
        default_cols=int(doc["array"]["default_cols"]),
        axi_data_bytes=int(doc["array"]["axi_data_bytes"]),
        dep_bits=dep_bits,
        instructions=tuple(instrs),
        by_name=MappingProxyType({i.name: i for i in instrs}),
        by_opcode=MappingProxyType({i.opcode: i for i in instrs}),
    )


def _check_layout(instrs: list[InstrSpec], dep_bits: Mapping[str, int]) -> None:
    """Fail loudly on a spec whose fields overlap or leave the 256-bit word."""
    for ins in instrs:
        used = [(OPCODE_LSB, OPCODE_W, "opcode")] + [(b, 1, n) for n, b in dep_bits.items()]
        used += [(f.lsb, f.width, f.name) for f in ins.fields]
        taken = 0
        for lsb, width, name in used:
            bits = ((1 << width) - 1) << lsb
            if taken & bits or lsb + width > INSTR_BYTES * 8:
                raise ValueError(f"isa.toml: {ins.name}.{name} overlaps or leaves the instruction")
            taken |= bits


ISA: IsaSpec = load_spec(isa_toml_bytes())


def reserved_mask(spec: InstrSpec, dep_bits: Mapping[str, int] | None = None) -> int:
    """Bits of the instruction that no field, opcode or dependency flag covers."""
    used = ((1 << OPCODE_W) - 1) << OPCODE_LSB
    for b in (dep_bits or ISA.dep_bits).values():
        used |= 1 << b
    for f in spec.fields:
        used |= f.mask << f.lsb
    return ((1 << (INSTR_BYTES * 8)) - 1) & ~used


_RESERVED = {s.name: reserved_mask(s) for s in ISA.instructions}


def encode(name: str, **fields: int | bool) -> bytes:
    """Encode one instruction; dependency flags are the keywords pop_prev,
    pop_next, push_prev, push_next. Missing fields default to 0 where 0 is valid."""
    spec = ISA.by_name.get(name)
    if spec is None:
        raise IsaError(ErrorCode.ILLEGAL_OPCODE, f"unknown instruction {name!r}")
    word = spec.opcode << OPCODE_LSB
    for flag in DEP_FLAGS:
        if flag not in fields:
            continue
        value = fields[flag]
        if value not in (0, 1, False, True):
            raise IsaError(ErrorCode.BAD_FIELD, f"{name}: {flag} must be a boolean, got {value!r}")
        if value and flag not in spec.allowed_deps:
            raise IsaError(ErrorCode.RESERVED_BITS, f"{name}: {flag} not allowed on the {spec.engine} engine")
        word |= int(bool(value)) << ISA.dep_bits[flag]
    unknown = set(fields) - set(spec.field_names) - set(DEP_FLAGS)
    if unknown:
        raise IsaError(ErrorCode.BAD_FIELD, f"{name}: unknown field(s) {', '.join(sorted(unknown))}")
    for f in spec.fields:
        if f.name in fields:
            value = fields[f.name]
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    value = int(value)  # numpy ints
                except (TypeError, ValueError):
                    raise IsaError(ErrorCode.BAD_FIELD, f"{name}.{f.name}: not an integer: {value!r}") from None
                if value != fields[f.name]:
                    raise IsaError(ErrorCode.BAD_FIELD, f"{name}.{f.name}: not an integer: {fields[f.name]!r}")
        elif f.min <= 0 <= f.max:
            value = 0
        else:
            raise IsaError(ErrorCode.BAD_FIELD, f"{name}: missing field {f.name} (0 is not valid)")
        if not f.min <= value <= f.max:
            raise IsaError(ErrorCode.BAD_FIELD, f"{name}.{f.name} = {value} outside [{f.min}, {f.max}]")
        word |= (value & f.mask) << f.lsb
    return word.to_bytes(INSTR_BYTES, "little")


def decode(data: bytes) -> DecodedInstr:
    """Decode one 32-byte instruction, raising IsaError with the device error
    code the hardware would report."""
    if len(data) != INSTR_BYTES:
        raise ValueError(f"an instruction is {INSTR_BYTES} bytes, got {len(data)}")
    word = int.from_bytes(bytes(data), "little")
    opcode = (word >> OPCODE_LSB) & ((1 << OPCODE_W) - 1)
    spec = ISA.by_opcode.get(opcode)
    if spec is None:
        raise IsaError(ErrorCode.ILLEGAL_OPCODE, f"unknown opcode 0x{opcode:02x}")
    stray = word & _RESERVED[spec.name]
    if stray:
        low = (stray & -stray).bit_length() - 1
        raise IsaError(ErrorCode.RESERVED_BITS, f"{spec.name}: reserved bit {low} set")
    flags = {n: bool((word >> b) & 1) for n, b in ISA.dep_bits.items()}
    for n, v in flags.items():
        if v and n not in spec.allowed_deps:
            raise IsaError(ErrorCode.RESERVED_BITS, f"{spec.name}: {n} not allowed on the {spec.engine} engine")
    values = {}
    for f in spec.fields:
        raw = (word >> f.lsb) & f.mask
        v = raw - (1 << f.width) if f.signed and raw >> (f.width - 1) else raw
        if not f.min <= v <= f.max:
            raise IsaError(ErrorCode.BAD_FIELD, f"{spec.name}.{f.name} = {v} outside [{f.min}, {f.max}]")
        values[f.name] = v
    return DecodedInstr(spec.name, MappingProxyType(values), Deps(**flags))


def encode_decoded(d: DecodedInstr) -> bytes:
    """Inverse of decode()."""
    return encode(d.name, **dict(d.fields), **{n: True for n in d.deps.set_flags()})

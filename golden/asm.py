"""Writing programs: ProgramBuilder (Python API) and a one-instruction-per-line
text assembler/disassembler (`GEMM in_h=8 in_w=8 ... pop_prev push_next`)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from presil.golden.device_errors import IsaError
from presil.golden.footprint import sram_accesses
from presil.golden.isa import DEP_FLAGS, ISA, decode, encode
from presil.golden.layout import padded_channels
from presil.golden.program import Program, TensorDesc, TensorRole, package_regmap_hash


class ProgramBuilder:
    """Collects instructions, constants and tensors and lays out the DMA window:
    [constant blob][tensors and scratch in allocation order]."""

    def __init__(self, rows: int = 16, cols: int = 16, *, name: str = "", compiler: str = "presil.golden.asm",
                 regmap_hash: int | None = None):
        self.rows, self.cols = rows, cols
        self.instructions: list[bytes] = []
        self._const = bytearray()
        self._tensors: list[TensorDesc] = []
        self._alloc_end: int | None = None  # set once tensors/scratch start after the blob
        self._layers: dict[str, list[int]] = {}
        self._meta = {"name": name, "compiler": compiler}
        self._regmap_hash = regmap_hash
        # Every DMA word size divides this, so constants can feed any memory.
        self.const_align = math.lcm(32, rows, cols, 4 * cols)
        self.tensor_align = math.lcm(32, rows)

    # -- device memory ------------------------------------------------------
    def const(self, data: bytes | np.ndarray, *, align: int | None = None) -> int:
        """Append to the constant blob; returns its DMA-window offset."""
        if self._alloc_end is not None:
            raise ValueError("add every constant before the first tensor()/scratch(): tensors follow the blob")
        a = align or self.const_align
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        self._const += bytes(-len(self._const) % a)
        off = len(self._const)
        self._const += raw
        return off

    def _alloc(self, nbytes: int) -> int:
        if self._alloc_end is None:
            self._alloc_end = len(self._const)
        off = -(-self._alloc_end // self.tensor_align) * self.tensor_align
        self._alloc_end = off + nbytes
        return off

    def tensor(self, name: str, role: TensorRole | str | int, shape_nhwc, scale: float = 1.0,
               zero_point: int = 0) -> TensorDesc:
        """Declare a tensor and allocate its window space (padded NHWC layout)."""
        if isinstance(role, str):
            role = TensorRole[role.upper()]
        shape = tuple(int(v) for v in shape_nhwc)
        if len(shape) != 4:
            raise ValueError(f"tensor {name}: shape must be NHWC, got {shape_nhwc}")
        n, h, w, c = shape
        size = n * h * w * padded_channels(c, self.rows)
        t = TensorDesc(name, TensorRole(role), shape, self._alloc(size), size, float(scale), int(zero_point))
        self._tensors.append(t)
        return t

    def scratch(self, nbytes: int) -> int:
        """Window space for intermediate data no tensor descriptor describes."""
        return self._alloc(int(nbytes))

    # -- instructions -------------------------------------------------------
    def emit(self, name: str, **fields) -> int:
        """Encode and append one instruction; returns its index."""
        if "mem" in fields and isinstance(fields["mem"], str):
            fields["mem"] = ISA.memories[fields["mem"]].id
        self.instructions.append(encode(name, **fields))
        return len(self.instructions) - 1

    def nop(self) -> int:
        return self.emit("NOP")

    def load(self, **fields) -> int:
        return self.emit("LOAD", **fields)

    def store(self, **fields) -> int:
        return self.emit("STORE", **fields)

    def gemm(self, **fields) -> int:
        return self.emit("GEMM", **fields)

    def post(self, **fields) -> int:
        return self.emit("POST", **fields)

    def add(self, **fields) -> int:
        return self.emit("ADD", **fields)

    def pool(self, **fields) -> int:
        return self.emit("POOL", **fields)

    def fence(self) -> int:
        return self.emit("FENCE")

    def end(self) -> int:
        return self.emit("END")

    @contextmanager
    def layer(self, name: str) -> Iterator[None]:
        """Record the instructions emitted inside as layer `name` in the metadata."""
        if name in self._layers:
            raise ValueError(f"layer {name!r} already recorded")
        start = len(self.instructions)
        yield
        self._layers[name] = [start, len(self.instructions)]

    def build(self, **meta) -> Program:
        """The finished, validated program; extra keywords go into the metadata."""
        depths = {m: 0 for m in ISA.memories}
        for raw in self.instructions:
            for a in sram_accesses(decode(raw), self.rows, self.cols):
                depths[a.mem] = max(depths[a.mem], a.hi + 1)
        end = self._alloc_end if self._alloc_end is not None else len(self._const)
        p = Program(
            rows=self.rows, cols=self.cols, instructions=list(self.instructions), const=bytes(self._const),
            const_dram_offset=0, tensors=list(self._tensors), dram_size=-(-end // 32) * 32,
            act_depth=depths["ACT"], wgt_depth=depths["WGT"], acc_depth=depths["ACC"], par_depth=depths["PAR"],
            meta={**self._meta, "layers": dict(self._layers), **meta},
            regmap_hash=package_regmap_hash() if self._regmap_hash is None else self._regmap_hash,
        )
        p.validate()
        return p


def assemble(text: str) -> list[bytes]:
    """Text -> encoded instructions. `#` starts a comment; values are Python
    integer literals (decimal, 0x.., negative); dependency flags are bare words."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        fields: dict[str, int | bool] = {}
        for w in words[1:]:
            key, eq, val = w.partition("=")
            if key in fields:
                raise ValueError(f"line {n}: {key} given twice")
            if not eq:
                if key not in DEP_FLAGS:
                    raise ValueError(f"line {n}: {w!r} is neither field=value nor a dependency flag")
                fields[key] = True
                continue
            try:
                fields[key] = int(val, 0)
            except ValueError:
                raise ValueError(f"line {n}: {key}: {val!r} is not an integer") from None
        name = words[0].upper()
        try:
            out.append(encode(name, **fields))
        except IsaError as e:
            raise IsaError(e.code, f"line {n}: {e}") from None
    return out


def disassemble(instrs: list[bytes] | Program) -> str:
    """Encoded instructions -> text that assemble() turns back into the same bytes."""
    if isinstance(instrs, Program):
        instrs = instrs.instructions
    lines = []
    for raw in instrs:
        d = decode(raw)
        parts = [d.name] + [f"{k}={v}" for k, v in d.fields.items()] + list(d.deps.set_flags())
        lines.append(" ".join(parts))
    return "\n".join(lines) + ("\n" if lines else "")

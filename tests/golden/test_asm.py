"""Text assembler/disassembler and ProgramBuilder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presil.golden.asm import ProgramBuilder, assemble, disassemble
from presil.golden.device_errors import IsaError, ProgramFormatError
from presil.golden.isa import ISA, decode, encode

TEXT = """
# a comment line
LOAD mem=1 dram_offset=0x40 y_count=2 dram_stride=64 x_words=4 push_next   # trailing comment
gemm in_h=3 in_w=3 in_cb=1 cb_count=1 out_h=1 out_w=1 k_h=3 k_w=3 stride_h=1 stride_w=1 in_zp=-7 pop_prev
POST count=1 out_stride=1 clamp_min=-128 clamp_max=127 out_zp=-1 push_next
STORE mem=0 y_count=1 x_words=1 pop_prev
FENCE
NOP
END
"""


def test_assemble_fields_and_flags():
    instrs = assemble(TEXT)
    assert [decode(i).name for i in instrs] == ["LOAD", "GEMM", "POST", "STORE", "FENCE", "NOP", "END"]
    ld = decode(instrs[0])
    assert ld["dram_offset"] == 64 and ld["mem"] == 1 and ld.deps.push_next and not ld.deps.pop_next
    assert decode(instrs[1])["in_zp"] == -7 and decode(instrs[1]).deps.pop_prev


def test_text_round_trip_is_exact():
    instrs = assemble(TEXT)
    text = disassemble(instrs)
    assert assemble(text) == instrs
    assert disassemble(assemble(text)) == text
    assert text.splitlines()[0].startswith("LOAD mem=1 dram_offset=64 ")
    assert text.splitlines()[0].endswith(" push_next")


@st.composite
def programs(draw):
    out = []
    for _ in range(draw(st.integers(1, 6))):
        spec = draw(st.sampled_from(ISA.instructions))
        fields = {f.name: draw(st.integers(f.min, f.max)) for f in spec.fields}
        fields.update({d: draw(st.booleans()) for d in sorted(spec.allowed_deps)})
        out.append(encode(spec.name, **fields))
    return out


@settings(max_examples=100, deadline=None)
@given(programs())
def test_random_round_trip(instrs):
    assert assemble(disassemble(instrs)) == instrs


@pytest.mark.parametrize("text,match", [
    ("LOAD y_count=1 x_words=1\nLOAD y_count=0 x_words=1", r"line 2: LOAD.y_count = 0"),
    ("LOAD y_count=1 x_words=1 frob", r"line 1: 'frob' is neither"),
    ("LOAD y_count=one x_words=1", r"line 1: y_count: 'one' is not an integer"),
    ("LOAD y_count=1 y_count=2 x_words=1", r"line 1: y_count given twice"),
    ("LOAD y_count=1 x_words=1 pop_prev", r"line 1: LOAD: pop_prev not allowed"),
    ("JUMP", r"line 1: unknown instruction 'JUMP'"),
])
def test_assembler_errors_name_the_line(text, match):
    with pytest.raises((ValueError, IsaError), match=match):
        assemble(text)


def test_builder_layout_and_meta():
    b = ProgramBuilder(16, 16, name="net", regmap_hash=0)
    c0 = b.const(b"\x01" * 10)
    c1 = b.const(np.zeros(5, np.int8))
    assert c0 == 0 and c1 == 64  # aligned for PAR words (4*COLS bytes)
    t = b.tensor("in", "input", (1, 1, 1, 3))
    s = b.scratch(100)
    assert t.dram_offset == 96 and t.size_bytes == 16 and s == 128
    with pytest.raises(ValueError, match="before the first tensor"):
        b.const(b"late")
    with b.layer("l0"):
        b.load(mem="ACT", dram_offset=t.dram_offset, sram_addr=7, y_count=1, x_words=1)
    b.end()
    p = b.build(extra=1)
    assert p.meta == {"name": "net", "compiler": "presil.golden.asm", "layers": {"l0": [0, 1]}, "extra": 1}
    assert p.dram_size == 256 and p.act_depth == 8 and p.const == b"\x01" * 10 + bytes(54) + bytes(5)


def test_builder_rejects_dma_outside_allocations():
    b = ProgramBuilder()
    t = b.tensor("x", "input", (1, 1, 1, 16))
    b.load(mem="ACT", dram_offset=t.dram_offset + 32, y_count=1, x_words=1)
    b.end()
    with pytest.raises(ProgramFormatError, match="DMA extent"):
        b.build()

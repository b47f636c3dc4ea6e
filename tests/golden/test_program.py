"""Program files: round trip and strict rejection of every kind of corruption."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from presil.golden.asm import ProgramBuilder
from presil.golden.device_errors import ProgramFormatError
from presil.golden.isa import encode, isa_hash
from presil.golden.program import HEADER_SIZE, Program, TensorRole


def sample() -> Program:
    b = ProgramBuilder(16, 16, name="sample", regmap_hash=0x1234)
    w = b.const(np.arange(256, dtype=np.uint8))
    x = b.tensor("x", "input", (1, 2, 2, 20), 0.5, -3)
    y = b.tensor("y", TensorRole.OUTPUT, (1, 2, 2, 20), 0.25, 7)
    with b.layer("copy"):
        b.load(mem="WGT", dram_offset=w, y_count=1, x_words=16)
        b.load(mem="ACT", dram_offset=x.dram_offset, y_count=1, x_words=8, push_next=True)
        b.gemm(in_h=2, in_w=2, in_cb=2, cb_count=1, out_h=2, out_w=2, k_h=1, k_w=1, stride_h=1, stride_w=1,
               pop_prev=True, push_prev=True)
        b.store(mem=0, dram_offset=y.dram_offset, y_count=1, x_words=8)
        b.load(mem="ACT", dram_offset=x.dram_offset, y_count=1, x_words=8, pop_next=True)
    b.end()
    return b.build()


def reseal(data: bytes | bytearray) -> bytes:
    """Recompute the CRC so a test reaches the check after it."""
    buf = bytearray(data)
    struct.pack_into("<I", buf, 124, 0)
    struct.pack_into("<I", buf, 124, zlib.crc32(bytes(buf)))
    return bytes(buf)


def load(data: bytes) -> Program:
    return Program.from_bytes(data, expect_regmap_hash=0x1234)


def test_round_trip(tmp_path):
    p = sample()
    data = p.to_bytes()
    q = load(data)
    assert q == p and q.to_bytes() == data
    assert q.layers() == {"copy": (0, 5)}
    assert q.act_depth == 8 and q.wgt_depth == 16 and q.acc_depth == 4 and q.par_depth == 0
    assert q.isa_hash == isa_hash() and q.meta["name"] == "sample"
    assert q.tensor("x").dram_offset >= 256 and q.tensor("y").size_bytes == 2 * 2 * 32
    path = tmp_path / "p.prg"
    p.save(path)
    assert Program.load(path, expect_regmap_hash=0x1234) == p
    hdr = data[:HEADER_SIZE]
    assert hdr[:8] == b"PRSLPRG\0" and struct.unpack_from("<I", hdr, 40)[0] == 6
    assert all(struct.unpack_from("<I", hdr, o)[0] % 32 == 0 for o in (44, 48, 64, 72))


def test_every_flipped_byte_is_caught():
    data = sample().to_bytes()
    for i in range(0, len(data), 7):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(ProgramFormatError):
            load(bytes(bad))


def test_flipped_byte_reports_crc():
    data = bytearray(sample().to_bytes())
    data[HEADER_SIZE + 40] ^= 1
    with pytest.raises(ProgramFormatError, match="CRC mismatch"):
        load(bytes(data))


@pytest.mark.parametrize("cut", [0, 100, 200, -1])
def test_truncated(cut):
    data = sample().to_bytes()
    with pytest.raises(ProgramFormatError, match="truncated"):
        load(data[:cut])


def test_bad_magic():
    data = bytearray(sample().to_bytes())
    data[0:8] = b"NOTAPROG"
    with pytest.raises(ProgramFormatError, match="bad magic"):
        load(reseal(data))


@pytest.mark.parametrize("major,minor", [(2, 0), (0, 0), (1, 1)])
def test_unsupported_version(major, minor):
    data = bytearray(sample().to_bytes())
    struct.pack_into("<HH", data, 8, major, minor)
    with pytest.raises(ProgramFormatError, match=f"unsupported format version {major}.{minor}"):
        load(reseal(data))


def test_isa_and_regmap_hash_mismatch():
    p = sample()
    p.isa_hash ^= 1
    with pytest.raises(ProgramFormatError, match="ISA hash mismatch"):
        load(p.to_bytes())
    assert Program.from_bytes(p.to_bytes(), expect_isa_hash=None, expect_regmap_hash=None).isa_hash == p.isa_hash
    with pytest.raises(ProgramFormatError, match="register map hash mismatch"):
        Program.from_bytes(sample().to_bytes(), expect_regmap_hash=0x9999)


def test_section_overlap_and_alignment():
    data = bytearray(sample().to_bytes())
    instr_off = struct.unpack_from("<I", data, 44)[0]
    struct.pack_into("<I", data, 64, instr_off + 32)  # tensors inside the instruction stream
    with pytest.raises(ProgramFormatError, match="overlaps"):
        load(reseal(data))
    struct.pack_into("<I", data, 64, instr_off + 8)
    with pytest.raises(ProgramFormatError, match="not 32-byte aligned"):
        load(reseal(data))


def test_trailing_bytes():
    with pytest.raises(ProgramFormatError, match="trailing bytes"):
        load(reseal(sample().to_bytes() + bytes(32)))


def test_dma_out_of_window():
    p = sample()
    p.instructions[1] = encode("LOAD", mem=0, dram_offset=p.dram_size - 16, y_count=1, x_words=2, push_next=True)
    with pytest.raises(ProgramFormatError, match=r"instruction 1 \(LOAD\): DMA extent .* leaves \[0, "):
        load(p.to_bytes())


def test_missing_end_and_instructions_after_end():
    p = sample()
    p.instructions = p.instructions[:-1]
    with pytest.raises(ProgramFormatError, match="does not end with END"):
        load(p.to_bytes())
    p = sample()
    p.instructions.append(encode("NOP"))
    with pytest.raises(ProgramFormatError, match="instruction 5 is END but 1 instruction"):
        load(p.to_bytes())


def test_undecodable_instruction_named():
    p = sample()
    p.instructions[2] = bytes([0x7F]) + bytes(31)
    with pytest.raises(ProgramFormatError, match="instruction 2: ILLEGAL_OPCODE"):
        load(p.to_bytes())


def test_sram_beyond_declared_depth():
    p = sample()
    p.act_depth = 4
    with pytest.raises(ProgramFormatError, match="instruction 1: BAD_FIELD.*ACT word 7 beyond depth 4"):
        load(p.to_bytes())


def test_bad_tensor_descriptors():
    p = sample()
    p.tensors[1] = type(p.tensors[1])(**{**p.tensors[1].__dict__, "dram_offset": p.tensors[0].dram_offset + 32})
    with pytest.raises(ProgramFormatError, match="tensor x .* overlaps tensor y"):
        load(p.to_bytes())
    p = sample()
    p.tensors[1] = type(p.tensors[1])(**{**p.tensors[1].__dict__, "name": "x"})
    with pytest.raises(ProgramFormatError, match="duplicate tensor name 'x'"):
        load(p.to_bytes())
    p = sample()
    p.tensors[0] = type(p.tensors[0])(**{**p.tensors[0].__dict__, "size_bytes": 80})
    with pytest.raises(ProgramFormatError, match="size_bytes"):
        load(p.to_bytes())
    p = sample()
    p.tensors[1] = type(p.tensors[1])(**{**p.tensors[1].__dict__, "dram_offset": p.dram_size})
    with pytest.raises(ProgramFormatError, match="outside dram_size"):
        load(p.to_bytes())
    p = sample()
    p.tensors[0] = type(p.tensors[0])(**{**p.tensors[0].__dict__, "dram_offset": 64})
    with pytest.raises(ProgramFormatError, match="constant blob .* overlaps tensor x"):
        load(p.to_bytes())

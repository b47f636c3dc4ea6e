"""Error-path programs: each must stop the NPU with the error code (and pc) the
golden ISS raises for it; cases the ISS cannot model (a watchdog expiry is a
deadlock to the ISS, a bus error needs a faulty memory) name their expected
code in `expect_error`."""

from __future__ import annotations

from presil.golden.asm import ProgramBuilder
from presil.golden.isa import ISA, encode
from presil.tb.uvm.items import ProgramItem
from presil.tb.uvm.mem_agent import MemConfig

R = C = 16


def _base() -> tuple[ProgramBuilder, object]:
    b = ProgramBuilder(R, C, name="error")
    t = b.tensor("x", "input", (1, 4, 4, 16))
    return b, t


def _with(p, pc: int, raw: bytes):
    p.instructions[pc] = raw
    return p


def error_items() -> list[ProgramItem]:
    items = []
    # ILLEGAL_OPCODE: opcode 0xFF in the second instruction.
    b, t = _base()
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16)
    b.nop()
    b.end()
    p = b.build()
    items.append(ProgramItem("err.illegal_opcode", _with(p, 1, bytes([0xFF]) + bytes(31))))
    # RESERVED_BITS: the top bit of a NOP.
    b, t = _base()
    b.nop()
    b.end()
    p = b.build()
    raw = bytearray(encode("NOP"))
    raw[31] |= 0x80
    items.append(ProgramItem("err.reserved_bits", _with(p, 0, bytes(raw))))
    # BAD_FIELD: an ACT range beyond the memory's depth.
    b, t = _base()
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16)
    b.end()
    p = b.build()
    items.append(ProgramItem("err.bad_field", _with(p, 0, encode("LOAD", mem=0, dram_offset=t.dram_offset,
                                                                   sram_addr=16380, y_count=1, x_words=16))))
    # DMA_WINDOW: a row ending outside the window (under back-pressure).
    b, t = _base()
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16)
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16)
    b.end()
    p = b.build()           # a valid program, then a LOAD the format check would refuse
    bad = encode("LOAD", mem=0, dram_offset=t.dram_offset + 16 * 8, y_count=1, x_words=16)
    items.append(ProgramItem("err.dma_window", _with(p, 1, bad), {}, mem=MemConfig(5, 3, 0.3, 3)))
    # DMA_BUS_ERROR: SLVERR on a LOAD beat.
    b, t = _base()
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16)
    b.end()
    items.append(ProgramItem("err.bus", b.build(), error_range=(t.dram_offset + 64, t.dram_offset + 80),
                             expect_error="DMA_BUS_ERROR"))
    # TOKEN_LEAK: a pushed l2c token nobody pops.
    b, t = _base()
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16, push_next=True)
    b.end()
    items.append(ProgramItem("err.token_leak", b.build()))
    # WATCHDOG: a GEMM waiting for a token no LOAD pushes.
    b, t = _base()
    b.gemm(in_h=1, in_w=1, in_cb=1, cb_count=1, out_h=1, out_w=1, k_h=1, k_w=1, stride_h=1, stride_w=1,
           pop_prev=True)
    b.end()
    items.append(ProgramItem("err.watchdog", b.build(), watchdog=300, expect_error="WATCHDOG"))
    # CMD_OVERRUN: no END.
    b, t = _base()
    b.nop()
    b.nop()
    b.end()
    p = b.build()
    items.append(ProgramItem("err.cmd_overrun", _with(p, 2, encode("NOP")), expect_error="CMD_OVERRUN"))
    # TOKEN_OVERFLOW: more l2c pushes than token_max.
    b, t = _base()
    for _ in range(int(ISA.constants["token_max"]) + 1):
        b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=1, push_next=True)
    b.end()
    items.append(ProgramItem("err.token_overflow", b.build()))
    # and a good program after the errors: the soft resets left the NPU usable.
    b, t = _base()
    y = b.tensor("y", "output", (1, 4, 4, 16))
    b.load(mem="ACT", dram_offset=t.dram_offset, y_count=1, x_words=16)
    b.fence()
    b.store(mem="ACT", dram_offset=y.dram_offset, y_count=1, x_words=16)
    b.end()
    items.append(ProgramItem("err.recovered", b.build(), {"x": __import__("numpy").ones((1, 4, 4, 16), "int8")}))
    # Every other case under back-pressure: error handling must not depend on bus timing.
    for i, it in enumerate(items):
        if i % 2 and it.mem == MemConfig():
            it.mem = MemConfig(6, 4, 0.3, i)
    return items

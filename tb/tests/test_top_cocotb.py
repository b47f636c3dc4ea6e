"""cocotb tests of npu_top (through rtl/sim/npu_tb_top.sv + the DPI memory model).

Programs are built with presil.golden.asm, written to device memory by the
DPI backdoor (tb/memory.py), started through the AXI4-Lite registers, and
awaited on the interrupt. Device memory is then compared bit for bit with the
golden ISS run on the same program and the same memory image. No Python runs
per cycle: the tests wait on `irq` (or a fixed number of cycles for the
abort/soft-reset cases).

The token test uses GEMM as the token relay between load and store; the
conv test runs the real compute engine through LOAD/GEMM/POST/STORE.
"""

from __future__ import annotations

import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from presil.golden import iss
from presil.golden.asm import ProgramBuilder
from presil.golden.device_errors import DeviceError, ErrorCode
from presil.golden.isa import encode, isa_hash
from presil.host.smoke import conv_layer_raw
from presil.tb.memory import AxiMem
from presil.tb.runner import sim_params, write_metrics

P = sim_params()
# Which compute engine this build has (set by tests/rtl/test_top.py).
ROWS, COLS = int(P.get("ROWS", 16)), int(P.get("COLS", 16))
CLK_NS = 10

# register offsets (npu_regmap_pkg / docs/registers.md)
MAGIC, VERSION, ISA_HASH, REGMAP_HASH, BUILD_HASH = 0x000, 0x004, 0x008, 0x00C, 0x010
HW_ARRAY, HW_ACT, HW_WGT, HW_ACC, HW_PAR, HW_CLK = 0x014, 0x018, 0x01C, 0x020, 0x024, 0x028
SCRATCH, CTRL, STATUS, STATUS_PC = 0x030, 0x040, 0x044, 0x048
CMD_BASE, CMD_LEN, DOORBELL = 0x050, 0x054, 0x058
IRQ_STATUS, IRQ_ENABLE = 0x060, 0x064
ERR_CODE, ERR_ADDR, ERR_PC, WATCHDOG = 0x068, 0x06C, 0x070, 0x078
WIN_BASE, WIN_LIMIT = 0x080, 0x084
PERF = {"free": 0x100, "busy": 0x108, "mac": 0x110, "rd": 0x118, "wr": 0x120, "l2c": 0x128, "s2c": 0x130,
        "c2l": 0x138, "c2s": 0x140, "dma": 0x148, "retired": 0x150}

CMD_ADDR = 0x0001_0000      # instruction stream
WIN_ADDR = 0x0010_0000      # DMA window base
GUARD = 0x0040_0000         # bytes of device memory checked for stray writes
BUILD_HASH_VALUE = 0x7E57B11D


class Npu:
    """Register access, program loading and waiting, over one simulation."""

    def __init__(self, dut):
        self.dut = dut
        self.mem = AxiMem()
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst_n,
                                  reset_active_level=False)

    async def rd(self, addr: int) -> int:
        return await self.axil.read_dword(addr)

    async def wr(self, addr: int, value: int) -> None:
        await self.axil.write_dword(addr, value & 0xFFFF_FFFF)

    async def perf(self, name: str) -> int:
        a = PERF[name]
        while True:
            hi = await self.rd(a + 4)
            lo = await self.rd(a)
            if await self.rd(a + 4) == hi:
                return hi << 32 | lo

    async def start(self, instrs: list[bytes], win: np.ndarray, *, watchdog: int = 0,
                    cmd_len: int | None = None) -> None:
        self.mem.write(CMD_ADDR, b"".join(instrs))
        self.mem.write(WIN_ADDR, win)
        await self.wr(CMD_BASE, CMD_ADDR)
        await self.wr(CMD_LEN, len(instrs) if cmd_len is None else cmd_len)
        await self.wr(WIN_BASE, WIN_ADDR)
        await self.wr(WIN_LIMIT, WIN_ADDR + win.size)
        await self.wr(WATCHDOG, watchdog)
        await self.wr(IRQ_STATUS, 3)
        await self.wr(IRQ_ENABLE, 3)
        await self.wr(DOORBELL, 1)

    async def wait_irq(self, timeout_us: int = 20_000) -> None:
        if not self.dut.irq.value:
            await with_timeout(RisingEdge(self.dut.irq), timeout_us, "us")

    async def run(self, instrs, win, **kw) -> dict:
        await self.start(instrs, win, **kw)
        await self.wait_irq()
        return await self.state()

    async def state(self) -> dict:
        assert self.mem.violations() == 0, f"{self.mem.violations()} AXI burst rule violations"
        return {"status": await self.rd(STATUS), "irq": await self.rd(IRQ_STATUS),
                "code": await self.rd(ERR_CODE), "pc": await self.rd(ERR_PC), "addr": await self.rd(ERR_ADDR)}


async def setup(dut, *, rd_latency=1, wr_latency=1, stall=0.0, seed=1) -> Npu:
    Clock(dut.clk, CLK_NS, unit="ns").start()     # cocotb stops it at the end of each test
    dut.rst_n.value = 0
    npu = Npu(dut)
    npu.mem.configure(rd_latency, wr_latency, stall, seed)
    npu.mem.error_range()
    # A known pattern over the guarded area: stray writes show up as differences.
    rng = np.random.default_rng(seed)
    npu.mem.write(0, rng.integers(0, 256, GUARD, dtype=np.uint8))
    await ClockCycles(dut.clk, 4)
    dut.rst_n.value = 1
    await ClockCycles(dut.clk, 2)
    return npu


def window_image(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def _iss(instrs, w: np.ndarray):
    """presil.golden.iss on raw instruction words against window image `w`
    (modified in place): iss.execute where it exists, else iss.run on a bare
    Program with the same words."""
    if hasattr(iss, "execute"):
        return iss.execute(list(instrs), w, ROWS, COLS)
    from presil.golden.program import Program
    return iss.run(Program(rows=ROWS, cols=COLS, instructions=list(instrs), dram_size=w.size), {}, window=w)


def golden(instrs, win: np.ndarray) -> tuple[np.ndarray, object]:
    """The ISS on the same instruction words and memory image."""
    w = win.copy()
    res = _iss(instrs, w)
    return w, res


def golden_error(instrs, win: np.ndarray) -> DeviceError:
    try:
        _iss(instrs, win.copy())
    except DeviceError as e:
        return e
    raise AssertionError("the ISS ran the program without an error")


def st_bits(s: dict) -> tuple[int, int, int]:
    return s["status"] & 1, (s["status"] >> 1) & 1, (s["status"] >> 2) & 1


# ---------------------------------------------------------------- programs

def copy_program(win_size: int) -> tuple[list[bytes], int]:
    """LOADs with strides and several rows (ACT, WGT, PAR), a FENCE, STOREs
    that copy ACT tiles back out with other strides; rows crossing 4 KiB."""
    b = ProgramBuilder(ROWS, COLS)
    src, dst = 0x1000, 0x4_0000
    # 2-D tile: 5 rows of 7 words, source rows 0x230 bytes apart, packed in ACT
    b.load(mem="ACT", dram_offset=src, dram_stride=0x230, sram_addr=10, sram_stride=7, y_count=5, x_words=7)
    # long rows crossing 4 KiB boundaries, SRAM rows with gaps
    b.load(mem="ACT", dram_offset=0x8F00, dram_stride=0x1400, sram_addr=100, sram_stride=400, y_count=3,
           x_words=300, push_next=False)
    # single word, and a row re-reading the same source (stride 0)
    b.load(mem="ACT", dram_offset=0x30, dram_stride=0, sram_addr=2000, sram_stride=1, y_count=4, x_words=1)
    b.load(mem="WGT", dram_offset=0x2000, dram_stride=0x100, sram_addr=0, sram_stride=16, y_count=4, x_words=16)
    b.load(mem="PAR", dram_offset=0x3000, dram_stride=0x40 * 5, sram_addr=0, sram_stride=3, y_count=2, x_words=3)
    b.nop()
    b.fence()
    b.store(mem="ACT", dram_offset=dst, dram_stride=0x100, sram_addr=10, sram_stride=7, y_count=5, x_words=7)
    b.store(mem="ACT", dram_offset=dst + 0x1F30, dram_stride=0x1310, sram_addr=100, sram_stride=400,
            y_count=3, x_words=300)
    b.store(mem="ACT", dram_offset=dst + 0x9000, dram_stride=0x20, sram_addr=2000, sram_stride=1,
            y_count=4, x_words=1)
    # overlapping destination rows (stride < row): later rows win, in order
    b.store(mem="ACT", dram_offset=dst + 0xA000, dram_stride=ROWS * 2, sram_addr=10, sram_stride=1,
            y_count=6, x_words=4)
    b.end()
    return list(b.instructions), win_size


def pipeline_program(tiles: int, words: int) -> list[bytes]:
    """Double-buffered load -> compute -> store with tokens (4 ACT buffers: a
    STORE reads the buffer its LOAD filled, so a buffer is reused after the
    store of 4 tiles back, ordered through compute's pop_next/push_prev)."""
    b = ProgramBuilder(ROWS, COLS)
    nb = 4
    for i in range(tiles):
        buf = (i % nb) * words
        b.load(mem="ACT", dram_offset=i * words * ROWS, dram_stride=0, sram_addr=buf, sram_stride=0, y_count=1,
               x_words=words, pop_next=i >= 2, push_next=True)
        b.gemm(in_addr=buf, in_h=1, in_w=1, in_cb=1, cb_start=0, cb_count=1, out_h=1, out_w=1, k_h=1, k_w=1,
               stride_h=1, stride_w=1, wgt_addr=0, acc_addr=0,
               pop_prev=True, push_prev=i < tiles - 2, pop_next=i >= 2, push_next=True)
        b.store(mem="ACT", dram_offset=0x8_0000 + i * words * ROWS, dram_stride=0, sram_addr=buf, sram_stride=0,
                y_count=1, x_words=words, pop_prev=True, push_prev=i < tiles - 2)
    b.end()
    return list(b.instructions)


async def check_run_matches_iss(npu: Npu, instrs, win_size: int, seed: int) -> dict:
    win = window_image(win_size, seed)
    npu.mem.write(CMD_ADDR, b"".join(instrs))
    before = npu.mem.read(0, GUARD)
    s = await npu.run(instrs, win)
    assert st_bits(s) == (0, 1, 0), f"program did not complete: {s}"
    assert s["code"] == 0
    want, res = golden(instrs, win)
    got = npu.mem.read(WIN_ADDR, win_size)
    diff = np.flatnonzero(got != want)
    assert diff.size == 0, (f"{diff.size} bytes differ from the ISS, first at window offset 0x{diff[0]:x}: "
                            f"got {got[diff[0]]:#x}, want {want[diff[0]]:#x}")
    after = npu.mem.read(0, GUARD)
    outside = np.ones(GUARD, bool)
    outside[WIN_ADDR:WIN_ADDR + win_size] = False
    assert np.array_equal(before[outside], after[outside]), "memory outside the window changed"
    assert await npu.perf("rd") == res.dma_bytes_read
    assert await npu.perf("wr") == res.dma_bytes_written
    assert await npu.perf("retired") == len(instrs)
    return s


# ---------------------------------------------------------------- tests

@cocotb.test()
async def registers(dut):
    """Identification values, reset values and read/write through AXI4-Lite."""
    npu = await setup(dut)
    from presil.host.regs import REGMAP_HASH as RH
    expect = {MAGIC: 0x5052534C, VERSION: 0x01000000, ISA_HASH: isa_hash(), REGMAP_HASH: int(RH),
              BUILD_HASH: BUILD_HASH_VALUE, HW_ARRAY: ROWS | COLS << 16, HW_ACT: 16384, HW_WGT: 8192,
              HW_ACC: 4096, HW_PAR: 1536, HW_CLK: 200_000_000}
    for a, v in expect.items():
        got = await npu.rd(a)
        assert got == v, f"register 0x{a:03x}: 0x{got:08x} != 0x{v:08x}"
    for a in (SCRATCH, CTRL, STATUS, STATUS_PC, CMD_BASE, CMD_LEN, DOORBELL, IRQ_STATUS, IRQ_ENABLE, ERR_CODE,
              ERR_ADDR, ERR_PC, WATCHDOG, WIN_BASE, WIN_LIMIT, 0x0FC):
        assert await npu.rd(a) == 0, f"register 0x{a:03x} not 0 after reset"
    for a in (SCRATCH, CMD_BASE, CMD_LEN, WATCHDOG, WIN_BASE, WIN_LIMIT):
        await npu.wr(a, 0xA5A5_0000 | a)
        assert await npu.rd(a) == 0xA5A5_0000 | a
        await npu.wr(a, 0)
    await npu.wr(IRQ_ENABLE, 3)
    assert await npu.rd(IRQ_ENABLE) == 3
    await npu.wr(IRQ_ENABLE, 0)
    f0 = await npu.perf("free")
    f1 = await npu.perf("free")
    assert f1 > f0


@cocotb.test()
async def dma_copy(dut):
    """LOAD/STORE copies with strides, bit-exact against the ISS; DMA bytes and
    retired count from the perf counters."""
    npu = await setup(dut)
    instrs, size = copy_program(0x6_0000)
    await check_run_matches_iss(npu, instrs, size, seed=3)
    # IRQ: raised once, cleared by writing 1
    assert dut.irq.value == 1
    assert (await npu.rd(IRQ_STATUS)) == 1
    await npu.wr(IRQ_STATUS, 1)
    assert dut.irq.value == 0 and await npu.rd(IRQ_STATUS) == 0
    await ClockCycles(dut.clk, 20)
    assert dut.irq.value == 0


@cocotb.test()
async def dma_copy_backpressure(dut):
    """The same copies with read/write latency and 30 % random back-pressure."""
    npu = await setup(dut, rd_latency=9, wr_latency=6, stall=0.3, seed=11)
    instrs, size = copy_program(0x6_0000)
    await check_run_matches_iss(npu, instrs, size, seed=4)
    assert await npu.perf("dma") > 0, "back-pressure did not show up in PERF_STALL_DMA"


@cocotb.test()
async def token_pipeline(dut):
    """Load/compute/store pipeline synchronised by tokens (GEMM as relay)."""
    npu = await setup(dut, rd_latency=5, wr_latency=3, stall=0.1, seed=5)
    instrs = pipeline_program(tiles=10, words=24)
    await check_run_matches_iss(npu, instrs, 0x10_0000, seed=6)


async def expect_error(npu: Npu, instrs, win, code: ErrorCode, *, iss_check=True, addr=None, pc=None, **kw):
    npu.mem.write(CMD_ADDR, b"".join(instrs))     # what run() writes, so `before` is the pre-run image
    npu.mem.write(WIN_ADDR, win)
    before = npu.mem.read(0, GUARD)
    s = await npu.run(instrs, win, **kw)
    assert st_bits(s) == (0, 0, 1), f"expected STATUS.ERROR: {s}"
    assert s["irq"] == 2 and npu.dut.irq.value == 1
    assert s["code"] == code, f"ERR_CODE {s['code']} != {code.name}"
    if iss_check:
        e = golden_error(instrs, win)
        assert e.code == code, f"ISS says {e.code.name}"
        assert s["pc"] == e.pc, f"ERR_PC {s['pc']} != ISS {e.pc}"
        if e.address is not None:
            assert s["addr"] == WIN_ADDR + e.address, f"ERR_ADDR 0x{s['addr']:x} != 0x{WIN_ADDR + e.address:x}"
    if pc is not None:
        assert s["pc"] == pc, f"ERR_PC {s['pc']} != {pc}"
    if addr is not None:
        assert s["addr"] == addr, f"ERR_ADDR 0x{s['addr']:x} != 0x{addr:x}"
    return s, before


@cocotb.test()
async def error_dma_window(dut):
    """A LOAD whose third row leaves the window, a STORE past the end: nothing
    is touched, ERR_ADDR is the first byte outside."""
    npu = await setup(dut)
    size = 0x8000
    win = window_image(size, 7)
    b = ProgramBuilder(ROWS, COLS)
    b.nop()
    b.load(mem="ACT", dram_offset=0, sram_addr=0, sram_stride=4, dram_stride=0x3000, y_count=4, x_words=4)
    b.end()
    # row 3 starts outside: the first faulting byte is its start
    s, before = await expect_error(npu, b.instructions, win, ErrorCode.DMA_WINDOW, addr=WIN_ADDR + 0x9000, pc=1)
    assert np.array_equal(before, npu.mem.read(0, GUARD))
    # row 3 starts inside and ends outside: the first faulting byte is the limit
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="PAR", dram_offset=0, sram_addr=0, sram_stride=0, dram_stride=0x2000, y_count=5, x_words=0x84)
    b.end()
    s, before = await expect_error(npu, b.instructions, win, ErrorCode.DMA_WINDOW, addr=WIN_ADDR + size)
    assert np.array_equal(before, npu.mem.read(0, GUARD))
    # STORE out of the window: memory (including the window) untouched
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0, sram_addr=0, sram_stride=1, dram_stride=0, y_count=1, x_words=8)
    b.fence()
    b.store(mem="ACT", dram_offset=size - 0x40, dram_stride=0x10, sram_addr=0, sram_stride=1, y_count=2,
            x_words=8)
    b.end()
    s, before = await expect_error(npu, b.instructions, win, ErrorCode.DMA_WINDOW)
    assert np.array_equal(before, npu.mem.read(0, GUARD)), "a faulting STORE wrote memory"


@cocotb.test()
async def error_bus(dut):
    """SLVERR on a LOAD beat and on a STORE burst -> DMA_BUS_ERROR."""
    npu = await setup(dut, rd_latency=4, wr_latency=4)
    size = 0x10000
    win = window_image(size, 8)
    bad = WIN_ADDR + 0x2040
    npu.mem.error_range(bad, bad + 0x100)
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0x1000, dram_stride=0x1000, sram_addr=0, sram_stride=64, y_count=3, x_words=64)
    b.end()
    await expect_error(npu, b.instructions, win, ErrorCode.DMA_BUS_ERROR, iss_check=False, addr=bad, pc=0)
    b = ProgramBuilder(ROWS, COLS)
    b.store(mem="ACT", dram_offset=0x2000, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=32)
    b.end()
    await expect_error(npu, b.instructions, win, ErrorCode.DMA_BUS_ERROR, iss_check=False, pc=0,
                       addr=WIN_ADDR + 0x2000)
    npu.mem.error_range()


def _raw(instr: bytes, bit: int) -> bytes:
    v = int.from_bytes(instr, "little") | (1 << bit)
    return v.to_bytes(32, "little")


@cocotb.test()
async def error_decode(dut):
    """Illegal opcode, reserved bit, invalid dependency flag, field below its
    minimum, SRAM range beyond the depth, misaligned DRAM offset."""
    npu = await setup(dut)
    win = window_image(0x4000, 9)
    nop, end = encode("NOP"), encode("END")
    ld = encode("LOAD", mem=0, dram_offset=0, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=1)
    illegal = bytes([0x7F]) + bytes(31)
    cases = [
        ([nop, nop, illegal, end], ErrorCode.ILLEGAL_OPCODE),
        ([nop, _raw(nop, 200), end], ErrorCode.RESERVED_BITS),
        ([ld, _raw(ld, 10), end], ErrorCode.RESERVED_BITS),      # push_prev on the load engine
        ([ld, ld[:15] + bytes([0, 0]) + ld[17:], end], ErrorCode.BAD_FIELD),   # y_count = 0
        ([encode("LOAD", mem=0, dram_offset=0, dram_stride=0, sram_addr=16380, sram_stride=0, y_count=1,
                 x_words=8), end], ErrorCode.BAD_FIELD),            # ACT beyond depth
        ([encode("STORE", mem=0, dram_offset=8, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1,
                 x_words=1), end], ErrorCode.BAD_FIELD),            # offset not a word multiple
        ([encode("POST", acc_addr=0, out_addr=0, count=1, out_stride=1, par_addr=0, out_zp=0, clamp_min=5,
                 clamp_max=4), end], ErrorCode.BAD_FIELD),          # clamp_min > clamp_max
    ]
    for instrs, code in cases:
        await expect_error(npu, instrs, win, code)


@cocotb.test()
async def error_tokens_and_stream(dut):
    """TOKEN_LEAK at END, TOKEN_OVERFLOW, CMD_OVERRUN, WATCHDOG."""
    npu = await setup(dut)
    win = window_image(0x4000, 10)
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=2,
           push_next=True)
    b.end()
    await expect_error(npu, b.instructions, win, ErrorCode.TOKEN_LEAK)
    # 256 pushes of l2c without a pop: the 256th overflows token_max = 255
    b = ProgramBuilder(ROWS, COLS)
    for _ in range(256):
        b.load(mem="ACT", dram_offset=0, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=1,
               push_next=True)
    b.end()
    await expect_error(npu, b.instructions, win, ErrorCode.TOKEN_OVERFLOW, pc=255)
    nop = encode("NOP")
    await expect_error(npu, [nop, nop, nop], win, ErrorCode.CMD_OVERRUN, iss_check=False, pc=3, addr=0)
    # a LOAD waiting for a token nobody pushes: the watchdog ends it
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=2,
           pop_next=True)
    b.end()
    await expect_error(npu, b.instructions, win, ErrorCode.WATCHDOG, iss_check=False, watchdog=500)


@cocotb.test()
async def abort_and_soft_reset(dut):
    """ABORT a deadlocked program, SOFT_RESET, then a good program runs."""
    npu = await setup(dut)
    win = window_image(0x4000, 12)
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=2,
           pop_next=True)
    b.end()
    await npu.start(b.instructions, win)
    await ClockCycles(dut.clk, 300)
    assert await npu.rd(STATUS) & 1, "the deadlocked program is not running"
    await npu.wr(CTRL, 2)   # ABORT
    await npu.wait_irq()
    s = await npu.state()
    assert st_bits(s) == (0, 0, 1) and s["code"] == ErrorCode.ABORTED, s
    await npu.wr(CTRL, 1)   # SOFT_RESET
    await ClockCycles(dut.clk, 5)
    assert await npu.rd(STATUS) == 0 and await npu.rd(ERR_CODE) == 0 and await npu.rd(STATUS_PC) == 0
    # soft reset while a program runs (stuck), then recover
    await npu.start(b.instructions, win)
    await ClockCycles(dut.clk, 200)
    await npu.wr(CTRL, 1)
    await ClockCycles(dut.clk, 20)
    assert await npu.rd(STATUS) == 0
    await npu.wr(IRQ_STATUS, 3)
    instrs, size = copy_program(0x6_0000)
    await check_run_matches_iss(npu, instrs, size, seed=13)


@cocotb.test()
async def dma_speed(dut):
    """A long DMA program (4 MiB moved); simulated cycles per second."""
    npu = await setup(dut)
    b = ProgramBuilder(ROWS, COLS)
    n = 16
    words = 8192                       # 128 KiB per LOAD/STORE
    for i in range(n):
        b.load(mem="ACT", dram_offset=(i % 4) * words * ROWS, dram_stride=0, sram_addr=0, sram_stride=0,
               y_count=1, x_words=words)
        b.fence()
        b.store(mem="ACT", dram_offset=0x8_0000 + (i % 4) * words * ROWS, dram_stride=0, sram_addr=0,
                sram_stride=0, y_count=1, x_words=words)
        b.fence()
    b.end()
    instrs = list(b.instructions)
    win = window_image(0x10_0000, 14)
    t0 = time.perf_counter()
    s = await npu.run(instrs, win, )
    wall = time.perf_counter() - t0
    assert st_bits(s) == (0, 1, 0), s
    cycles = await npu.perf("busy")
    want, _ = golden(instrs, win)
    assert np.array_equal(npu.mem.read(WIN_ADDR, win.size), want)
    moved = await npu.perf("rd") + await npu.perf("wr")
    write_metrics(cycles=cycles, wall_s=wall, cycles_per_s=cycles / wall, bytes_per_cycle=moved / cycles)
    dut._log.info("DMA speed: %d cycles in %.2f s = %.0f cycles/s, %.1f bytes/cycle", cycles, wall,
                  cycles / wall, moved / cycles)


@cocotb.test()
async def conv_through_top(dut):
    """LOADs into ACT, WGT and PAR, a padded 3x3 GEMM, POST and a STORE: checks
    WGT/PAR loads (which no STORE can read) and the SRAM ports of the compute
    engine, bit-exact against the ISS. Only with the real compute engine."""
    npu = await setup(dut, rd_latency=6, wr_latency=4, stall=0.2, seed=21)
    instrs, win = conv_layer_raw(ROWS, COLS)
    s = await npu.run(instrs, win)
    assert st_bits(s) == (0, 1, 0), s
    want, res = golden(instrs, win)
    got = npu.mem.read(WIN_ADDR, win.size)
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} bytes differ from the ISS"
    assert await npu.perf("mac") > 0

"""Differential test of register-level behaviour: `golden:` (host/transport/golden.py,
the Python model behind the register map) against `sim:` (npu_top RTL in Verilator
behind the emulated PCIe bridge). Every test drives the same register sequence on
both devices and compares every read with the other device *and* with what
rtl/regs/npu_regs.rdl says (the contract decides which side is wrong).

Compared by rule, not by value (and why):
- PERF_FREE_CYCLES_LO/HI: free-running, golden derives it from host time at
  HW_CLOCK_HZ, sim counts simulated cycles (which advance per register access):
  it must increase and survive DOORBELL and SOFT_RESET.
- PERF_BUSY_CYCLES and the PERF_STALL_* counters: timing. golden reports the ISS's
  cost model (stalls always 0), sim counts clock cycles: MAC_ACTIVE <= BUSY <=
  elapsed cycles, every stall <= BUSY. MAC_ACTIVE_CYCLES, DMA_RD/WR_BYTES and
  INSTR_RETIRED are work counts and compared by value.
- STATUS.LOAD/COMPUTE/STORE_BUSY: engine-level timing (golden does not model
  them): only ever set while STATUS.BUSY.
- STATUS_PC after an engine error: "how far dispatch had got, between ERR_PC and
  CMD_LEN" (the RTL dispatcher runs ahead of the engines; golden has no dispatcher).
- ERR_PC for ABORTED and WATCHDOG: not defined by the register map (no instruction
  causes them).
- Perf counters while BUSY or after an error: golden gets its counts from a finished
  ISS run only (they read 0 until the program completes, and stay 0 after an error).
- BUILD_HASH and HW_CLOCK_HZ are build parameters: the golden device is built with
  the simulator's values.

Not tested: addresses >= 0x1000, beyond the 12-bit register port (sim: wraps them,
golden: reads 0).

RTL bugs this test found, fixed (npu_regs.rdl + npu_top): CTRL.SOFT_RESET left
IRQ_STATUS set (now hwclr from the soft-clear pulse); a software write to
IRQ_STATUS in the cycle hardware set a cause dropped the set (now precedence = hw).

test_golden_soft_reset_keeps_perf_counters checks the golden model's fix alone.
"""

from __future__ import annotations

import time

import pytest

from presil.golden.asm import ProgramBuilder
from presil.golden.isa import ISA, INSTR_BYTES, isa_hash
from presil.host import smoke
from presil.host.regs import regmap_info
from presil.host.transport.golden import GoldenDevice, GoldenTransport

REGS = regmap_info.REGISTERS
OFF = regmap_info.OFFSETS
E = regmap_info.ErrCode
ROWS = COLS = 16
WIN, WIN_SIZE, CMD = 0x10_0000, 0x4000, 0x20_0000
BUSY, DONE, ERROR, ENGINE_BUSY = 1 << 0, 1 << 1, 1 << 2, 0b111 << 4
IRQ_DONE, IRQ_ERROR = 1 << 0, 1 << 1
FREE = ("PERF_FREE_CYCLES_LO", "PERF_FREE_CYCLES_HI")
WORK = ("MAC_ACTIVE_CYCLES", "DMA_RD_BYTES", "DMA_WR_BYTES", "INSTR_RETIRED")  # compared by value
STALLS = ("STALL_L2C", "STALL_S2C", "STALL_C2L", "STALL_C2S", "STALL_DMA")
PERF = ("BUSY_CYCLES", *WORK, *STALLS)
# sw-writable plain settings (IRQ_STATUS, rw + woclr, has its own test)
SETTINGS = tuple(n for n, r in REGS.items() if r.access == "rw" and n != "IRQ_STATUS")
READ_ONLY = tuple(n for n, r in REGS.items() if r.access == "r")
WRITE_ONLY = tuple(n for n, r in REGS.items() if r.access == "w")
UNMAPPED = tuple(a for a in range(0, 0x1000, 4) if a not in set(OFF.values()))  # the 12-bit AXI4-Lite port

def mask(name: str) -> int:
    return sum(((1 << f.width) - 1) << f.lsb for f in REGS[name].fields)


def _name(reg) -> str:
    return reg if isinstance(reg, str) else f"0x{reg:03x}"


class Pair:
    """The golden and the sim device side by side; every read is of both."""

    def __init__(self, golden: GoldenTransport, sim):
        self.golden, self.sim = golden, sim
        self.devs = {"golden": golden, "sim": sim}

    # -- registers ----------------------------------------------------------
    def read(self, reg) -> dict[str, int]:
        off = OFF[reg] if isinstance(reg, str) else reg
        return {k: d.read32(off) for k, d in self.devs.items()}

    def write(self, reg, value: int) -> None:
        off = OFF[reg] if isinstance(reg, str) else reg
        for d in self.devs.values():
            d.write32(off, value)

    def expect(self, reg, want: int, why: str = "", only: str | None = None) -> None:
        v = self.read(reg)
        got = {only: v[only]} if only else v
        assert got == dict.fromkeys(got, want), (
            f"{_name(reg)}: " + ", ".join(f"{k} 0x{x:x}" for k, x in v.items())
            + f"; npu_regs.rdl: 0x{want:x}" + (f" ({why})" if why else ""))

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Every readable register but the free-running counter, on both devices."""
        return {n: self.read(n) for n, r in REGS.items() if r.access != "w" and n not in FREE}

    def counter(self, name: str) -> dict[str, int]:
        """A 64-bit PERF counter: HI, LO, HI again until both HI reads agree."""
        out = {}
        for k, d in self.devs.items():
            for _ in range(8):
                hi = d.read32(OFF[f"PERF_{name}_HI"])
                lo = d.read32(OFF[f"PERF_{name}_LO"])
                if d.read32(OFF[f"PERF_{name}_HI"]) == hi:
                    out[k] = hi << 32 | lo
                    break
            else:
                pytest.fail(f"{k}: PERF_{name}_HI keeps changing")
        return out

    def perf(self) -> dict[str, dict[str, int]]:
        return {n: self.counter(n) for n in PERF}

    # -- interrupt ----------------------------------------------------------
    def wait_irq(self, timeout_s: float) -> bool:
        got = {k: d.wait_irq(timeout_s) for k, d in self.devs.items()}
        assert got["golden"] == got["sim"], f"wait_irq({timeout_s}): {got}"
        return got["golden"]

    def line(self) -> bool:
        """The irq line: the same on both and |(IRQ_STATUS & IRQ_ENABLE) (npu_regs.rdl IRQ_STATUS)."""
        got = {"golden": self.golden.device._line, "sim": self.sim.stats()["irq"]}
        st, en = self.read("IRQ_STATUS"), self.read("IRQ_ENABLE")
        for k in got:
            assert got[k] == bool(st[k] & en[k]), (
                f"{k}: irq line {got[k]}, IRQ_STATUS 0x{st[k]:x} & IRQ_ENABLE 0x{en[k]:x}")
        assert got["golden"] == got["sim"], f"irq line: {got}"
        return got["golden"]

    # -- programs -----------------------------------------------------------
    def load(self, instrs: list[bytes], window: bytes = b"", *, cmd: int = CMD, win: int = WIN,
             win_size: int = WIN_SIZE, n_instr: int | None = None) -> None:
        for d in self.devs.values():
            if window:
                d.dma_write(win, bytes(window))
            if instrs:
                d.dma_write(cmd, b"".join(instrs))
        self.write("DMA_WIN_BASE", win)
        self.write("DMA_WIN_LIMIT", win + win_size)
        self.write("CMD_BASE", cmd)
        self.write("CMD_LEN", len(instrs) if n_instr is None else n_instr)

    def start(self, enable: int = IRQ_DONE | IRQ_ERROR) -> None:
        """As the driver does (architecture §6): clear IRQ_STATUS, drop stale events, enable, DOORBELL."""
        self.write("IRQ_STATUS", IRQ_DONE | IRQ_ERROR)
        for d in self.devs.values():
            while d.wait_irq(0):
                pass
        self.write("IRQ_ENABLE", enable)
        self.write("DOORBELL", 1)

    def settle(self, timeout_s: float = 10.0) -> dict[str, int]:
        """Poll STATUS until BUSY is clear on both (interrupts may be disabled)."""
        deadline = time.monotonic() + timeout_s
        out = {}
        for k, d in self.devs.items():
            while (v := d.read32(OFF["STATUS"])) & BUSY:
                assert time.monotonic() < deadline, f"{k}: still BUSY after {timeout_s} s"
                time.sleep(0.001)
            out[k] = v
        return out

    def check_status(self) -> int:
        """STATUS: BUSY/DONE/ERROR equal on both; engine busy bits only while BUSY (rule)."""
        v = self.read("STATUS")
        for k, x in v.items():
            assert not (x & ENGINE_BUSY) or x & BUSY, f"{k}: STATUS 0x{x:x} has an engine busy while not BUSY"
        assert v["golden"] & 0b111 == v["sim"] & 0b111, f"STATUS: golden 0x{v['golden']:x}, sim 0x{v['sim']:x}"
        return v["golden"] & 0b111


@pytest.fixture
def dev(sim):
    """Both devices after a power-on reset; the golden one built with the simulator's build parameters."""
    sim.reset()
    g = GoldenTransport(GoldenDevice(sim.info()["mem_size"], clock_hz=sim.read32(OFF["HW_CLOCK_HZ"]),
                                     build_hash=sim.read32(OFF["BUILD_HASH"])))
    yield Pair(g, sim)
    g.device.power_on_reset()  # lets a golden worker still waiting on a hung program go


# ---------------------------------------------------------------- programs
def conv_layer() -> tuple[list[bytes], bytes, dict[str, int]]:
    """LOAD x3, FENCE, GEMM 3x3 over 6x6 pixels, POST, FENCE, STORE, END, and the work it does."""
    instrs, win = smoke.conv_layer_raw(ROWS, COLS)
    work = {"MAC_ACTIVE_CYCLES": 6 * 6 * 3 * 3,                              # pixels x taps, one input block
            "DMA_RD_BYTES": 6 * 6 * ROWS + 9 * ROWS * COLS + 3 * 4 * COLS,  # ACT + WGT + PAR words
            "DMA_WR_BYTES": 6 * 6 * ROWS,                                    # STORE of the output words
            "INSTR_RETIRED": len(instrs)}
    return instrs, win.tobytes(), work


def nop_end() -> list[bytes]:
    b = ProgramBuilder(ROWS, COLS)
    b.nop()
    b.end()
    return b.instructions


def hang() -> list[bytes]:
    """A GEMM waiting for a load-to-compute token no LOAD pushes: BUSY until ABORT, SOFT_RESET or WATCHDOG."""
    b = ProgramBuilder(ROWS, COLS)
    b.gemm(in_addr=0, in_h=1, in_w=1, in_cb=1, cb_start=0, cb_count=1, out_h=1, out_w=1, k_h=1, k_w=1,
           stride_h=1, stride_w=1, pad_t=0, pad_l=0, in_zp=0, wgt_addr=0, acc_addr=0, pop_prev=True)
    b.end()
    return b.instructions


def _raw(instr: bytes, byte: int, value: int) -> bytes:
    r = bytearray(instr)
    r[byte] = value
    return bytes(r)


def error_cases() -> dict:
    """name -> (instructions, load kwargs, ERR_CODE, ERR_PC, ERR_ADDR, found by the dispatcher)."""
    nop, end = nop_end()
    b = ProgramBuilder(ROWS, COLS)
    # rows 0x0, 0x1000, ..., 0x7000 of 64 bytes: rows 4.. lie past the 0x4000-byte window
    b.nop()
    b.load(mem="ACT", dram_offset=0, dram_stride=0x1000, sram_addr=0, sram_stride=4, y_count=8, x_words=4)
    b.end()
    load_2d = b.instructions
    b = ProgramBuilder(ROWS, COLS)
    b.store(mem="ACT", dram_offset=0x3F00, dram_stride=0x40, sram_addr=0, sram_stride=4, y_count=8, x_words=4)
    b.end()
    store_2d = b.instructions
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0, dram_stride=0, sram_addr=ISA.memories["ACT"].default_depth - 1, sram_stride=0,
           y_count=1, x_words=4)
    b.end()
    bad_field = b.instructions
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0x1000, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=4)
    b.end()
    past_mem = b.instructions
    b = ProgramBuilder(ROWS, COLS)
    b.load(mem="ACT", dram_offset=0, dram_stride=0, sram_addr=0, sram_stride=0, y_count=1, x_words=1,
           push_next=True)
    b.end()
    leak = b.instructions
    mem = 64 << 20
    return {
        "illegal_opcode": ([nop, nop, _raw(nop, 0, 0xEE), end], {}, E.ILLEGAL_OPCODE, 2, 0, True),
        "reserved_bits": ([_raw(end, 31, 0x80)], {}, E.RESERVED_BITS, 0, 0, True),
        "bad_field": (bad_field, {}, E.BAD_FIELD, 0, 0, True),
        "cmd_overrun": ([nop, nop, nop], {}, E.CMD_OVERRUN, 3, 0, True),
        "cmd_len_0": ([], {"n_instr": 0}, E.CMD_OVERRUN, 0, 0, True),
        "dma_window_load_2d": (load_2d, {}, E.DMA_WINDOW, 1, WIN + WIN_SIZE, False),
        "dma_window_store_2d": (store_2d, {}, E.DMA_WINDOW, 0, WIN + WIN_SIZE, False),
        # an access wholly outside: ERR_ADDR is where it starts
        "dma_window_empty": (past_mem, {"win_size": 0}, E.DMA_WINDOW, 0, WIN + 0x1000, False),
        "dma_window_inverted": (past_mem, {"win_size": -0x1000}, E.DMA_WINDOW, 0, WIN + 0x1000, False),
        "dma_bus_error": (past_mem, {"win": mem - 0x1000, "win_size": 0x2000}, E.DMA_BUS_ERROR, 0, mem, False),
        # the program's first instruction is the last word of device memory, its END would be past it
        "fetch_bus_error": ([nop], {"cmd": mem - INSTR_BYTES, "n_instr": 2}, E.DMA_BUS_ERROR, 1, mem, True),
        "token_leak": (leak, {}, E.TOKEN_LEAK, 1, 0, True),
    }


ERRORS = error_cases()


# ---------------------------------------------------------------- reset values
def test_reset_values(dev, sim):
    """Every readable register after power-on reset, except PERF_FREE_CYCLES (free-running: rule test below)."""
    want = dict(regmap_info.RESET_VALUES)  # the RDL's reset values (MAGIC, VERSION, the rw settings, IRQ_STATUS)
    want |= {"ISA_HASH": isa_hash(), "REGMAP_HASH": regmap_info.REGMAP_HASH, "HW_ARRAY": ROWS | COLS << 16,
             "HW_CLOCK_HZ": sim.info()["clock_hz"], "BUILD_HASH": sim.read32(OFF["BUILD_HASH"])}
    want |= {f"HW_{m}_DEPTH": s.default_depth for m, s in ISA.memories.items()}
    # driven by the RTL, no RDL reset value: nothing has run since reset, so idle, no error, counters at 0
    for n in ("STATUS", "STATUS_PC", "ERR_CODE", "ERR_ADDR", "ERR_PC"):
        want[n] = 0
    for n in PERF:
        want[f"PERF_{n}_LO"] = want[f"PERF_{n}_HI"] = 0
    readable = {n for n, r in REGS.items() if r.access != "w"} - set(FREE)
    assert set(want) == readable
    for n in sorted(readable, key=OFF.get):
        dev.expect(n, want[n], "reset value")
    assert not dev.line() and not dev.wait_irq(0.01)


def test_free_running_counter(dev):
    """PERF_FREE_CYCLES: counts on its own; not reset by CTRL.SOFT_RESET or DOORBELL (its RDL desc)."""
    f0 = dev.counter("FREE_CYCLES")
    f1 = dev.counter("FREE_CYCLES")
    assert all(f1[k] > f0[k] for k in f0), (f0, f1)
    dev.write("CTRL", 1)
    f2 = dev.counter("FREE_CYCLES")
    assert all(f2[k] > f1[k] for k in f0), (f1, f2)
    dev.load(nop_end())
    dev.start()
    assert dev.wait_irq(10)
    f3 = dev.counter("FREE_CYCLES")
    assert all(f3[k] > f2[k] for k in f0), (f2, f3)


# ---------------------------------------------------------------- access types
@pytest.mark.parametrize("name", SETTINGS)
def test_rw_field_masks(dev, name):
    """Every sw-writable setting: all ones, zeros, patterns, walking ones/zeros read back through its fields' mask;
    no other register changes (no aliasing)."""
    m = mask(name)
    before = dev.snapshot()
    pats = [0xFFFFFFFF, 0, 0xA5A5A5A5, 0x5A5A5A5A, 0xDEADBEEF]
    pats += [1 << i for i in range(32)] + [0xFFFFFFFF ^ 1 << i for i in range(32)]
    for p in pats:
        dev.write(name, p)
        dev.expect(name, p & m, f"write 0x{p:08x} through mask 0x{m:x}")
    dev.write(name, 0)
    assert dev.snapshot() == before
    assert not dev.line()


def test_read_only_registers_ignore_writes(dev):
    before = dev.snapshot()
    for n in READ_ONLY:
        for p in (0xFFFFFFFF, 0x5A5A5A5A, 0):
            dev.write(n, p)
    assert dev.snapshot() == before
    assert not dev.line()


def test_unmapped_addresses(dev):
    """npu_regs.rdl: reads of unmapped addresses return 0 and writes to them are ignored (12-bit port)."""
    before = dev.snapshot()
    for a in UNMAPPED:
        dev.write(a, 0xFFFFFFFF)
    for a in UNMAPPED:
        dev.expect(a, 0, "unmapped")
    assert dev.snapshot() == before


def test_write_only_registers(dev):
    """CTRL and DOORBELL read 0; CTRL 0, bits outside its fields, and ABORT while idle have no effect."""
    before = dev.snapshot()
    for n in WRITE_ONLY:
        dev.expect(n, 0, "write-only: reads return 0")
    for v in (0, 0xFFFFFFFC, 2, 2):  # 2 = ABORT: "No effect when idle"
        dev.write("CTRL", v)
        dev.expect("CTRL", 0, "reads return 0")
    assert dev.snapshot() == before
    assert not dev.wait_irq(0.01)
    dev.load(nop_end())
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("DOORBELL", 0, "reads return 0")
    dev.write("CTRL", 2)  # ABORT after the program ended: still no effect
    dev.expect("STATUS", DONE)
    dev.expect("ERR_CODE", E.NONE)


# ---------------------------------------------------------------- a valid program
def _check_perf_rules(dev, f0, f1, work=None):
    p = dev.perf()
    for k in dev.devs:
        busy = p["BUSY_CYCLES"][k]
        assert p["MAC_ACTIVE_CYCLES"][k] <= busy <= f1[k] - f0[k], (k, p, f0, f1)
        for s in STALLS:
            assert p[s][k] <= busy, (k, s, p)
    for n in WORK if work else ():
        dev_v = p[n]
        assert dev_v == {"golden": work[n], "sim": work[n]}, f"PERF_{n}: {dev_v}, expected {work[n]}"
    return p


def test_program_done_irq_perf_w1c(dev):
    instrs, win, work = conv_layer()
    n = len(instrs)
    dev.load(instrs, win)
    f0 = dev.counter("FREE_CYCLES")
    dev.start()
    assert dev.wait_irq(10)
    f1 = dev.counter("FREE_CYCLES")
    assert dev.check_status() == DONE
    dev.expect("STATUS", DONE, "DONE only: BUSY and the engine busy bits clear")
    dev.expect("IRQ_STATUS", IRQ_DONE, "set when a program completes")
    assert dev.line()
    for r in ("ERR_CODE", "ERR_ADDR", "ERR_PC", "DOORBELL", "CTRL"):
        dev.expect(r, 0)
    for r, v in (("CMD_BASE", CMD), ("CMD_LEN", n), ("DMA_WIN_BASE", WIN), ("DMA_WIN_LIMIT", WIN + WIN_SIZE),
                 ("IRQ_ENABLE", 3), ("WATCHDOG", 0), ("SCRATCH", 0)):
        dev.expect(r, v, "software setting, unchanged by a run")
    dev.expect("STATUS_PC", n, "END's index + 1 after DONE")
    perf = _check_perf_rules(dev, f0, f1, work)
    # the program's results: the same window image on both devices
    out = {k: d.dma_read(WIN, WIN_SIZE) for k, d in dev.devs.items()}
    assert out["golden"] == out["sim"] and out["golden"] != win
    # counters count only while BUSY: idle, they hold
    dev.write("SCRATCH", 1)
    assert dev.perf() == perf
    # IRQ_STATUS: write 0 leaves it, writing 1 to a clear bit does not set it, writing 1 clears
    dev.write("IRQ_STATUS", 0)
    dev.expect("IRQ_STATUS", IRQ_DONE, "write 0 leaves it")
    dev.write("IRQ_STATUS", IRQ_ERROR)
    dev.expect("IRQ_STATUS", IRQ_DONE, "write 1 to a clear bit: stays clear, DONE untouched")
    assert dev.line()
    dev.write("IRQ_STATUS", IRQ_DONE)
    dev.expect("IRQ_STATUS", 0, "write 1 clears")
    assert not dev.line()
    dev.expect("STATUS", DONE, "STATUS.DONE is sticky until DOORBELL or SOFT_RESET, W1C of IRQ_STATUS leaves it")
    assert not dev.wait_irq(0.01)
    # again: counters restart at DOORBELL rather than accumulate
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", DONE)
    f2 = dev.counter("FREE_CYCLES")
    _check_perf_rules(dev, f1, f2, work)


def test_irq_enable_and_line(dev):
    """IRQ_STATUS is set whether enabled or not; the line is |(IRQ_STATUS & IRQ_ENABLE); one event per edge."""
    dev.load(nop_end())
    dev.start(enable=0)
    dev.settle()
    dev.expect("STATUS", DONE)
    dev.expect("IRQ_STATUS", IRQ_DONE, "set whether enabled or not")
    assert not dev.line() and not dev.wait_irq(0.01)
    dev.write("IRQ_ENABLE", IRQ_ERROR)
    assert not dev.line() and not dev.wait_irq(0.01)
    dev.write("IRQ_ENABLE", IRQ_DONE)
    assert dev.line() and dev.wait_irq(1)
    assert dev.line() and not dev.wait_irq(0.01)  # level stays, the event was consumed
    dev.write("IRQ_ENABLE", 0)
    assert not dev.line()
    dev.write("IRQ_ENABLE", 0xFFFFFFFF)
    dev.expect("IRQ_ENABLE", 3)
    assert dev.line() and dev.wait_irq(1)
    dev.write("IRQ_STATUS", 0xFFFFFFFF)
    dev.expect("IRQ_STATUS", 0)
    assert not dev.line() and not dev.wait_irq(0.01)
    dev.write("IRQ_STATUS", 3)
    dev.expect("IRQ_STATUS", 0, "software cannot set a cause")
    # a cause already pending when the next one arrives: no new edge
    dev.start()
    assert dev.wait_irq(10)
    dev.write("CMD_LEN", 0)  # CMD_OVERRUN at once
    dev.write("DOORBELL", 0)  # "writing any value starts the program"
    dev.settle()
    dev.expect("STATUS", ERROR)
    dev.expect("IRQ_STATUS", IRQ_DONE | IRQ_ERROR)
    assert dev.line() and not dev.wait_irq(0.01)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("case", ERRORS)
def test_error(dev, case):
    instrs, kw, code, pc, addr, by_dispatcher = ERRORS[case]
    n = kw.get("n_instr", len(instrs))
    poison = b"\x77" * (WIN_SIZE + 0x1000)
    for d in dev.devs.values():
        d.dma_write(WIN, poison)
    dev.load(instrs, **kw)
    f0 = dev.counter("FREE_CYCLES")
    dev.start()
    assert dev.wait_irq(10)
    assert dev.check_status() == ERROR
    dev.expect("STATUS", ERROR, "ERROR only")
    dev.expect("IRQ_STATUS", IRQ_ERROR, "set when a program stops on an error")
    assert dev.line()
    dev.expect("ERR_CODE", code, code.name)
    dev.expect("ERR_PC", pc, "the faulting instruction")
    dev.expect("ERR_ADDR", addr, "the faulting byte for DMA errors, else 0")
    spc = dev.read("STATUS_PC")
    if by_dispatcher:  # the dispatcher stopped at the faulting instruction
        dev.expect("STATUS_PC", pc)
    else:               # an engine faulted; the dispatcher may be further on
        assert all(pc <= v <= n for v in spc.values()), f"STATUS_PC {spc}, ERR_PC {pc}, CMD_LEN {n}"
    f1 = dev.counter("FREE_CYCLES")
    p = _check_perf_rules(dev, f0, f1)
    assert p["BUSY_CYCLES"]["sim"] > 0  # BUSY was set (golden: no counts after an error, a model limit)
    assert p["INSTR_RETIRED"]["sim"] <= pc and p["INSTR_RETIRED"]["golden"] in (0, p["INSTR_RETIRED"]["sim"])
    if code == E.DMA_WINDOW:  # "the whole 2-D extent is checked before the first beat, so no memory is touched"
        for k in dev.devs:
            assert p["DMA_RD_BYTES"][k] == p["DMA_WR_BYTES"][k] == 0, (k, p)
        assert all(d.dma_read(WIN, len(poison)) == poison for d in dev.devs.values())
    # W1C leaves the sticky STATUS.ERROR and the error registers
    dev.write("IRQ_STATUS", IRQ_ERROR)
    dev.expect("IRQ_STATUS", 0)
    assert not dev.line()
    dev.expect("STATUS", ERROR)
    dev.expect("ERR_CODE", code)
    # SOFT_RESET: back to idle, errors cleared
    dev.write("CTRL", 1)
    for r in ("STATUS", "STATUS_PC", "ERR_CODE", "ERR_ADDR", "ERR_PC", "IRQ_STATUS"):
        dev.expect(r, 0, "cleared by CTRL.SOFT_RESET")
    # and the next program runs; its DOORBELL clears nothing it should not
    instrs, win, work = conv_layer()
    dev.load(instrs, win)
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", DONE)


def test_doorbell_clears_the_error_registers(dev):
    """ERR_CODE/ERR_ADDR/ERR_PC: "cleared by DOORBELL": an error, then the next program without SOFT_RESET."""
    instrs, kw, code, pc, addr, _ = error_cases()["dma_window_load_2d"]
    dev.load(instrs, **kw)
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("ERR_CODE", code)
    instrs, win, _ = conv_layer()
    dev.load(instrs, win)
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", DONE)
    for r in ("ERR_CODE", "ERR_ADDR", "ERR_PC"):
        dev.expect(r, 0, "cleared by DOORBELL")
    dev.expect("STATUS_PC", len(instrs))


def test_cmd_base_low_bits_are_ignored(dev):
    """CMD_BASE: "bits [4:0] are ignored by the fetch (they read back as written)"."""
    instrs, win, _ = conv_layer()
    dev.load(instrs, win)
    dev.write("CMD_BASE", CMD + 0x17)
    dev.expect("CMD_BASE", CMD + 0x17)
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", DONE)
    out = {k: d.dma_read(WIN, WIN_SIZE) for k, d in dev.devs.items()}
    assert out["golden"] == out["sim"] and out["golden"] != win


def test_abort_and_doorbell_while_busy(dev):
    dev.load(hang())
    dev.start()
    assert not dev.wait_irq(0.02)
    assert dev.check_status() == BUSY
    dev.write("DOORBELL", 1)  # ignored while a program runs
    assert not dev.wait_irq(0.02)
    assert dev.check_status() == BUSY
    dev.expect("IRQ_STATUS", 0)
    dev.write("CTRL", 2)
    assert dev.wait_irq(10)
    dev.expect("STATUS", ERROR)
    dev.expect("ERR_CODE", E.ABORTED)
    dev.expect("ERR_ADDR", 0, "0 for other errors")
    for k, v in dev.read("ERR_PC").items():
        assert v <= 2, (k, v)  # no instruction caused it: any index in the program
    dev.expect("IRQ_STATUS", IRQ_ERROR)
    dev.write("IRQ_STATUS", IRQ_ERROR)
    dev.write("CTRL", 1)
    for r in ("STATUS", "STATUS_PC", "ERR_CODE", "ERR_ADDR", "ERR_PC"):
        dev.expect(r, 0, "cleared by CTRL.SOFT_RESET")


def test_watchdog(dev):
    dev.write("WATCHDOG", 5000)
    dev.load(hang())
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", ERROR)
    dev.expect("ERR_CODE", E.WATCHDOG)
    dev.expect("ERR_ADDR", 0, "0 for other errors")
    dev.expect("IRQ_STATUS", IRQ_ERROR)
    dev.expect("WATCHDOG", 5000)


@pytest.mark.parametrize("ctrl", [1, 3])
def test_soft_reset_while_running(dev, ctrl):
    """A running program: SOFT_RESET drains, then idle, no interrupt, nothing left of the program.
    ctrl=3 writes ABORT in the same write: the RDL does not say which wins; on both the reset does."""
    dev.load(hang())
    dev.start()
    assert not dev.wait_irq(0.02)
    dev.write("CTRL", ctrl)
    dev.settle(5)
    for r in ("STATUS", "STATUS_PC", "ERR_CODE", "ERR_ADDR", "ERR_PC", "IRQ_STATUS"):
        dev.expect(r, 0, "cleared by CTRL.SOFT_RESET")
    assert not dev.wait_irq(0.02) and not dev.line()
    instrs, win, work = conv_layer()
    dev.load(instrs, win)
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", DONE)
    p = dev.perf()
    for n in WORK:
        assert p[n] == dict.fromkeys(dev.devs, work[n]), (n, p[n])


# ---------------------------------------------------------------- SOFT_RESET
def _end_state(dev, how: str):
    if how == "done":
        instrs, win, _ = conv_layer()
        dev.load(instrs, win)
    else:
        instrs, kw, *_ = ERRORS["dma_window_load_2d"]
        dev.load(instrs, **kw)
    dev.start()
    assert dev.wait_irq(10)
    dev.expect("STATUS", DONE if how == "done" else ERROR)


@pytest.mark.parametrize("how", ["done", "error"])
def test_soft_reset_clears_state_keeps_settings(dev, how):
    """CTRL.SOFT_RESET clears STATUS, STATUS_PC, ERR_* and IRQ_STATUS; keeps CMD_BASE, CMD_LEN, the DMA window, WATCHDOG, IRQ_ENABLE, SCRATCH; the PERF_* counters keep
    their values too (their descs name DOORBELL as their only reset) and FREE_CYCLES runs on."""
    _end_state(dev, how)
    settings = {"SCRATCH": 0xC0FFEE11, "WATCHDOG": 0x7654321, "IRQ_ENABLE": 3}
    for r, v in settings.items():
        dev.write(r, v)
    kept = {r: dev.read(r) for r in SETTINGS}
    assert all(v["golden"] == v["sim"] for v in kept.values()), kept
    perf = dev.perf()
    f0 = dev.counter("FREE_CYCLES")
    dev.write("CTRL", 1)
    dev.expect("CTRL", 0)
    for r in ("STATUS", "STATUS_PC", "ERR_CODE", "ERR_ADDR", "ERR_PC"):
        dev.expect(r, 0, "cleared by CTRL.SOFT_RESET")
    dev.expect("IRQ_STATUS", 0, "cleared by CTRL.SOFT_RESET")
    assert not dev.golden.device._line
    assert {r: dev.read(r) for r in SETTINGS} == kept
    assert dev.perf() == perf
    f1 = dev.counter("FREE_CYCLES")
    assert all(f1[k] > f0[k] for k in f0)
    # a second SOFT_RESET, idle: changes nothing
    snap = dev.snapshot()
    del snap["IRQ_STATUS"]
    dev.write("CTRL", 1)
    after = dev.snapshot()
    del after["IRQ_STATUS"]
    assert after == snap


@pytest.mark.parametrize("how", ["done", "error"])
def test_soft_reset_clears_irq_status(dev, how):
    _end_state(dev, how)
    dev.write("IRQ_ENABLE", 3)
    assert dev.line()
    dev.write("CTRL", 1)
    dev.expect("IRQ_STATUS", 0, "cleared by CTRL.SOFT_RESET")
    assert not dev.line()


def test_golden_soft_reset_keeps_perf_counters():
    """golden: alone (no simulator): the PERF_* counters survive CTRL.SOFT_RESET and restart at DOORBELL;
    a power-on reset clears them."""
    g = GoldenTransport()
    instrs, win, work = conv_layer()
    g.dma_write(WIN, win)
    g.dma_write(CMD, b"".join(instrs))
    for r, v in (("DMA_WIN_BASE", WIN), ("DMA_WIN_LIMIT", WIN + WIN_SIZE), ("CMD_BASE", CMD),
                 ("CMD_LEN", len(instrs)), ("IRQ_ENABLE", 3), ("DOORBELL", 1)):
        g.write32(OFF[r], v)
    assert g.wait_irq(10)

    def counts():
        return {n: g.read32(OFF[f"PERF_{n}_LO"]) for n in PERF}

    before = counts()
    assert {n: before[n] for n in WORK} == work and before["BUSY_CYCLES"] > 0
    g.write32(OFF["CTRL"], 1)
    assert g.read32(OFF["STATUS"]) == 0 and counts() == before
    g.reset()
    assert set(counts().values()) == {0}



def _burst(dev: Pair, writes: list[tuple[str, int]]) -> None:
    """Register writes issued back to back, as a CPU posts them over PCIe. golden: one after the other; sim:
    SimTransport.write32_burst (all requests sent before the first reply is read, so every write lands on a
    fixed cycle after the first and the outcome is deterministic)."""
    for name, v in writes:
        dev.golden.write32(OFF[name], v)
    dev.sim.write32_burst([(OFF[name], v) for name, v in writes])


def test_irq_status_write_does_not_lose_a_concurrent_set(dev):
    """DOORBELL for a program of k NOPs, then IRQ_STATUS.ERROR W1C writes back to back (the other bit): every
    completed program must still show IRQ_STATUS.DONE and interrupt. The writes come every bridge + handshake
    cycles (~19); k = 8..45 moves the completion cycle over two of those periods, so some write meets it."""
    lengths = range(8, 46)
    progs = {}
    for i, k in enumerate(lengths):
        b = ProgramBuilder(ROWS, COLS)
        for _ in range(k):
            b.nop()
        b.end()
        progs[k] = CMD + i * 0x1000
        for d in dev.devs.values():
            d.dma_write(progs[k], b"".join(b.instructions))
    dev.write("IRQ_ENABLE", IRQ_DONE | IRQ_ERROR)
    lost = []
    for k in lengths:
        dev.write("CMD_BASE", progs[k])
        dev.write("CMD_LEN", k + 1)
        dev.write("IRQ_STATUS", IRQ_DONE | IRQ_ERROR)
        for d in dev.devs.values():
            while d.wait_irq(0):
                pass
        _burst(dev, [("DOORBELL", 1)] + [("IRQ_STATUS", IRQ_ERROR)] * 12)  # ~240 cycles: past every program's end
        dev.settle()
        st, irq = dev.read("STATUS"), dev.read("IRQ_STATUS")
        got = {name: dev.devs[name].wait_irq(0.01) for name in dev.devs}
        lost += [f"{name}: {k} NOPs, STATUS 0x{st[name]:x}, IRQ_STATUS 0x{irq[name]:x}, interrupt {got[name]}"
                 for name in dev.devs if (st[name], irq[name], got[name]) != (DONE, IRQ_DONE, True)]
    assert not lost, "; ".join(lost)

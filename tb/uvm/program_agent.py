"""Program agent: a sequencer of ProgramItems and the driver that runs each one
on npu_top the way the host driver does - backdoor the window image and the
instruction stream into device memory, program CMD_BASE/CMD_LEN/the DMA window
through the register model, ring the doorbell and await the interrupt (one
trigger, never a per-cycle loop) - then reads status, error and performance
registers and dumps the window for the scoreboard."""

from __future__ import annotations

from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.triggers import SimTimeoutError
from pyuvm import uvm_agent, uvm_analysis_port, uvm_driver, uvm_sequence, uvm_sequencer

from presil.golden.iss import execute
from presil.tb.uvm.items import Observed, ProgramItem

CMD_ADDR = 0x0001_0000      # instruction stream (absolute: the fetch ignores the window)
WIN_ADDR = 0x0010_0000      # DMA window base (16-byte aligned, as the driver allocates it)
CLK_NS = 10
PERF_COUNTERS = ("BUSY_CYCLES", "MAC_ACTIVE_CYCLES", "DMA_RD_BYTES", "DMA_WR_BYTES", "STALL_L2C", "STALL_C2L",
                 "STALL_C2S", "STALL_S2C", "STALL_DMA", "INSTR_RETIRED")


def timeout_cycles(item: ProgramItem) -> int:
    """A generous bound from the cost model: the schedule without data (no race
    check), times 8 for back-pressure and calibration error."""
    try:
        est = execute(item.program.instructions, item.image(), item.program.rows, item.program.cols,
                      check_races=False).cycles
    except Exception:           # an erroring program: the error comes early
        est = 50_000
    return 8 * est + 20_000 + (item.watchdog or 0) * 2


class ProgramDriver(uvm_driver):
    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.dut = None
        self.regs = None        # RegModel (AXI-Lite agent), set by the environment
        self.mem = None         # MemAgent

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            await self.drive(item)
            self.ap.write(item)
            self.seq_item_port.item_done()

    async def drive(self, item: ProgramItem) -> None:
        p, r, m = item.program, self.regs, self.mem
        image = item.image()
        m.configure(item.mem)
        m.error_range(*(WIN_ADDR + a for a in item.error_range) if item.error_range else ())
        m.load(CMD_ADDR, b"".join(p.instructions))
        m.load(WIN_ADDR, image)
        v0 = m.violations()
        await r.write("CMD_BASE", CMD_ADDR)
        await r.write("CMD_LEN", len(p.instructions))
        await r.write("DMA_WIN_BASE", WIN_ADDR)
        await r.write("DMA_WIN_LIMIT", WIN_ADDR + p.dram_size)
        await r.write("WATCHDOG", item.watchdog)
        await r.write("IRQ_STATUS", 3)
        await r.write("IRQ_ENABLE", 3)
        await r.write("DOORBELL", 1)
        obs = Observed()
        if not self.dut.irq.value:
            try:
                await with_timeout(RisingEdge(self.dut.irq), timeout_cycles(item) * CLK_NS, "ns")
            except SimTimeoutError:
                obs.timed_out = True
        obs.status = await r.read("STATUS")
        obs.irq = await r.read("IRQ_STATUS")
        obs.err_code = await r.read("ERR_CODE")
        obs.err_pc = await r.read("ERR_PC")
        obs.err_addr = await r.read("ERR_ADDR")
        for c in PERF_COUNTERS:
            obs.perf[c] = await r.read64(c)
        obs.window = m.dump(WIN_ADDR, p.dram_size)
        obs.violations = m.violations() - v0
        await r.write("IRQ_STATUS", 3)
        if obs.timed_out or obs.status & 1:     # hung or still busy: stop it before the next item
            await r.write_fields("CTRL", ABORT=1)
            await ClockCycles(self.dut.clk, 200)
            await r.write_fields("CTRL", SOFT_RESET=1)
            await ClockCycles(self.dut.clk, 10)
            await r.write("IRQ_STATUS", 3)
        elif obs.status & 4:                    # an error stops the device until a soft reset
            await r.write_fields("CTRL", SOFT_RESET=1)
            await ClockCycles(self.dut.clk, 4)
            await r.write("IRQ_STATUS", 3)
        m.error_range()
        item.observed = obs


class ProgramAgent(uvm_agent):
    def build_phase(self):
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = ProgramDriver("driver", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)


class ProgramSequence(uvm_sequence):
    """Runs a list of ProgramItems in order."""

    def __init__(self, name: str, items: list[ProgramItem]):
        super().__init__(name)
        self.items = items

    async def body(self):
        for it in self.items:
            await self.start_item(it)
            await self.finish_item(it)

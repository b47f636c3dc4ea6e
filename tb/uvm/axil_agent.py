"""AXI4-Lite agent: register accesses as sequence items, driven by cocotbext-axi's
AxiLiteMaster, observed by a transaction monitor that checks response codes.

The monitor subscribes to the driver's completed transactions instead of
sampling the pins: sampling the bus would put Python on every clock cycle
(the environment never does that); every AXI-Lite transaction still passes
through it with its BRESP/RRESP.
"""

from __future__ import annotations

from cocotbext.axi import AxiLiteBus, AxiLiteMaster
from cocotbext.axi.constants import AxiResp
from pyuvm import (uvm_agent, uvm_analysis_port, uvm_driver, uvm_sequence, uvm_sequence_item, uvm_sequencer,
                   uvm_subscriber)

from presil.tb.uvm.regs import RegModel


class RegItem(uvm_sequence_item):
    """One 32-bit register read or write; `data`/`resp` are filled in by the driver."""

    def __init__(self, name: str, write: bool, addr: int, data: int = 0):
        super().__init__(name)
        self.write, self.addr, self.data = write, addr, data
        self.resp: int | None = None

    def __str__(self) -> str:
        return f"{'WR' if self.write else 'RD'} 0x{self.addr:03x} = 0x{self.data:08x} resp={self.resp}"


class AxilDriver(uvm_driver):
    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.master: AxiLiteMaster | None = None    # set by the agent's connect (needs the dut)

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            if item.write:
                r = await self.master.write(item.addr, item.data.to_bytes(4, "little"))
                item.resp = int(r.resp)
            else:
                r = await self.master.read(item.addr, 4)
                item.data, item.resp = int.from_bytes(r.data, "little"), int(r.resp)
            self.ap.write(item)
            self.seq_item_port.item_done()


class AxilMonitor(uvm_subscriber):
    """Protocol check: every register access must answer OKAY (the register
    block has no error responses; a SLVERR/DECERR is a bug)."""

    def build_phase(self):
        self.count = 0
        self.errors: list[str] = []

    def write(self, item: RegItem):
        self.count += 1
        if item.resp != int(AxiResp.OKAY):
            self.errors.append(f"AXI-Lite {item}: response {AxiResp(item.resp).name}")


class _Access(uvm_sequence):
    def __init__(self, item: RegItem):
        super().__init__("reg_access")
        self.item = item

    async def body(self):
        await self.start_item(self.item)
        await self.finish_item(self.item)


class AxilAgent(uvm_agent):
    """Sequencer + driver + monitor; `regs` is the register model whose accesses
    go through this agent's sequencer."""

    def build_phase(self):
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = AxilDriver("driver", self)
        self.monitor = AxilMonitor("monitor", self)
        self.regs = RegModel(self.read32, self.write32)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)
        self.driver.ap.connect(self.monitor.analysis_export)

    def bind(self, dut) -> None:
        self.driver.master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst_n,
                                           reset_active_level=False)

    async def read32(self, addr: int) -> int:
        item = RegItem("rd", False, addr)
        await _Access(item).start(self.seqr)
        return item.data

    async def write32(self, addr: int, data: int) -> None:
        await _Access(RegItem("wr", True, addr, data)).start(self.seqr)

"""The environment around npu_tb_top: AXI-Lite agent (+ register model), device
memory agent, program agent, scoreboard and functional coverage, and the base
test that clocks/resets the DUT and runs a list of ProgramItems."""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from pyuvm import uvm_env, uvm_subscriber, uvm_test

from presil.golden.device_errors import ErrorCode
from presil.tb.coverage import sample_item
from presil.tb.uvm.axil_agent import AxilAgent
from presil.tb.uvm.mem_agent import MemAgent
from presil.tb.uvm.program_agent import CLK_NS, ProgramAgent, ProgramSequence
from presil.tb.uvm.scoreboard import Scoreboard


class Coverage(uvm_subscriber):
    """Samples the functional coverage model for every finished program (after
    the scoreboard, which attaches the golden capture to the item)."""

    def write(self, item):
        o = item.observed
        err = ErrorCode(o.err_code).name if o.status & 4 and o.err_code in ErrorCode._value2member_map_ else None
        sample_item(item, err)


class NpuEnv(uvm_env):
    def build_phase(self):
        self.axil = AxilAgent("axil", self)
        self.mem = MemAgent("mem", self)
        self.prog = ProgramAgent("prog", self)
        self.scoreboard = Scoreboard("scoreboard", self)
        self.coverage = Coverage("coverage", self)

    def connect_phase(self):
        # Order matters: the scoreboard runs the golden model the coverage samples.
        self.prog.driver.ap.connect(self.scoreboard.analysis_export)
        self.prog.driver.ap.connect(self.coverage.analysis_export)

    def bind(self, dut) -> None:
        self.axil.bind(dut)
        self.mem.bind()
        d = self.prog.driver
        d.dut, d.regs, d.mem = dut, self.axil.regs, self.mem


class NpuTest(uvm_test):
    """Subclasses implement `items()` (a list of ProgramItems); run_phase resets
    the DUT, runs them, and the check phase fails the test on any mismatch or
    AXI-Lite response error."""

    def build_phase(self):
        self.env = NpuEnv("env", self)

    def items(self):
        raise NotImplementedError

    async def reset(self):
        dut = cocotb.top
        Clock(dut.clk, CLK_NS, unit="ns").start()
        dut.rst_n.value = 0
        self.env.bind(dut)
        self.env.mem.mem.error_range()
        await ClockCycles(dut.clk, 4)
        dut.rst_n.value = 1
        await ClockCycles(dut.clk, 2)

    async def run_phase(self):
        self.raise_objection()
        await self.reset()
        await ProgramSequence("programs", list(self.items())).start(self.env.prog.seqr)
        self.drop_objection()

    def check_phase(self):
        bad = [f"{v.name}: {v.message}" for v in self.env.scoreboard.failures]
        bad += self.env.axil.monitor.errors
        self.after_run()
        assert not bad, f"{len(bad)} failure(s):\n" + "\n".join(bad)

    def after_run(self):
        """Hook: write results/coverage reports (before the verdict)."""

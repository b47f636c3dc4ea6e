"""Speed of npu_top under cocotb on one layer program (benchmarks/sim_speed.py).

The job (env PRESIL_SPEED_JOB, an .npz written by the benchmark) holds the
encoded instructions, the DMA window image and the memory timing. The test runs
the program `repeats` times the way the pyuvm program driver does - backdoor
load of the stream and the window (DPI), the registers through cocotbext-axi's
AxiLiteMaster, the doorbell, one RisingEdge(irq) - and times separately:

- run:   doorbell write -> interrupt (the simulation of the program; no Python
         runs in between unless something wakes it per cycle),
- total: load + registers + run + PERF read + window dump (end to end per layer).

It writes the figures to metrics.json and the last window to out_window.npy
(the benchmark checks it against the ISS).
"""

from __future__ import annotations

import os
import time

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from presil.tb.memory import AxiMem
from presil.tb.runner import write_metrics

CLK_NS = 10
CMD_ADDR, WIN_ADDR = 0x0001_0000, 0x0010_0000
CMD_BASE, CMD_LEN, DOORBELL, IRQ_STATUS, IRQ_ENABLE = 0x050, 0x054, 0x058, 0x060, 0x064
STATUS, WATCHDOG, WIN_BASE, WIN_LIMIT, PERF_BUSY = 0x044, 0x078, 0x080, 0x084, 0x108


@cocotb.test()
async def layer_speed(dut):
    job = np.load(os.environ["PRESIL_SPEED_JOB"])
    instrs, win = job["instrs"].tobytes(), job["win"]
    rd_lat, wr_lat, stall, seed, repeats = (int(job["rd_latency"]), int(job["wr_latency"]), float(job["stall"]),
                                            int(job["seed"]), int(job["repeats"]))
    Clock(dut.clk, CLK_NS, unit="ns").start()
    dut.rst_n.value = 0
    mem = AxiMem()
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst_n, reset_active_level=False)
    await ClockCycles(dut.clk, 4)
    dut.rst_n.value = 1
    await ClockCycles(dut.clk, 2)
    runs = []
    for _ in range(repeats):
        mem.configure(rd_lat, wr_lat, stall, seed)        # the same back-pressure sequence every run
        t0 = time.perf_counter()
        mem.write(CMD_ADDR, instrs)
        mem.write(WIN_ADDR, win)
        for a, v in ((CMD_BASE, CMD_ADDR), (CMD_LEN, len(instrs) // 32), (WIN_BASE, WIN_ADDR),
                     (WIN_LIMIT, WIN_ADDR + win.size), (WATCHDOG, 0), (IRQ_STATUS, 3), (IRQ_ENABLE, 3)):
            await axil.write_dword(a, v)
        t1 = time.perf_counter()
        c1 = get_sim_time("ns")
        await axil.write_dword(DOORBELL, 1)
        if not dut.irq.value:
            await with_timeout(RisingEdge(dut.irq), 10**10, "ns")
        t2 = time.perf_counter()
        c2 = get_sim_time("ns")
        status = await axil.read_dword(STATUS)
        busy = await axil.read_dword(PERF_BUSY) | await axil.read_dword(PERF_BUSY + 4) << 32
        out = mem.read(WIN_ADDR, win.size)
        await axil.write_dword(IRQ_STATUS, 3)
        t3 = time.perf_counter()
        assert status & 2 and not status & 4, f"STATUS 0x{status:x}: the program did not finish cleanly"
        runs.append({"run_s": t2 - t1, "run_cycles": int(round((c2 - c1) / CLK_NS)), "busy_cycles": int(busy),
                     "load_s": t1 - t0, "dump_s": t3 - t2, "total_s": t3 - t0})
    np.save("out_window.npy", out)
    write_metrics(runs=runs)

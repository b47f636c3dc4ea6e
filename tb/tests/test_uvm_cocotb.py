"""pyuvm tests of npu_top (environment: presil.tb.uvm). Each test is a uvm_test;
the pytest wrappers in tests/rtl/test_uvm_*.py choose one with `testcase`.

- UvmJobs: the programs of a job folder (env PRESIL_UVM_JOBS): zoo-model
  layers and whole segments with real tensors, or whatever `presil sim` sends.
- UvmRandom: seeded constrained-random layer streams (PRESIL_UVM_SEED,
  PRESIL_UVM_COUNT), race-checked by the ISS before they run.
- UvmErrors: error paths (decode, DMA window, bus error, tokens, watchdog).

Every test writes results.json (verdicts and RTL/model cycles) and a
functional-coverage report (coverage_<test>.yml/.txt) in its folder.
"""

from __future__ import annotations

import os

import pyuvm

from presil.tb.coverage import write_report
from presil.tb.uvm.errors import error_items
from presil.tb.uvm.items import ProgramItem
from presil.tb.uvm.jobs import JOBS_ENV, read_jobs, write_results
from presil.tb.uvm.mem_agent import MemConfig
from presil.tb.uvm.env import NpuTest
from presil.tb.uvm.randprog import random_items


class _Reported(NpuTest):
    def after_run(self):
        write_results(".", self.env.scoreboard.verdicts)
        write_report(".", type(self).__name__)


@pyuvm.test()
class UvmJobs(_Reported):
    def items(self):
        for j in read_jobs(os.environ[JOBS_ENV]):
            yield ProgramItem(j["name"], j["program"], j["inputs"], capture=j["capture"],
                              mem=MemConfig(**j["mem"]), meta=j["meta"])


@pyuvm.test()
class UvmRandom(_Reported):
    def items(self):
        seed = int(os.environ.get("PRESIL_UVM_SEED", "1"))
        return random_items(seed, int(os.environ.get("PRESIL_UVM_COUNT", "12")))


@pyuvm.test()
class UvmErrors(_Reported):
    def items(self):
        return error_items()

"""pyuvm environment on npu_top with real benchmark tensors: every distinct
conv/fc/pool/add layer of digits and the MLPerf Tiny models (input activation
from the golden run of the whole model), and whole NPU segments of digits
(every intermediate tensor compared). Scoreboard: golden ISS, bit-exact."""

from __future__ import annotations

import pytest

from presil.tb.uvm.harness import assert_passed, run_uvm, table
from presil.tb.uvm.jobs import write_jobs
from presil.tb.uvm.mem_agent import MemConfig
from presil.tb.uvm.models import layer_jobs, segment_jobs

TINY = ["digits_cnn", "resnet8", "dscnn", "mobilenet_v1_025_vww", "autoencoder_ad"]


def _run(tmp_path, jobs, tag):
    r = run_uvm("UvmJobs", tmp_path / "sim", jobs_dir=write_jobs(tmp_path / "jobs", jobs), tag=tag)
    print("\n" + table(r.verdicts))
    assert_passed(r)
    return r


@pytest.mark.parametrize("model", TINY)
def test_layers(tmp_path, model):
    jobs = layer_jobs(model)
    # Half of the layers under back-pressure (seeded): same results, other timing.
    for i, j in enumerate(jobs):
        if i % 2:
            j["mem"] = {"rd_latency": 7, "wr_latency": 4, "stall": 0.25, "seed": i}
    _run(tmp_path, jobs, f"layers_{model}")


def test_digits_whole_network(tmp_path):
    r = _run(tmp_path, segment_jobs("digits_cnn"), "network_digits")
    assert r.verdicts and all(v["passed"] for v in r.verdicts)


@pytest.mark.parametrize("model", ["resnet8", "dscnn", "mobilenet_v1_025_vww", "autoencoder_ad"])
def test_tiny_whole_network(tmp_path, model):
    jobs = segment_jobs(model)
    if model == "resnet8":
        jobs += [{**j, "name": j["name"] + " (back-pressure)", "mem": vars(MemConfig(9, 6, 0.3, 5))}
                 for j in segment_jobs(model)]
    _run(tmp_path, jobs, f"network_{model}")

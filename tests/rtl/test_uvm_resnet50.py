"""slow: one ResNet-50 v1.5 layer of each distinct shape class (conv/pool/add/fc,
by shape and attributes) on npu_top through the pyuvm environment, with its
real input activation from the golden run (seeded synthetic input)."""

from __future__ import annotations

import pytest

from presil.tb.uvm.harness import assert_passed, run_uvm, table
from presil.tb.uvm.jobs import write_jobs
from presil.tb.uvm.models import compiled, layer_jobs, segment_jobs


@pytest.mark.slow
def test_resnet50_layer_classes(tmp_path):
    jobs = layer_jobs("resnet50_v1_5")
    for j in jobs:
        j["capture"] = False       # outputs only: per-instruction capture of 10 M cycles is memory-heavy
    r = run_uvm("UvmJobs", tmp_path / "sim", jobs_dir=write_jobs(tmp_path / "jobs", jobs), tag="layers_resnet50")
    print("\n" + table(r.verdicts))
    assert_passed(r)


@pytest.mark.slow
def test_resnet8_whole_network_more_samples(tmp_path):
    jobs = [j for s in range(1, 4) for j in segment_jobs("resnet8", sample=s)]
    r = run_uvm("UvmJobs", tmp_path / "sim", jobs_dir=write_jobs(tmp_path / "jobs", jobs), tag="network_resnet8_s")
    print("\n" + table(r.verdicts))
    assert_passed(r)

"""`presil mlperf` end to end: accuracy + performance on the estimate, then the
submission tree with every file and field MLPerf requires (lists from
shared/background/mlperf.md, written out here rather than imported)."""

from __future__ import annotations

import json

import pytest

from presil.cli import main

SYSTEM_FIELDS = """division submitter status system_name number_of_nodes host_processor_model_name
host_processors_per_node host_processor_core_count host_memory_capacity host_storage_capacity
host_storage_type accelerators_per_node accelerator_model_name accelerator_memory_capacity framework
operating_system system_type other_software_stack host_processor_frequency host_processor_caches
host_memory_configuration host_processor_interconnect host_networking host_networking_topology
accelerator_frequency accelerator_host_interconnect accelerator_interconnect
accelerator_interconnect_topology accelerator_memory_configuration accelerator_on-chip_memories cooling
hw_notes sw_notes host_network_card_count system_type_detail""".split()
MEASUREMENT_FIELDS = ["input_data_types", "retraining", "starting_weights_filename", "weight_data_types",
                      "weight_transformations"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlperf-cli")
    refs = out / "refs.csv"
    refs.write_text("system,benchmark,scenario,value,units,status,source\n"
                    "Some published chip,digits_cnn,SingleStream,0.5,ms,preview,user-supplied example\n")
    rc = main(["mlperf", "--model", "digits_cnn", "--scenario", "SingleStream", "--mode", "both",
               "--device", "estimate", "--out", str(out), "--count", "48", "--min-duration", "0.3",
               "--min-query-count", "64", "--host-overhead-us", "10", "--reference", str(refs)])
    assert rc == 0
    return out


def test_required_files_and_fields(tree):
    assert len(SYSTEM_FIELDS) == 35
    base = tree / "submission" / "open" / "presil"
    (sysfile,) = (base / "systems").glob("*.json")
    system = json.loads(sysfile.read_text())
    assert sorted(system) == sorted(SYSTEM_FIELDS)
    assert system["status"] == "rdi"
    for key in ("system_type_detail", "hw_notes"):
        assert "ESTIMATE" in system[key]
    assert "1 GHz" in system["hw_notes"] and "16x16" in system["hw_notes"] and "PCIe Gen3 x8" in system["hw_notes"]

    sc = base / "results" / sysfile.stem / "digits_cnn" / "SingleStream"
    for f in ["performance/run_1/mlperf_log_summary.txt", "performance/run_1/mlperf_log_detail.txt",
              "accuracy/accuracy.txt", "accuracy/mlperf_log_accuracy.json", "accuracy/mlperf_log_detail.txt",
              "accuracy/mlperf_log_summary.txt", "measurements.json", "user.conf", "README.md"]:
        assert (sc / f).is_file(), f
    m = json.loads((sc / "measurements.json").read_text())
    assert all(k in m for k in MEASUREMENT_FIELDS)
    acc = (sc / "accuracy" / "accuracy.txt").read_text().splitlines()
    assert acc[0].startswith("accuracy=") and acc[-1].startswith("hash=")
    assert any(line.startswith("target: PASS") for line in acc)  # >= 99% of our own FP32 run
    assert "unverified" in (sc / "README.md").read_text() and "ESTIMATE" in (sc / "README.md").read_text()


def test_summary_labels_estimates_and_keeps_references_apart(tree):
    base = tree / "submission" / "open" / "presil"
    md = (base / "summary.md").read_text()
    js = json.loads((base / "summary.json").read_text())
    (row,) = js["rows"]
    assert row["label"] == "ESTIMATE" and "cycles" in row["assumptions"] and row["unverified"]
    assert row["status"] == "rdi" and row["validity"] in ("VALID", "INVALID")
    assert "| digits_cnn | SingleStream | ESTIMATE |" in md
    assert "not presil's" in md and "Some published chip" in md
    assert js["references"][0]["system"] == "Some published chip"


def test_tree_checker_agrees(tree):
    from presil.host.mlperf.submission import check_tree

    assert check_tree(tree / "submission", "open", "presil") == []

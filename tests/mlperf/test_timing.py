"""The timing model: PCIe arithmetic and the device queue, against hand calculations."""

from __future__ import annotations

import pytest

from presil.host.mlperf.timing import DeviceQueue, PcieLink, TimingModel


def test_pcie_gen3x8_bandwidth_by_hand():
    link = PcieLink.parse("gen3x8")
    # 8 GT/s x 128/130 / 8 bits x 8 lanes = 7.877 GB/s line rate.
    assert link.line_rate_bytes_s == pytest.approx(8e9 * 128 / 130 / 8 * 8)
    assert link.bandwidth_bytes_s == pytest.approx(0.8 * 7.8769e9, rel=1e-4)
    assert link.transfer_s(6_301_538) == pytest.approx(2e-6 + 1e-3, rel=1e-5)
    assert link.transfer_s(0) == 0.0
    assert PcieLink.parse("Gen4 x16").line_rate_bytes_s == pytest.approx(16e9 * 128 / 130 / 8 * 16)
    assert PcieLink.parse("gen2x4").line_rate_bytes_s == pytest.approx(5e9 * 0.8 / 8 * 4)


@pytest.mark.parametrize("bad", ["gen9x8", "gen3x3", "pcie", "3"])
def test_pcie_parse_rejects(bad):
    with pytest.raises(ValueError, match="genNxL"):
        PcieLink.parse(bad)


def _model(**kw):
    base = dict(cycles=5000, in_bytes=1024, out_bytes=16, clock_hz=1e9, host_overhead_s=10e-6,
                link=PcieLink(3, 8, 0.8, 2e-6), launch_s=1e-6)
    base.update(kw)
    return TimingModel(**base)


def test_single_sample_latency_is_the_sum_of_stages():
    m = _model()
    bw = 8e9 * 128 / 130 / 8 * 8 * 0.8
    expect = 10e-6 + (2e-6 + 1024 / bw) + (1e-6 + 5000 / 1e9) + (2e-6 + 16 / bw)
    assert m.latency_s == pytest.approx(expect)
    assert m.throughput == pytest.approx(1 / 10e-6)  # the host stage is the bottleneck
    assert _model(dma_overlap=False).throughput == pytest.approx(1 / (expect - 10e-6))


def test_queue_batch_matches_closed_form_and_single_stream():
    m = _model(host_overhead_s=1e-6)  # the npu is the bottleneck now
    q = DeviceQueue(m.stages(), True)
    ends = [q.schedule(0.0) for _ in range(8)]
    assert ends[-1] == pytest.approx(m.batch_latency_s(8))
    assert ends[-1] == pytest.approx(m.latency_s + 7 * m.compute_s)
    # Samples spaced further apart than the latency never queue.
    q = DeviceQueue(m.stages(), True)
    for i in range(5):
        assert q.schedule(i * 1.0) - i * 1.0 == pytest.approx(m.latency_s)


def test_no_overlap_serialises_transfers_with_compute():
    m = _model(dma_overlap=False, host_overhead_s=0.0)
    q = DeviceQueue(m.stages(), False)
    ends = [q.schedule(0.0) for _ in range(4)]
    assert ends[-1] == pytest.approx(4 * (m.h2d_s + m.compute_s + m.d2h_s))


def test_double_buffering_limits_how_far_copies_run_ahead():
    # h2d fast, npu slow: the copy of job i waits for the npu to finish job i-2.
    q = DeviceQueue([0.0, 1.0, 10.0, 1.0], True)
    for _ in range(4):
        q.schedule(0.0)
    # job 3's h2d starts when the npu finishes job 1 (t = 1 + 10 + 10 = 21).
    assert q.recent[1][-1] == pytest.approx(22.0)


def test_timing_model_round_trips_through_json():
    m = _model()
    assert TimingModel.from_dict(m.to_dict()) == m
    assert "ESTIMATE" not in m.assumptions() and "5000 device cycles" in m.assumptions()


def test_measured_cycles_on_the_golden_device_equal_the_cost_model():
    """--cycles-source rtl reads BUSY_CYCLES through the driver; on the golden
    device model that counter is the ISS's cost-model cycles, so the two paths
    must agree exactly (the RTL, sim:, gives its own measured figure)."""
    from presil.host.mlperf.models import (calibration_data, compile_model, measured_cycles, model_cycles,
                                           resolve_model)

    spec = resolve_model("digits_cnn")
    compiled = compile_model(spec, calibration_data(spec, "digits"))
    model = model_cycles(compiled)
    golden = measured_cycles(compiled, "golden:", model)
    assert golden.cycles == model.cycles > 0
    assert golden.in_bytes == model.in_bytes and golden.out_bytes == model.out_bytes

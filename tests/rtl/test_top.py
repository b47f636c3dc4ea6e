"""npu_top on Verilator: registers, DMA programs against the golden ISS, tokens,
errors, IRQ and perf counters (tb/tests/test_top_cocotb.py). The build is
presil.tb.npu_tb_top's, shared with the pyuvm tests."""

from __future__ import annotations

from presil.tb.npu_tb_top import top_build
from presil.tb.runner import SimulationError, run


def test_top(tmp_path):
    b = top_build()
    res = run(b, "test_top_cocotb", tmp_path)
    if not res.tests:
        raise SimulationError(f"no cocotb test ran; see {res.xml}")
    for t in res.tests:
        print(f"  {t['name']}: {'ok' if t['passed'] else 'FAIL'} ({t['real_time_s']:.2f} s)")
    m = res.metrics
    print(f"\nnpu_top: build {'cached' if b.cached else f'{b.seconds:.1f} s'}; DMA program "
          f"{m.get('cycles', 0)} cycles at {m.get('cycles_per_s', 0):.0f} cycles/s "
          f"({m.get('bytes_per_cycle', 0):.1f} B/cycle)")
    if res.failed:
        raise SimulationError("\n".join(f"{t['name']}: {t['message']}" for t in res.failed)
                              + f"\n(log {tmp_path / 'sim.log'})")


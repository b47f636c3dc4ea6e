"""End to end across devices: the zoo's digits_cnn compiled by presil's compiler,
its NPU program run through Device/Runner on golden: (in-process model), sim:
(npu_top RTL in Verilator) and the emulated xdma: board -> identical output bytes,
and equal to the golden ISS. Bundle.run drives golden: only, so the program is run
with Runner on each device directly."""

from __future__ import annotations

import time

import numpy as np
import pytest

from presil.golden.iss import run as golden_run
from presil.golden.program import TensorRole
from presil.host.driver import Device
from presil.host.runtime import Runner

N_IMAGES = 4


@pytest.fixture(scope="module")
def digits():
    from presil.host import zoo
    from presil.host.compiler.bundle import compile_model
    from presil.host.compiler.zoodata import calibration
    from presil.host.zoo.digits import digits_split

    bundle = compile_model(zoo.build("digits_cnn"), calibration("digits_cnn")[0])
    idx = next(s["index"] for s in bundle.segments if s["device"] == "npu")
    prog = bundle.programs[idx]
    names = prog.meta["tensor_names"]
    batch = []
    for img in digits_split()[2][:N_IMAGES]:
        q = bundle.quantize_inputs(img[None])
        batch.append({t.name: q[names[t.name]].reshape(t.shape) for t in prog.tensors if t.role == TensorRole.INPUT})
    return prog, batch


@pytest.fixture(params=["golden", "sim", "xdma"])
def uri(request):
    return {"golden": "golden:", "sim": "sim:"}.get(request.param) or request.getfixturevalue("xdma_uri")


def _run_all(uri, prog, batch) -> list[dict[str, bytes]]:
    with Device.open(uri) as d, Runner(d, prog, timeout=60) as r:
        first = r.run(batch[0])                          # sync
        rest = [f.result(60) for f in [r.submit(x) for x in batch[1:]]]  # queued, overlapped
        return [{k: v.tobytes() for k, v in o.items()} for o in [first, *rest]]


_results: dict[str, list] = {}


def test_digits_same_bytes_on_every_device(uri, digits):
    prog, batch = digits
    t0 = time.perf_counter()
    got = _run_all(uri, prog, batch)
    print(f"\n{uri.split('?')[0][:40]}: {len(batch)} digits_cnn inferences ({len(prog.instructions)} instructions) "
          f"in {time.perf_counter() - t0:.2f} s")
    want = [{k: v.tobytes() for k, v in golden_run(prog, x).outputs.items()} for x in batch]
    assert got == want  # bit-exact vs the ISS, hence identical across devices
    _results[uri.split(":")[0]] = got
    if len(_results) > 1:
        first = next(iter(_results.values()))
        assert all(v == first for v in _results.values())

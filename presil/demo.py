"""`presil demo`: the whole chain on the digits model, in a few minutes.

1. MLPerf through the real LoadGen (`presil mlperf`): compiles the digits CNN,
   FP32 accuracy in onnxruntime, int8 accuracy on the golden model over the
   whole held-out set, and SingleStream + Offline pre-silicon ESTIMATES at
   16x16, 1 GHz, PCIe Gen3 x8.
2. The RTL: the same compiled program on `npu_top` in Verilator (`sim:`,
   co-simulation through the same driver a board uses) for a subset of the
   held-out set, every output compared bit for bit with the golden model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "digits_cnn"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _mlperf(out: Path, min_duration: float) -> int:
    from presil.cli import main as presil_main

    return presil_main(["mlperf", "--model", MODEL, "--scenario", "SingleStream,Offline", "--mode", "both",
                        "--device", "estimate", "--out", str(out), "--min-duration", str(min_duration),
                        "--target-clock-hz", "1e9", "--array", "16x16", "--pcie", "gen3x8"])


def _rtl_subset(device: str, count: int) -> dict:
    """Run `count` held-out digits on `device` and on golden; outputs must be identical."""
    from presil.host.compiler.bundle import compile_model
    from presil.host.runtime import ModelRunner
    from presil.host.zoo import build
    from presil.host.zoo.digits import digits_split

    x_train, _, x_test, y_test = digits_split()
    bundle = compile_model(build(MODEL), x_train[:200])
    name = bundle.manifest["inputs"][0]["name"]
    _say(f"   opening {device} (the first run builds the Verilator model: about a minute)")
    t0 = time.perf_counter()
    correct = mismatched = 0
    with ModelRunner(bundle, device) as runner:
        _say(f"   device ready after {time.perf_counter() - t0:.1f} s; running {count} samples")
        t1 = time.perf_counter()
        for i in range(count):
            x = {name: x_test[i][None]}
            got, want = runner.run(x), bundle.run(x)
            same = all(np.array_equal(got[k], want[k]) for k in want)
            mismatched += not same
            correct += int(np.argmax(next(iter(got.values()))) == y_test[i])
            if not same:
                _say(f"   sample {i}: MISMATCH between {device} and golden")
            if (i + 1) % 10 == 0 or i + 1 == count:
                _say(f"   [{i + 1}/{count}] {i + 1 - mismatched} bit-exact vs golden so far")
        secs = time.perf_counter() - t1
    return {"count": count, "correct": correct, "mismatched": mismatched, "seconds": secs}


def _cmd_demo(args) -> int:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="presil-demo-"))
    _say(f"== presil demo: {MODEL}; results in {out}")
    _say("== [1/2] MLPerf LoadGen: FP32 and int8 golden accuracy, SingleStream and Offline estimates")
    rc = _mlperf(out / "mlperf", args.min_duration)
    if rc != 0:
        _say(f"error: presil mlperf failed (exit {rc})")
        return rc
    _say(f"== [2/2] RTL co-simulation: {args.rtl_samples} held-out digits on {args.device}")
    r = _rtl_subset(args.device, args.rtl_samples)
    print(f"\nRTL ({args.device}): {r['count'] - r['mismatched']}/{r['count']} samples bit-exact with golden; "
          f"int8 top-1 on this subset {r['correct']}/{r['count']} ({100 * r['correct'] / r['count']:.1f}%); "
          f"{r['seconds'] / r['count']:.2f} s per sample in simulation")
    print(f"MLPerf summary and submission tree: {out / 'mlperf' / 'submission'}")
    return 1 if r["mismatched"] else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the end-to-end demo: MLPerf estimates, golden and RTL accuracy",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="output folder (default: a new temporary folder)")
    p.add_argument("--device", default="sim:", help="device for the RTL subset (default sim:)")
    p.add_argument("--rtl-samples", type=int, default=100)
    p.add_argument("--min-duration", type=float, default=3.0, help="LoadGen min duration per test, seconds")
    p.set_defaults(func=_cmd_demo)

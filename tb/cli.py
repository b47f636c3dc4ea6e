"""`presil sim`: run a zoo model (compiled), one of its layers, or a program file
on the RTL (npu_top on Verilator, through the pyuvm environment) and compare
with the golden ISS; prints per program RTL cycles (PERF_BUSY_CYCLES), the
cost model's cycles and the match."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np


def _program_jobs(path: str, samples: int) -> list[dict]:
    from presil.golden.program import Program, TensorRole
    p = Program.load(path)
    jobs = []
    for s in range(samples):
        rng = np.random.default_rng(s)
        inputs = {t.name: rng.integers(-128, 128, t.shape, dtype=np.int8)
                  for t in p.tensors if t.role == TensorRole.INPUT}
        jobs.append({"name": f"{Path(path).stem}#{s}", "program": p, "inputs": inputs, "capture": True})
    return jobs


def _model_jobs(name: str, layer: str | None, samples: int) -> list[dict]:
    from presil.tb.uvm.models import layer_jobs, segment_jobs
    if layer is not None:
        return [j for s in range(samples) for j in layer_jobs(name, sample=s, distinct=False, only=layer)]
    jobs = layer_jobs(name, distinct=False)               # the per-layer table (sample 0)
    for s in range(samples):                              # whole NPU segments, every intermediate compared
        for j in segment_jobs(name, sample=s):
            j["name"] += f" (whole, sample {s})"
            jobs.append(j)
    return jobs


def _cmd_sim(args) -> int:
    from presil.tb.uvm.harness import run_uvm, table
    from presil.tb.uvm.jobs import write_jobs
    target = args.target
    try:
        jobs = (_program_jobs(target, args.samples) if Path(target).is_file()
                else _model_jobs(target, args.layer, args.samples))
    except (KeyError, ValueError) as e:
        print(f"presil sim: {e}", file=sys.stderr)
        return 2
    work = Path(args.workdir or tempfile.mkdtemp(prefix="presil_sim_"))
    print(f"presil sim: {len(jobs)} program(s) on npu_top (work folder {work})", flush=True)
    r = run_uvm("UvmJobs", work / "sim", jobs_dir=write_jobs(work / "jobs", jobs), waves=args.waves,
                tag=f"sim_{Path(target).stem}")
    print(table(r.verdicts))
    for v in r.verdicts:
        if not v["passed"]:
            print(f"\nMISMATCH {v['name']}: {v['message']}")
    if r.waves:
        print(f"\nwaves: {r.waves}")
    if r.failures and not r.verdicts:
        print("\n".join(r.failures), file=sys.stderr)
    return 0 if not r.failures else 1


def register(subparsers) -> None:
    p = subparsers.add_parser("sim", help="run a model, layer or program on the RTL and compare with golden")
    p.add_argument("target", metavar="MODEL|PROGRAM", help="zoo model name (digits, resnet8, ...) or program file")
    p.add_argument("--layer", help="only this layer of the model (its real input from the golden run)")
    p.add_argument("--samples", type=int, default=1, help="input samples (default 1)")
    p.add_argument("--waves", action="store_true", help="FST waveform (separate build; needs liblz4-dev)")
    p.add_argument("--workdir", help="folder for jobs, logs and waves (default: a new temporary folder)")
    p.set_defaults(func=_cmd_sim)

"""Job folders: how a pytest wrapper or `presil sim` hands programs to the cocotb
test running inside the simulator, and how the verdicts come back.

    <dir>/jobs.json       [{name, program, inputs, capture, mem, meta}, ...]
    <dir>/<i>.prog        the Program (presil.golden.program format)
    <dir>/<i>.npz         its input tensors (int8 NHWC), by descriptor name
    <dir>/results.json    written by the simulation: one verdict per job
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from presil.golden.program import Program

JOBS_ENV = "PRESIL_UVM_JOBS"


def write_jobs(directory, jobs: list[dict]) -> Path:
    """jobs: dicts with name, program (Program), inputs ({desc name: int8 array}),
    and optional capture (bool), mem (MemConfig fields), meta (JSON-able)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    table = []
    for i, j in enumerate(jobs):
        j["program"].save(d / f"{i}.prog")
        np.savez(d / f"{i}.npz", **{k: np.asarray(v, np.int8) for k, v in (j.get("inputs") or {}).items()})
        table.append({"name": j["name"], "program": f"{i}.prog", "inputs": f"{i}.npz",
                      "capture": bool(j.get("capture", True)), "mem": j.get("mem") or {}, "meta": j.get("meta") or {}})
    (d / "jobs.json").write_text(json.dumps(table, indent=1))
    return d


def read_jobs(directory) -> list[dict]:
    d = Path(directory)
    out = []
    for j in json.loads((d / "jobs.json").read_text()):
        with np.load(d / j["inputs"]) as z:
            inputs = {k: z[k] for k in z.files}
        out.append({**j, "program": Program.load(d / j["program"]), "inputs": inputs})
    return out


def write_results(directory, verdicts) -> Path:
    p = Path(directory) / "results.json"
    p.write_text(json.dumps([asdict(v) for v in verdicts], indent=1, default=int))
    return p


def read_results(directory) -> list[dict]:
    p = Path(directory) / "results.json"
    return json.loads(p.read_text()) if p.is_file() else []

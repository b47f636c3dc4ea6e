"""The MLPerf submission tree, the system description and the summary table.

    <out>/<division>/<submitter>/
      systems/<system>.json                        (the 35 required fields)
      results/<system>/<benchmark>/<scenario>/
          performance/run_1/mlperf_log_{summary,detail}.txt
          accuracy/{accuracy.txt, mlperf_log_accuracy.json, mlperf_log_{detail,summary}.txt}
          measurements.json  user.conf  README.md
      compliance/<system>/<benchmark>/<scenario>/TEST01|TEST04/   (--compliance)
          verify_performance.txt  performance/run_1/…  (TEST01: verify_accuracy.txt, accuracy/)
      summary.md  summary.json                     (presil's table across scenarios)

A simulated or estimated system is status "rdi" and its results are
"unverified" (MLCommons has not reviewed them). MLPerf has no rule for
simulated results, so every row that comes from the timing model is labelled
ESTIMATE with its assumptions (clock, array, PCIe link) and is never called
an MLPerf result.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

MAX_ACCURACY_LOG = 10 * 1024  # MLPerf truncates accuracy logs above 10 KiB ...
VIEWABLE = 4 * 1024  # ... to their first and last 4 KiB

SYSTEM_FIELDS = (
    "division", "submitter", "status", "system_name", "number_of_nodes", "host_processor_model_name",
    "host_processors_per_node", "host_processor_core_count", "host_memory_capacity", "host_storage_capacity",
    "host_storage_type", "accelerators_per_node", "accelerator_model_name", "accelerator_memory_capacity",
    "framework", "operating_system", "system_type", "other_software_stack", "host_processor_frequency",
    "host_processor_caches", "host_memory_configuration", "host_processor_interconnect", "host_networking",
    "host_networking_topology", "accelerator_frequency", "accelerator_host_interconnect",
    "accelerator_interconnect", "accelerator_interconnect_topology", "accelerator_memory_configuration",
    "accelerator_on-chip_memories", "cooling", "hw_notes", "sw_notes", "host_network_card_count",
    "system_type_detail",
)
MEASUREMENT_FIELDS = ("input_data_types", "retraining", "starting_weights_filename", "weight_data_types",
                      "weight_transformations")
ACCURACY_FILES = ("accuracy.txt", "mlperf_log_accuracy.json", "mlperf_log_detail.txt", "mlperf_log_summary.txt")
PERFORMANCE_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")


def _host_facts() -> dict:
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GB"
    except (OSError, ValueError, IndexError):
        pass
    return {"host_processor_model_name": cpu, "host_processor_core_count": os.cpu_count() or 1,
            "host_memory_capacity": mem, "operating_system": f"{platform.system()} {platform.release()}"}


def system_description(system_name: str, *, platform: str, submitter: str = "presil",
                       division: str = "open", timing: dict | None = None, overrides: dict | None = None) -> dict:
    """The 35 fields, from defaults + host facts + the estimate's assumptions
    + the user's overrides (a dict, e.g. from --system-json)."""
    from presil import __version__

    sim = platform in ("estimate", "golden-model", "rtl-sim")
    d = {k: "N/A" for k in SYSTEM_FIELDS}
    d.update(division=division, submitter=submitter, system_name=system_name,
             status="rdi" if sim or platform == "fpga" else "available",
             number_of_nodes=1, host_processors_per_node=1, host_storage_capacity="N/A",
             host_storage_type="N/A", accelerators_per_node=1 if platform != "host" else 0,
             accelerator_model_name="presil reference NPU", framework=f"presil {__version__}",
             system_type="edge", other_software_stack="mlcommons-loadgen (Python bindings), onnxruntime, numpy",
             host_network_card_count=0, host_networking="N/A", host_networking_topology="N/A",
             accelerator_interconnect="N/A", accelerator_interconnect_topology="N/A", cooling="N/A",
             sw_notes="presil compiler: static int8 quantisation (onnxruntime), BN folding, presil ISA programs")
    d.update(_host_facts())
    if platform != "host":
        d["accelerator_on-chip_memories"] = "ACT 256 KiB, WGT 128 KiB, PAR 96 KiB, ACC 256 KiB (isa.toml defaults)"
    if platform == "estimate" and timing:
        link = timing.get("link", {})
        clk = timing.get("clock_hz", 0) / 1e9
        pcie = f"PCIe Gen{link.get('generation')} x{link.get('lanes')}"
        d.update(
            accelerator_frequency=f"{clk:g} GHz (assumed)",
            accelerator_host_interconnect=f"{pcie} (modelled, efficiency {link.get('efficiency')})",
            accelerator_memory_configuration="modelled: device DDR, not simulated",
            system_type_detail=(f"pre-silicon ESTIMATE: timing model of the presil NPU, array {timing.get('array')}, "
                                f"{clk:g} GHz, {pcie}; not a measured system"),
            hw_notes=(f"ESTIMATE, not a measurement and not an MLPerf result. Device time = "
                      f"{timing.get('cycles_source')} cycles ({timing.get('cycles')}/sample) at {clk:g} GHz, "
                      f"array {timing.get('array')}; transfers over {pcie} at "
                      f"{link.get('efficiency')} efficiency + {link.get('latency_s', 0) * 1e6:g} us/transfer; "
                      f"host overhead {timing.get('host_overhead_s', 0) * 1e6:.1f} us/sample; DMA overlap "
                      f"{'on' if timing.get('dma_overlap') else 'off'}"),
        )
    elif platform in ("golden-model", "rtl-sim"):
        d.update(system_type_detail=f"simulated ({platform}); no wall-clock performance meaning",
                 hw_notes=f"results computed on the {platform}; timing is the simulator's, not the NPU's")
    elif platform == "fpga":
        d.update(system_type_detail="FPGA prototype of the presil NPU, measured in real time on the board")
    elif platform == "host":
        d.update(accelerator_model_name="N/A", system_type_detail="host CPU reference (onnxruntime FP32)")
    d.update(overrides or {})
    missing = [k for k in SYSTEM_FIELDS if k not in d]
    if missing:
        raise ValueError(f"system description lacks {missing}")
    return d


def measurements(model: str, backend: str) -> dict:
    fp32 = backend == "onnx"
    return {
        "input_data_types": "fp32" if fp32 else "int8",
        "retraining": "no",
        "starting_weights_filename": f"{model} (presil.host.zoo; FP32 ONNX)",
        "weight_data_types": "fp32" if fp32 else "int8",
        "weight_transformations": "none" if fp32 else
        "BatchNorm folding; static int8 quantisation (per-channel symmetric weights, asymmetric activations, "
        "onnxruntime MinMax calibration)",
    }


def copy_accuracy_log(src: Path, dst: Path) -> None:
    """As MLPerf's truncate_accuracy_log: logs above 10 KiB keep their first
    and last 4 KiB (the full log's hash is in accuracy.txt)."""
    data = src.read_bytes()
    if len(data) > MAX_ACCURACY_LOG:
        data = data[:VIEWABLE] + b"\n\n...\n\n" + data[-VIEWABLE:]
    dst.write_bytes(data)


def result_dir(root, division: str, submitter: str, system: str, benchmark: str, scenario: str) -> Path:
    return Path(root) / division / submitter / "results" / system / benchmark / scenario


def write_scenario(root, *, division: str, submitter: str, system: str, benchmark: str, scenario: str,
                   model: str, backend: str, perf_dir=None, acc_dir=None, user_conf=None,
                   readme_extra: str = "", command: str = "") -> Path:
    """Copy one scenario's LoadGen logs into the tree; returns its folder."""
    d = result_dir(root, division, submitter, system, benchmark, scenario)
    d.mkdir(parents=True, exist_ok=True)
    if perf_dir:
        run1 = d / "performance" / "run_1"
        run1.mkdir(parents=True, exist_ok=True)
        for f in PERFORMANCE_FILES:
            shutil.copyfile(Path(perf_dir) / f, run1 / f)
    if acc_dir:
        acc = d / "accuracy"
        acc.mkdir(parents=True, exist_ok=True)
        for f in ACCURACY_FILES:
            src = Path(acc_dir) / f
            if f == "mlperf_log_accuracy.json":
                copy_accuracy_log(src, acc / f)
            elif src.is_file():
                shutil.copyfile(src, acc / f)
    (d / "measurements.json").write_text(json.dumps(measurements(model, backend), indent=1) + "\n")
    if user_conf and Path(user_conf).is_file():
        shutil.copyfile(user_conf, d / "user.conf")
    else:
        (d / "user.conf").write_text("# no user.conf: LoadGen defaults + mlperf.conf + presil's settings\n")
    (d / "README.md").write_text(
        f"# {benchmark} {scenario} on {system}\n\n"
        f"Produced by `presil mlperf` (presil.host.mlperf); status rdi, results **unverified** "
        f"(not reviewed by MLCommons).\n\n{readme_extra}\n\nReproduce:\n\n```\n{command}\n```\n")
    return d


def compliance_dir(root, division: str, submitter: str, system: str, benchmark: str, scenario: str) -> Path:
    return Path(root) / division / submitter / "compliance" / system / benchmark / scenario


def write_system(root, division: str, submitter: str, desc: dict) -> Path:
    p = Path(root) / division / submitter / "systems" / f"{desc['system_name']}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(desc, indent=1) + "\n")
    return p


# --------------------------------------------------------------------------
# the summary table
# --------------------------------------------------------------------------

def summary_row(res, *, benchmark: str, system: str, accuracy: dict | None = None,
                compliance: dict | None = None) -> dict:
    """One row from a performance RunResult (run.RunResult)."""
    from .run import METRIC_UNITS

    info = res.run.get("info", {})
    platform = res.platform
    label = {"estimate": "ESTIMATE", "golden-model": "SIMULATED (golden model)", "rtl-sim": "SIMULATED (RTL)",
             "fpga": "MEASURED (FPGA prototype)", "host": "MEASURED (host)"}.get(platform, platform)
    return {
        "benchmark": benchmark, "scenario": res.scenario, "system": system, "label": label,
        "metric": res.metric_key, "value": res.metric, "units": METRIC_UNITS[res.scenario],
        "validity": res.validity, "explanation": res.explanation, "status": "rdi", "unverified": True,
        "stretch": res.stretch, "assumptions": info.get("assumptions", ""),
        "latency_ms": {k: res.latencies_ms[k] for k in ("p50", "p90", "p99", "query_p99") if k in res.latencies_ms},
        "accuracy": accuracy,
        "compliance": compliance or {},   # test -> PASS / FAIL
        "note": (f"at target_qps {float(res.detail.get('effective_target_qps', 0)) * res.stretch:,.0f} "
                 "(modelled); LoadGen checks that load, it does not search for the peak")
        if res.scenario == "Server" else "",
    }


def load_reference_rows(path) -> list[dict]:
    """Published results the user supplies (CSV or JSON list) with columns
    system, benchmark, scenario, value, units[, status, source]. They are
    shown for comparison only, never as presil's."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        rows = json.loads(p.read_text())
    else:
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        missing = [k for k in ("system", "benchmark", "scenario", "value") if k not in r]
        if missing:
            raise ValueError(f"{p}: reference row {r} lacks {missing}")
        out.append(dict(r, value=float(str(r["value"]).replace(",", ""))))
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.1f}" if v >= 100 else f"{v:.4g}"


def summary_markdown(rows: list[dict], references: list[dict] | None = None) -> str:
    lines = ["# presil mlperf summary", "",
             "Status rdi; every result is **unverified** (not reviewed by MLCommons). Rows labelled ESTIMATE "
             "come from the pre-silicon timing model, not from a measurement, and are not MLPerf results.", "",
             "| benchmark | scenario | label | metric | value | units | validity | accuracy | compliance |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = r.get("accuracy") or {}
        acc_s = acc.get("line", "") if acc else ""
        val = r["validity"] + (f" ({r['explanation']})" if r.get("explanation") else "")
        if r.get("note"):
            val += f"; {r['note']}"
        comp = ", ".join(f"{t} {v}" for t, v in (r.get("compliance") or {}).items()) or "not run"
        lines.append(f"| {r['benchmark']} | {r['scenario']} | {r['label']} | {r['metric']} | {_fmt(r['value'])} | "
                     f"{r['units']} | {val} | {acc_s} | {comp} |")
    assumptions = sorted({r["assumptions"] for r in rows if r.get("assumptions")})
    if assumptions:
        lines += ["", "## ESTIMATE assumptions", ""] + [f"- {a}" for a in assumptions]
        stretches = sorted({r["stretch"] for r in rows if r.get("stretch", 1) != 1})
        if stretches:
            lines.append(f"- emulated on the wall clock stretched x{', x'.join(f'{s:g}' for s in stretches)}; "
                         "reported times divided (rates multiplied) by the factor")
    if references:
        lines += ["", "## Published results for comparison (supplied by the user; not presil's)", "",
                  "| system | benchmark | scenario | value | units | status | source | presil / reference |",
                  "|---|---|---|---|---|---|---|---|"]
        ours = {(r["benchmark"], r["scenario"]): r for r in rows}
        for ref in references:
            mine = ours.get((ref["benchmark"], ref["scenario"]))
            ratio = "-"
            if mine and mine["value"]:
                ratio = f"{mine['value'] / ref['value']:.3g}x ({mine['label']})"
            lines.append(f"| {ref['system']} | {ref['benchmark']} | {ref['scenario']} | {_fmt(ref['value'])} | "
                         f"{ref.get('units', '')} | {ref.get('status', '')} | {ref.get('source', '')} | {ratio} |")
    return "\n".join(lines) + "\n"


def write_summary(root, division: str, submitter: str, rows: list[dict], references=None) -> tuple[Path, Path]:
    base = Path(root) / division / submitter
    base.mkdir(parents=True, exist_ok=True)
    md = base / "summary.md"
    js = base / "summary.json"
    md.write_text(summary_markdown(rows, references))
    js.write_text(json.dumps({"rows": rows, "references": references or [],
                              "note": "status rdi, unverified; ESTIMATE rows are modelled, not measured"},
                             indent=1, default=str) + "\n")
    return md, js


def check_tree(root, division: str, submitter: str) -> list[str]:
    """Problems with a tree (empty list = complete): every required file and field."""
    problems = []
    base = Path(root) / division / submitter
    systems = list((base / "systems").glob("*.json"))
    if not systems:
        problems.append("no systems/<system>.json")
    for s in systems:
        d = json.loads(s.read_text())
        problems += [f"{s.name}: missing field {k}" for k in SYSTEM_FIELDS if k not in d]
    for sc in (base / "results").glob("*/*/*"):
        if not sc.is_dir():
            continue
        for f in ("measurements.json", "user.conf", "README.md"):
            if not (sc / f).is_file():
                problems.append(f"{sc}: missing {f}")
        if (sc / "measurements.json").is_file():
            m = json.loads((sc / "measurements.json").read_text())
            problems += [f"{sc}/measurements.json: missing {k}" for k in MEASUREMENT_FIELDS if k not in m]
        for f in PERFORMANCE_FILES:
            if not (sc / "performance" / "run_1" / f).is_file():
                problems.append(f"{sc}: missing performance/run_1/{f}")
        for f in ACCURACY_FILES:
            if not (sc / "accuracy" / f).is_file():
                problems.append(f"{sc}: missing accuracy/{f}")
        acc = sc / "accuracy" / "accuracy.txt"
        if acc.is_file() and "hash=" not in acc.read_text():
            problems.append(f"{acc}: no hash= line")
    for t in (base / "compliance").glob("*/*/*/TEST*"):
        need = ["verify_performance.txt"] + [f"performance/run_1/{f}" for f in PERFORMANCE_FILES]
        if t.name == "TEST01":
            need += ["verify_accuracy.txt", "accuracy/mlperf_log_accuracy.json"]
        problems += [f"{t}: missing {f}" for f in need if not (t / f).is_file()]
    return problems

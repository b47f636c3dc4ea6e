"""`presil mlperf`: LoadGen tests, accuracy, the submission tree and the summary.

    presil mlperf --model digits_cnn --scenario SingleStream,Offline --mode both \\
                  --device estimate --out runs/ --min-duration 5 \\
                  [--target-clock-hz 1e9] [--array 16x16] [--pcie gen3x8]

--device: estimate (pre-silicon timing model), golden: (or another device URI
the bundle runtime knows), onnx (FP32 onnxruntime), null (harness overhead).
Each test runs in its own process (run.py); logs go to OUT/runs/<scenario>/
<mode>/, the tree to OUT/submission/.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

SCENARIOS = ("SingleStream", "MultiStream", "Offline", "Server")


def register(subparsers) -> None:
    p = subparsers.add_parser("mlperf", help="run MLPerf LoadGen tests (real LoadGen) and build a submission tree",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo model name or .onnx path")
    p.add_argument("--scenario", default="SingleStream",
                   help="SingleStream|MultiStream|Offline|Server, a comma list, or 'all'")
    p.add_argument("--mode", default="performance", choices=("performance", "accuracy", "both"))
    p.add_argument("--device", default="estimate",
                   help="estimate | golden: | <device URI> | onnx | null (default estimate)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--user-conf", type=Path, help="LoadGen user.conf")
    p.add_argument("--dataset", help="digits|synthetic|imagenet|cifar10|speech_commands|vww|coco "
                                     "(default: the model's own)")
    p.add_argument("--dataset-path", type=Path)
    p.add_argument("--count", type=int, help="use the first N samples of the dataset")
    p.add_argument("--min-duration", type=float, help="LoadGen min_duration in wall-clock seconds")
    p.add_argument("--min-query-count", type=int)
    p.add_argument("--server-target-qps", type=float, help="modelled queries/s (default: half the modelled capacity)")
    p.add_argument("--setting", action="append", default=[], metavar="FIELD=VALUE",
                   help="any TestSettings field (latencies/rates in modelled units)")
    p.add_argument("--compliance", default="", metavar="TEST01,TEST04",
                   help="also run these MLPerf compliance tests after each scenario's performance run and "
                        "verify them (TEST01 needs --mode both); exit 1 if one fails")
    e = p.add_argument_group("estimate (--device estimate)")
    e.add_argument("--target-clock-hz", type=float, default=1e9)
    e.add_argument("--array", default="16x16")
    e.add_argument("--pcie", default="gen3x8")
    e.add_argument("--pcie-efficiency", type=float)
    e.add_argument("--transfer-latency-us", type=float)
    e.add_argument("--launch-us", type=float)
    e.add_argument("--host-overhead-us", type=float, help="default: measured harness round trip")
    e.add_argument("--cycles-source", choices=("model", "rtl"), default="model")
    e.add_argument("--rtl-cycles", help="measured RTL cycles per sample: N or a JSON file "
                                        "(default with --cycles-source rtl: measure on --rtl-device)")
    e.add_argument("--rtl-device", default="sim:",
                   help="device whose BUSY_CYCLES counter gives the cycles for --cycles-source rtl (default sim:)")
    e.add_argument("--no-dma-overlap", action="store_true")
    e.add_argument("--stretch", default="auto", help="time-stretch factor K, or 'auto'")
    s = p.add_argument_group("submission")
    s.add_argument("--division", default="open")
    s.add_argument("--submitter", default="presil")
    s.add_argument("--system", help="system name (default derived from device and assumptions)")
    s.add_argument("--system-json", type=Path, help="JSON with system-description fields to override")
    s.add_argument("--reference", type=Path, help="CSV/JSON of published results to compare with")
    s.add_argument("--no-fp32-baseline", action="store_true", help="skip the FP32 onnxruntime accuracy run")
    p.set_defaults(func=main)


def _backend(device: str) -> tuple[str, str]:
    d = device.strip()
    if d in ("estimate", "onnx", "null"):
        return d, "golden:"
    if d in ("fp32", "onnxruntime"):
        return "onnx", "golden:"
    if d.rstrip(":") == "golden":
        return "golden", "golden:"
    return "device", d


def _settings(a) -> dict:
    s = {}
    if a.min_duration is not None:
        s["min_duration_ms"] = int(a.min_duration * 1000)
    if a.min_query_count is not None:
        s["min_query_count"] = a.min_query_count
    if a.server_target_qps is not None:
        s["server_target_qps"] = a.server_target_qps
    for kv in a.setting:
        k, _, v = kv.partition("=")
        s[k.strip()] = float(v) if any(c in v for c in ".e") else int(v)
    return s


def _estimate(a) -> dict:
    return {"clock_hz": a.target_clock_hz, "array": a.array, "pcie": a.pcie, "pcie_efficiency": a.pcie_efficiency,
            "transfer_latency_us": a.transfer_latency_us, "launch_us": a.launch_us,
            "host_overhead_us": a.host_overhead_us, "cycles_source": a.cycles_source, "rtl_cycles": a.rtl_cycles,
            "rtl_device": a.rtl_device,
            "dma_overlap": not a.no_dma_overlap,
            "stretch": a.stretch if a.stretch == "auto" else float(a.stretch)}


def main(a) -> int:
    from . import accuracy, compliance, submission
    from .datasets import MODEL_DATASETS, DatasetError, open_dataset
    from .run import RunError, make_spec, mlperf_benchmark_name, run_test

    scenarios = list(SCENARIOS) if a.scenario == "all" else [s.strip() for s in a.scenario.split(",")]
    bad = [s for s in scenarios if s not in SCENARIOS]
    if bad:
        print(f"error: unknown scenario(s) {bad}; choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    modes = ["performance", "accuracy"] if a.mode == "both" else [a.mode]
    tests = [t.strip().upper() for t in a.compliance.split(",") if t.strip()]
    problem = _compliance_problem(tests, modes)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    backend, device = _backend(a.device)
    stem = Path(a.model).stem
    dataset = a.dataset or MODEL_DATASETS.get(stem, "synthetic")
    benchmark = mlperf_benchmark_name(a.model)
    out = a.out.resolve()
    est = _estimate(a)
    if backend == "estimate" and est["host_overhead_us"] is None:
        # Measured once here, so every scenario of this run uses the same figure.
        from .sut import measure_dispatch_overhead

        est["host_overhead_us"] = round(measure_dispatch_overhead(1000) * 1e6, 2)
        print(f"== host overhead (harness round trip, measured): {est['host_overhead_us']} us/sample",
              file=sys.stderr)
    common = dict(backend=backend, device=device, dataset=dataset, dataset_path=a.dataset_path, count=a.count,
                  user_conf=a.user_conf, settings=_settings(a), estimate=est,
                  cache_dir=out / "cache")
    command = "presil " + " ".join(shlex.quote(x) for x in sys.argv[1:]) if sys.argv[1:2] == ["mlperf"] else \
        "presil mlperf " + " ".join(shlex.quote(x) for x in sys.argv[1:])

    try:
        ds = open_dataset(dataset, path=a.dataset_path, count=a.count, input_shape=None if dataset != "synthetic"
                          else _input_shape(a.model))
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    fp32 = None
    if "accuracy" in modes and not a.no_fp32_baseline and backend != "onnx" and ds.name != "synthetic":
        print(f"== FP32 baseline: {a.model} in onnxruntime, accuracy mode", file=sys.stderr)
        spec = make_spec(a.model, "SingleStream", "accuracy", out / "runs" / "fp32" / "accuracy",
                         **dict(common, backend="onnx"))
        try:
            run_test(spec)
            fp32 = accuracy.score(Path(spec["out"]) / "mlperf_log_accuracy.json", ds.labels, ds.task,
                                  classes=ds.classes)
            accuracy.write_accuracy_txt(fp32, Path(spec["out"]) / "accuracy.txt")
            print(f"   FP32: {fp32.line}", file=sys.stderr)
        except (RunError, accuracy.AccuracyError) as exc:
            print(f"warning: FP32 baseline failed: {exc}", file=sys.stderr)

    rows, platform, timing, perf_results = [], None, None, {}
    failed_compliance = []
    system = a.system
    for sc in scenarios:
        dirs = {}
        acc_res = None
        for mode in modes:
            d = out / "runs" / sc / mode
            print(f"== {benchmark} {sc} {mode} on {a.device}", file=sys.stderr)
            spec = make_spec(a.model, sc, mode, d, **common)
            try:
                res = run_test(spec)
            except RunError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            dirs[mode] = d
            platform = res.platform
            timing = res.run.get("info", {}).get("timing") or timing
            if mode == "performance":
                perf_results[sc] = res
                unit = "ms" if "latency" in res.metric_key else "samples/s"
                print(f"   {res.metric_key} = {res.metric if res.metric is not None else '-'} {unit} "
                      f"[{res.validity}{' ' + res.explanation if res.explanation else ''}]"
                      f"{' ESTIMATE (x%g stretch)' % res.stretch if platform == 'estimate' else ''}",
                      file=sys.stderr)
            else:
                try:
                    r = accuracy.score(d / "mlperf_log_accuracy.json", ds.labels, ds.task, classes=ds.classes)
                except accuracy.AccuracyError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                target = accuracy.check_target(r.value, fp32.value) if fp32 is not None else None
                accuracy.write_accuracy_txt(r, d / "accuracy.txt", target=target)
                acc_res = dict(r.to_dict(), target=target)
                print(f"   {r.line}" + (f"; {target['line']}" if target else ""), file=sys.stderr)
        system = system or _system_name(platform, timing, a)
        verdicts = {}
        for test in tests:
            d = out / "runs" / sc / "compliance" / test
            print(f"== {benchmark} {sc} compliance {test} on {a.device}", file=sys.stderr)
            try:
                res = run_test(make_spec(a.model, sc, "performance", d, compliance=test, **common))
                v = compliance.verify(test, res, perf_results[sc], dirs.get("accuracy"))
            except (RunError, compliance.ComplianceError) as exc:
                print(f"error: {test}: {exc}", file=sys.stderr)
                return 1
            compliance.write_tree(submission.compliance_dir(out / "submission", a.division, a.submitter, system,
                                                            benchmark, sc), v, res, submission.copy_accuracy_log)
            verdicts[test] = "PASS" if v.passed else "FAIL"
            if not v.passed:
                failed_compliance.append(f"{sc} {test}")
            print("   " + v.text.strip().replace("\n", "\n   "), file=sys.stderr)
        submission.write_scenario(out / "submission", division=a.division, submitter=a.submitter, system=system,
                                  benchmark=benchmark, scenario=sc, model=stem, backend=backend,
                                  perf_dir=dirs.get("performance"), acc_dir=dirs.get("accuracy"),
                                  user_conf=a.user_conf, command=command,
                                  readme_extra=_readme_extra(platform, timing, perf_results.get(sc)))
        if sc in perf_results:
            rows.append(submission.summary_row(perf_results[sc], benchmark=benchmark, system=system,
                                               accuracy=acc_res, compliance=verdicts))
        elif acc_res:
            rows.append({"benchmark": benchmark, "scenario": sc, "system": system, "label": "accuracy only",
                         "metric": acc_res["metric"], "value": acc_res["value"], "units": "", "validity": "",
                         "explanation": "", "accuracy": acc_res, "assumptions": "", "stretch": 1.0})
    overrides = json.loads(a.system_json.read_text()) if a.system_json else None
    desc = submission.system_description(system, platform=platform or "host", submitter=a.submitter,
                                         division=a.division, timing=timing, overrides=overrides)
    submission.write_system(out / "submission", a.division, a.submitter, desc)
    refs = submission.load_reference_rows(a.reference) if a.reference else None
    md, js = submission.write_summary(out / "submission", a.division, a.submitter, rows, refs)
    print(md.read_text())
    print(f"submission tree: {out / 'submission'}; summary: {md}, {js}", file=sys.stderr)
    if failed_compliance:
        print(f"error: compliance test(s) failed: {', '.join(failed_compliance)} (see verify_*.txt in the "
              "tree's compliance/ folder)", file=sys.stderr)
        return 1
    return 0


def _compliance_problem(tests: list[str], modes: list[str]) -> str:
    from .compliance import TESTS

    unknown = [t for t in tests if t not in TESTS]
    if unknown:
        return f"unknown compliance test(s) {unknown}; presil runs {', '.join(TESTS)}"
    if tests and "performance" not in modes:
        return "compliance tests are compared with the performance run: use --mode performance or both"
    if "TEST01" in tests and "accuracy" not in modes:
        return "TEST01 compares with the accuracy-mode run: use --mode both"
    return ""


def _input_shape(model: str):
    from .models import resolve_model

    return resolve_model(model).input_shape


def _system_name(platform: str | None, timing: dict | None, a) -> str:
    if platform == "estimate" and timing:
        link = timing["link"]
        return (f"presil-npu-{timing['array']}-{timing['clock_hz'] / 1e9:g}GHz-"
                f"pcie{link['generation']}x{link['lanes']}-ESTIMATE")
    return f"presil-{(platform or 'host').replace(' ', '-')}"


def _readme_extra(platform, timing, res) -> str:
    if platform != "estimate" or not timing:
        return f"Platform: {platform}."
    k = res.stretch if res else 1.0
    return ("**ESTIMATE** from the presil timing model, not a measurement and not an MLPerf result.\n\n"
            f"Assumptions: {res.run['info'].get('assumptions') if res else ''}.\n\n"
            f"LoadGen ran on a wall clock stretched x{k:g} (each modelled duration lasted K times longer); the "
            "logs here are in stretched time: divide their latencies (and multiply their rates) by K to get "
            "the modelled figures in summary.md.")

"""Compiler / golden-model benchmark (not a timed test).

    python benchmarks/compiler_bench.py [--models resnet8,dscnn] [--repeat 5] [--threads N] [--skip-resnet50]

Prints:
1. compile time per zoo model (quantisation in onnxruntime, then IR + lowering);
2. for the quantised ResNet-50 v1.5: time of the golden reference ops on the
   IR (run_ir), of the golden ISS on the compiled program (with and without the
   race checker) and of onnxruntime on the same QDQ model; goal: golden within
   3x of onnxruntime on this machine.  Times are medians of --repeat runs
   (the machine is shared: medians, not minima); --threads caps the BLAS
   threads (threadpoolctl) and onnxruntime's intra-op threads alike;
3. cost-model MAC utilisation per ResNet-50 conv layer: ideal cycles
   MACs / (ROWS*COLS) against the ISS's cycles for that layer, and per group
   (stem, 1x1, 3x3) with the weighted total over the conv layers.
   `--utilisation-only` skips 1-2; `--compare-plain-stem` adds the groups with
   the stem lowered without space-to-depth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _median(fn, repeat: int) -> float:
    ts = []
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _table(rows: list[tuple]) -> str:
    w = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i]) for i, c in enumerate(r)) for r in rows]
    out.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(out)


def compile_times(models: list[str]):
    from presil.host import zoo
    from presil.host.compiler import quantize, zoodata
    from presil.host.compiler.bundle import compile_model
    rows = [("model", "MACs", "quantise s", "IR+lower s", "instructions", "NPU cycles")]
    keep = {}
    for name in models:
        calib, _ = zoodata.calibration(name)
        m = zoo.build(name)
        t = time.perf_counter()
        qdq = quantize(m, calib)
        tq = time.perf_counter() - t
        t = time.perf_counter()
        b = compile_model(None, None, qdq=qdq, name=name)
        tl = time.perf_counter() - t
        x = np.random.default_rng(0).standard_normal(zoo.info(name).input_shape).astype(np.float32)
        b.run(x, check_races=False)
        rows.append((name, f"{b.manifest['macs']:,}", f"{tq:.2f}", f"{tl:.2f}",
                     sum(len(p.instructions) for p in b.programs.values()), f"{b.last_run['total_cycles']:,}"))
        keep[name] = b
    return rows, keep


def resnet50(b, repeat: int, threads: int | None = None):
    import onnxruntime as ort
    from presil.host import zoo
    from presil.host.compiler.reference import run_ir
    g = b.graph
    info = zoo.info("resnet50_v1_5")
    x = np.random.default_rng(0).standard_normal(info.input_shape).astype(np.float32)
    feeds = {info.input_name: x}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    qin = g.quantize_inputs(feeds)
    # Golden first, each warmed up once (first-touch page faults, BLAS threads, the ISS's
    # decode/schedule memo): onnxruntime's intra-op threads spin after each run and
    # would steal the cores from the BLAS calls timed right after them.
    run_ir(g, qin)
    t_ref = _median(lambda: run_ir(g, qin), repeat)
    b.run(x, check_races=False)
    t_iss = _median(lambda: b.run(x, check_races=False), repeat)
    b.run(x, check_races=True)  # builds the race checker's per-instruction word index once
    t_iss_rc = _median(lambda: b.run(x, check_races=True), max(1, repeat // 2))
    sess = ort.InferenceSession(b.qdq.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    t_ort = _median(lambda: sess.run(None, feeds), repeat)
    rows = [("engine (quantised ResNet-50 v1.5, batch 1)", "median s", "x onnxruntime"),
            ("onnxruntime (QDQ model, CPU EP)", f"{t_ort:.3f}", "1.00"),
            ("golden reference ops on the IR (run_ir)", f"{t_ref:.3f}", f"{t_ref / t_ort:.2f}"),
            ("golden ISS, compiled program", f"{t_iss:.3f}", f"{t_iss / t_ort:.2f}"),
            ("golden ISS + race checker", f"{t_iss_rc:.3f}", f"{t_iss_rc / t_ort:.2f}")]
    return rows


def _group(g, name: str) -> str:
    """Conv layer group for the summary: the stem (input channels < ROWS), else k_h x k_w."""
    from presil.host.compiler import ir
    n = next((x for x in g.nodes if x.name == name.rstrip("'")), None)
    if not isinstance(n, ir.Conv):
        return "other"
    kh, kw = n.kernel
    return "stem" if g.tensors[n.inputs[0]].shape[3] < 16 else f"{kh}x{kw}"


def utilisation(b):
    """Per conv layer of the first NPU program: ideal MAC cycles vs ISS layer cycles.
    Layer spans never overlap (a next layer's prefetched constants count in the
    layer they overlap), so the weighted figure is sum(ideal) / sum(cycles)."""
    rows_ = [("layer", "op", "MACs", "ideal cycles", "ISS cycles", "util %")]
    x = np.random.default_rng(0).standard_normal(b.manifest["inputs"][0]["shape"]).astype(np.float32)
    b.run(x, check_races=False)
    lc = b.last_run["layer_cycles"]
    tot_ideal = tot = 0
    groups: dict[str, list] = {}
    for p in b.programs.values():
        R, C = p.rows, p.cols
        for name, op in p.meta["layer_ops"].items():
            macs = p.meta["layer_macs"][name]
            ideal = macs / (R * C)
            cyc = lc[name]
            tot += cyc
            if op in ("Conv", "FullyConnected"):
                tot_ideal += ideal
                rows_.append((name, op, f"{macs:,}", f"{ideal:,.0f}", f"{cyc:,}", f"{100 * ideal / cyc:.1f}"))
                if op == "Conv" and b.graph is not None:
                    gr = groups.setdefault(_group(b.graph, name), [0, 0.0, 0])
                    gr[0] += 1
                    gr[1] += ideal
                    gr[2] += cyc
    rows_.append(("all layers (incl. add/pool)", "", "", f"{tot_ideal:,.0f}", f"{tot:,}",
                  f"{100 * tot_ideal / tot:.1f}"))
    conv_cyc = sum(v[2] for v in groups.values())
    summary = [("conv group", "layers", "ideal cycles", "ISS cycles", "% of conv cycles", "util %")]
    for k in sorted(groups, key=lambda k: (k != "stem", k)):
        n_, i_, c_ = groups[k]
        summary.append((k, n_, f"{i_:,.0f}", f"{c_:,}", f"{100 * c_ / conv_cyc:.1f}", f"{100 * i_ / c_:.1f}"))
    if groups:
        ii = sum(v[1] for v in groups.values())
        summary.append(("all conv (weighted)", sum(v[0] for v in groups.values()), f"{ii:,.0f}",
                        f"{conv_cyc:,}", "100.0", f"{100 * ii / conv_cyc:.1f}"))
    return rows_, b.last_run["total_cycles"], tot_ideal, summary


def main(argv=None) -> int:
    from presil.host import zoo
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo.model_names()))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="BLAS and onnxruntime threads (default: theirs)")
    ap.add_argument("--skip-resnet50", action="store_true")
    ap.add_argument("--utilisation-only", action="store_true",
                    help="ResNet-50 cost-model utilisation only (no zoo compile-time or onnxruntime timing)")
    ap.add_argument("--compare-plain-stem", action="store_true",
                    help="also lower the stem without space-to-depth (NpuConfig(space_to_depth=False))")
    a = ap.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    if a.utilisation_only:
        models, a.skip_resnet50 = ["resnet50_v1_5"], False
    if not a.skip_resnet50 and "resnet50_v1_5" not in models:
        models.append("resnet50_v1_5")
    rows, bundles = compile_times(models)
    print("Compile time per zoo model\n" + _table(rows) + "\n")
    if not a.skip_resnet50:
        b = bundles["resnet50_v1_5"]
        if not a.utilisation_only:
            if a.threads:
                from threadpoolctl import threadpool_limits
                with threadpool_limits(limits=a.threads):
                    tab = resnet50(b, a.repeat, a.threads)
            else:
                tab = resnet50(b, a.repeat)
            print("Golden vs onnxruntime\n" + _table(tab) + "\n")
        urows, total, ideal, summary = utilisation(b)
        print("Cost-model MAC utilisation of ResNet-50 (ROWS=COLS=16)\n" + _table(urows))
        print(f"\nprogram: {total:,} cycles, ideal (conv/FC MACs / 256) {ideal:,.0f}: "
              f"{100 * ideal / total:.1f}% overall")
        print("\nPer conv group\n" + _table(summary))
        if a.compare_plain_stem:
            from presil.host.compiler.bundle import compile_model
            from presil.host.compiler.tiling import NpuConfig
            plain = compile_model(None, None, qdq=b.qdq, name="resnet50_v1_5",
                                  config=NpuConfig(space_to_depth=False))
            print("\nPer conv group, stem without space-to-depth\n" + _table(utilisation(plain)[3]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

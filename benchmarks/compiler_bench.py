"""Compiler / golden-model benchmark (not a timed test).

    python benchmarks/compiler_bench.py [--models resnet8,dscnn] [--repeat 3] [--skip-resnet50]

Prints:
1. compile time per zoo model (quantisation in onnxruntime, then IR + lowering);
2. for the quantised ResNet-50 v1.5: time of the golden reference ops on the
   IR (run_ir), of the golden ISS on the compiled program (with and without the
   race checker) and of onnxruntime on the same QDQ model; goal: golden within
   3x of onnxruntime on this machine;
3. cost-model MAC utilisation per ResNet-50 conv layer: ideal cycles
   MACs / (ROWS*COLS) against the ISS's cycles for that layer.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


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


def resnet50(b, repeat: int):
    import onnxruntime as ort
    from presil.host import zoo
    from presil.host.compiler.reference import run_ir
    g = b.graph
    info = zoo.info("resnet50_v1_5")
    x = np.random.default_rng(0).standard_normal(info.input_shape).astype(np.float32)
    feeds = {info.input_name: x}
    so = ort.SessionOptions()
    so.log_severity_level = 3
    qin = g.quantize_inputs(feeds)
    # Golden first, each warmed up once (first-touch page faults, BLAS threads, the ISS's
    # decode/schedule memo): onnxruntime's intra-op threads spin after each run and
    # would steal the cores from the BLAS calls timed right after them.
    run_ir(g, qin)
    t_ref = _best(lambda: run_ir(g, qin), repeat)
    b.run(x, check_races=False)
    t_iss = _best(lambda: b.run(x, check_races=False), repeat)
    t_iss_rc = _best(lambda: b.run(x, check_races=True), 1)
    sess = ort.InferenceSession(b.qdq.SerializeToString(), so, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    t_ort = _best(lambda: sess.run(None, feeds), repeat)
    rows = [("engine (quantised ResNet-50 v1.5, batch 1)", "seconds", "x onnxruntime"),
            ("onnxruntime (QDQ model, CPU EP)", f"{t_ort:.3f}", "1.00"),
            ("golden reference ops on the IR (run_ir)", f"{t_ref:.3f}", f"{t_ref / t_ort:.2f}"),
            ("golden ISS, compiled program", f"{t_iss:.3f}", f"{t_iss / t_ort:.2f}"),
            ("golden ISS + race checker", f"{t_iss_rc:.3f}", f"{t_iss_rc / t_ort:.2f}")]
    return rows


def utilisation(b):
    """Per conv layer of the first NPU program: ideal MAC cycles vs ISS layer cycles."""
    rows_ = [("layer", "op", "MACs", "ideal cycles", "ISS cycles", "util %")]
    x = np.random.default_rng(0).standard_normal(b.manifest["inputs"][0]["shape"]).astype(np.float32)
    b.run(x, check_races=False)
    lc = b.last_run["layer_cycles"]
    tot_ideal = tot = 0
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
    rows_.append(("all layers (incl. add/pool)", "", "", f"{tot_ideal:,.0f}", f"{tot:,}",
                  f"{100 * tot_ideal / tot:.1f}"))
    return rows_, b.last_run["total_cycles"], tot_ideal


def main(argv=None) -> int:
    from presil.host import zoo
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(zoo.model_names()))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-resnet50", action="store_true")
    a = ap.parse_args(argv)
    models = [m for m in a.models.split(",") if m]
    if not a.skip_resnet50 and "resnet50_v1_5" not in models:
        models.append("resnet50_v1_5")
    rows, bundles = compile_times(models)
    print("Compile time per zoo model\n" + _table(rows) + "\n")
    if not a.skip_resnet50:
        b = bundles["resnet50_v1_5"]
        print("Golden vs onnxruntime\n" + _table(resnet50(b, a.repeat)) + "\n")
        urows, total, ideal = utilisation(b)
        print("Cost-model MAC utilisation of ResNet-50 (ROWS=COLS=16)\n" + _table(urows))
        print(f"\nprogram: {total:,} cycles, ideal (conv/FC MACs / 256) {ideal:,.0f}: "
              f"{100 * ideal / total:.1f}% overall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

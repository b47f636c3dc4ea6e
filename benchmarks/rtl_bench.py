"""RTL cycles and MAC utilisation on npu_top (Verilator, through the pyuvm
environment), with the cost model's estimate beside each.

    python benchmarks/rtl_bench.py [--resnet50 distinct|none] [--limit N]

Rows: every distinct ResNet-50 v1.5 conv layer (identical shapes have identical
timing; `x n` says how many layers share it), then whole digits and ResNet-8
NPU segments. Utilisation = ideal MAC cycles (MACs / (ROWS*COLS)) over the
measured PERF_BUSY_CYCLES; MAC_ACTIVE/BUSY is the array's busy share. The
summary weights each layer by its repeats, per group (stem, 1x1, 3x3) and over
all conv layers. Each layer runs as a program of its own, so its first input
band and block-0 constants are exposed (in the whole network the constants are
prefetched under the previous layer).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from compiler_bench import _group
from presil.tb.uvm.harness import run_uvm
from presil.tb.uvm.jobs import write_jobs
from presil.tb.uvm.models import compiled, layer_jobs, layer_key, segment_jobs

ARRAY = 16 * 16


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resnet50", choices=["distinct", "none"], default="distinct")
    ap.add_argument("--limit", type=int, default=0, help="at most N ResNet-50 layers (0: all distinct)")
    args = ap.parse_args(argv)
    jobs = []
    if args.resnet50 != "none":
        b, _ = compiled("resnet50_v1_5")
        g = b.graph
        mult = Counter(layer_key(g, n) for n in g.nodes if n.op == "Conv")
        rj = [j for j in layer_jobs("resnet50_v1_5") if j["meta"]["op"] == "Conv"]
        for j in rj[:args.limit or None]:
            n = next(x for x in g.nodes if x.name == j["meta"]["layer"])
            j["meta"]["count"] = mult[layer_key(g, n)]
            j["meta"]["group"] = _group(g, n.name)
            j["capture"] = False
            jobs.append(j)
    for m in ("digits_cnn", "resnet8"):
        b, _ = compiled(m)
        for j in segment_jobs(m):
            seg = next(s for s in b.segments if s["name"] == j["meta"]["segment"])
            j["meta"].update(macs=int(seg["macs"]), what=f"{m} whole ({seg['name']}, {len(seg['nodes'])} layers)",
                             count=1)
            jobs.append(j)
    work = Path(tempfile.mkdtemp(prefix="rtl_bench_"))
    t0 = time.time()
    r = run_uvm("UvmJobs", work / "sim", jobs_dir=write_jobs(work / "jobs", jobs), tag="rtl_bench")
    wall = time.time() - t0
    print(f"{'layer':<66} {'x n':>3} {'MACs':>11} {'RTL cyc':>9} {'model':>9} {'err%':>6} {'util':>6} "
          f"{'MACact':>6} ok")
    tot = Counter()
    for v in r.verdicts:
        m = v["meta"]
        rc, gc, macs = v["rtl_cycles"], v["golden_cycles"], m.get("macs", 0)
        util = macs / ARRAY / rc if rc else 0
        act = v["rtl_mac"] / rc if rc else 0
        print(f"{m.get('what', v['name'])[:66]:<66} {m.get('count', 1):>3} {macs:>11,} {rc:>9,} {gc:>9,} "
              f"{100 * (gc - rc) / max(rc, 1):>+6.1f} {100 * util:>5.1f}% {100 * act:>5.1f}% "
              f"{'yes' if v['passed'] else 'NO'}")
        if "layer" in m:
            k = m.get("count", 1)
            for grp in (m["group"], "all"):
                tot[grp, "n"] += k
                tot[grp, "macs"] += k * macs
                tot[grp, "rtl"] += k * rc
                tot[grp, "model"] += k * gc
    if tot["all", "rtl"]:
        print("\nResNet-50 conv layers, weighted by repeats (single-layer programs):")
        print(f"{'group':<8} {'layers':>6} {'RTL cycles':>11} {'model':>11} {'err%':>6} {'RTL util':>8} "
              f"{'model util':>10}")
        for grp in sorted({k[0] for k in tot if k[0] != "all"}) + ["all"]:
            i, rc, gc = tot[grp, "macs"] / ARRAY, tot[grp, "rtl"], tot[grp, "model"]
            print(f"{grp:<8} {tot[grp, 'n']:>6} {rc:>11,} {gc:>11,} {100 * (gc - rc) / rc:>+6.1f} "
                  f"{100 * i / rc:>7.1f}% {100 * i / gc:>9.1f}%")
    print(f"{len(r.verdicts)} programs in {wall:.0f} s; {'all match' if not r.failures else r.failures}")
    return 0 if not r.failures else 1


if __name__ == "__main__":
    raise SystemExit(main())

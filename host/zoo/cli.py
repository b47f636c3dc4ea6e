"""``presil models``: list the zoo and export its models to ONNX files."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="benchmark model zoo: list models, export ONNX",
                              description="The benchmark model zoo (FP32 ONNX, opset 17, batch 1).")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")

    pl = sub.add_parser("list", help="table of the models with shapes, MACs and parameters")
    pl.add_argument("-v", "--verbose", action="store_true", help="also print the topology source and notes")
    pl.set_defaults(func=cmd_list)

    pe = sub.add_parser("export", help="write one model as an ONNX file")
    pe.add_argument("name", help="model name (see `presil models list`)")
    pe.add_argument("-o", "--output", required=True, help="output .onnx path")
    pe.add_argument("--seed", type=int, default=0, help="weight seed for the seeded models (default 0)")
    pe.set_defaults(func=cmd_export)


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def _si(n: int) -> str:
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.2f}{suf}"
    return str(n)


def cmd_list(args: argparse.Namespace) -> int:
    from . import list_models

    rows = [("NAME", "INPUT", "OUTPUT", "MACS", "PARAMS", "WEIGHTS", "TASK")]
    for m in list_models():
        rows.append((m.name, _shape(m.input_shape), ", ".join(_shape(s) for s in m.output_shapes),
                     _si(m.macs), _si(m.params), m.weights, m.task))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if getattr(args, "verbose", False):
        for m in list_models():
            print(f"\n{m.name}\n  source: {m.source}\n  notes:  {m.notes}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from . import UnknownModelError, export, info

    try:
        info(args.name)
    except UnknownModelError as e:
        print(f"presil models export: error: {e}", file=sys.stderr)
        return 2
    export(args.name, args.output, seed=args.seed)
    print(f"wrote {args.name} to {args.output}")
    return 0

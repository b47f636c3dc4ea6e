"""`presil asm`, `presil disasm` and `presil iss`: hand-written programs on the golden model.

`asm` turns the text form (one instruction per line, see golden/asm.py) into a
program file; tensors and constants are declared with directives:

    .rows 16
    .const weights.npy            # raw bytes of a .npy array (already packed), in order
    .tensor input  x  1,8,8,16 scale=0.02 zp=-3
    .tensor output y  1,8,8,16 scale=0.05 zp=0
    LOAD mem=0 dram_offset=... ...

`iss` runs a program file on the instruction-set simulator and writes each
output tensor as NAME.npy (int8 NHWC) with the cost model's cycle estimate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from presil.golden import iss
from presil.golden.asm import ProgramBuilder, assemble, disassemble
from presil.golden.device_errors import DataRace, DeviceError, ProgramDeadlock, ProgramFormatError
from presil.golden.isa import IsaError
from presil.golden.program import Program, TensorRole


class AsmSourceError(ValueError):
    """A directive of an assembly source file is malformed."""


def assemble_file(path: Path) -> Program:
    """Assembly source (directives + instructions) -> Program."""
    text = path.read_text()
    rows = 16
    consts: list[np.ndarray] = []
    tensors: list[tuple] = []
    body: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words or not words[0].startswith("."):
            body.append(line)
            continue
        directive, args = words[0], words[1:]
        try:
            if directive == ".rows":
                rows = int(args[0])
            elif directive == ".const":
                consts.append(np.load(path.parent / args[0]))
            elif directive == ".tensor":
                role, name, shape = args[0], args[1], tuple(int(v) for v in args[2].split(","))
                opts = dict(a.split("=", 1) for a in args[3:])
                tensors.append((name, TensorRole[role.upper()], shape,
                                float(opts.get("scale", 1.0)), int(opts.get("zp", 0))))
            else:
                raise AsmSourceError(f"unknown directive {directive}")
        except (IndexError, ValueError, KeyError, OSError) as e:
            raise AsmSourceError(f"{path}:{n}: bad {directive} directive: {e}") from None
    b = ProgramBuilder(rows, rows, name=path.stem)
    for c in consts:
        b.const(c)
    for t in tensors:
        b.tensor(*t)
    for raw in assemble("\n".join(body)):
        b.instructions.append(raw)
    return b.build()


def _cmd_asm(args) -> int:
    prog = assemble_file(Path(args.source))
    prog.save(args.output)
    print(f"{args.output}: {len(prog.instructions)} instructions, {len(prog.const)} constant bytes, "
          f"{len(prog.tensors)} tensors, window {prog.dram_size} bytes")
    return 0


def _cmd_disasm(args) -> int:
    prog = Program.load(args.program)
    for t in prog.tensors:
        print(f"# tensor {t.role.name.lower()} {t.name} shape={t.shape} dram_offset={t.dram_offset} "
              f"scale={t.scale} zp={t.zero_point}")
    sys.stdout.write(disassemble(prog))
    return 0


def _cmd_iss(args) -> int:
    prog = Program.load(args.program)
    inputs = {}
    for spec in args.input or []:
        name, _, path = spec.partition("=")
        inputs[name] = np.load(path)
    res = iss.run(prog, inputs)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in res.outputs.items():
        np.save(out / f"{name}.npy", arr)
    summary = {"cycles": res.cycles, "mac_active_cycles": res.mac_active,
               "dma_bytes_read": res.dma_bytes_read, "dma_bytes_written": res.dma_bytes_written,
               "outputs": sorted(res.outputs)}
    print(json.dumps(summary, indent=2))
    return 0


def _guarded(handler):
    """Bad input becomes one line naming the problem and exit code 2, not a traceback."""
    def run(args) -> int:
        try:
            return handler(args)
        except (AsmSourceError, IsaError, ProgramFormatError, DeviceError, ProgramDeadlock,
                DataRace, FileNotFoundError, ValueError) as e:
            print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    return run


def register(subparsers) -> None:
    p = subparsers.add_parser("asm", help="assemble a text program into a program file")
    p.add_argument("source")
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=_guarded(_cmd_asm))

    p = subparsers.add_parser("disasm", help="print a program file as text")
    p.add_argument("program")
    p.set_defaults(func=_guarded(_cmd_disasm))

    p = subparsers.add_parser("iss", help="run a program file on the golden instruction-set simulator")
    p.add_argument("program")
    p.add_argument("--input", action="append", metavar="NAME=FILE.npy", help="int8 NHWC input tensor")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.set_defaults(func=_guarded(_cmd_iss))

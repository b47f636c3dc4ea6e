"""``presil compile`` / ``presil run`` / ``presil verify``: the compiler's user commands.

Every user error (bad model, missing calibration, unsupported op, dynamic
shape, bad bundle, unknown device) is one line on stderr naming the error,
exit code 2, no traceback. verify exits 0 when the agreement targets hold,
1 otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def register(subparsers) -> None:
    p = subparsers.add_parser("compile", help="compile an ONNX model (or a zoo model) into a bundle",
                              description="Quantise (int8, static), partition and compile a model into a "
                                          ".presil bundle.")
    p.add_argument("model", help="FP32 .onnx file or zoo model name (see `presil models list`)")
    _common(p)
    p.add_argument("-o", "--output", required=True, help="output bundle path (.presil)")
    p.set_defaults(func=cmd_compile)

    r = subparsers.add_parser("run", help="run a compiled bundle on a device",
                              description="Run a bundle: float NCHW input(s) in, float output(s) out.")
    r.add_argument("bundle", help=".presil bundle from `presil compile`")
    r.add_argument("--device", default="golden:",
                   help="golden: (the golden ISS, default) or a device URI run through the host driver: "
                        "sim: (RTL co-simulation), xdma:/dev/xdma0, golden:?mem=64M (the golden device model)")
    r.add_argument("--input", action="append", required=True, metavar="[NAME=]X.npy",
                   help="input array (.npy); NAME= for multi-input models; repeatable")
    r.add_argument("-o", "--output", required=True,
                   help="output .npy (single-output model) or .npz (one array per output)")
    r.set_defaults(func=cmd_run)

    v = subparsers.add_parser("verify", help="compile and compare golden against onnxruntime",
                              description="Compile, run on the golden model and compare with onnxruntime "
                                          "running the same quantised model. Exit 0 when >= 99%% of final "
                                          "elements are within +-1 LSB and top-1 agrees on >= 99%% of "
                                          "samples, else 1.")
    v.add_argument("model", help="FP32 .onnx file or zoo model name")
    v.add_argument("--against", default="onnxruntime", choices=["onnxruntime"],
                   help="reference implementation (onnxruntime)")
    v.add_argument("--samples", type=int, default=10, help="number of inputs to compare (default 10)")
    v.add_argument("--data", help="evaluation inputs .npy (a stack of samples); default: the zoo "
                                  "model's dataset or seeded synthetic inputs")
    v.add_argument("--json", help="write the full report as JSON")
    v.add_argument("--device", default="golden:", help="device under test (default golden:)")
    _common(v)
    v.set_defaults(func=cmd_verify)


def _common(p) -> None:
    p.add_argument("--calib", help="calibration data: .npy (single input) or .npz (per input name)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix an input's shape (repeatable), e.g. input=1,3,224,224")
    p.add_argument("--rows", type=int, default=16, help="systolic array size ROWS == COLS (default 16)")


class _UsageError(Exception):
    pass


def _err(cmd: str, e: Exception) -> int:
    print(f"presil {cmd}: error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
          file=sys.stderr)
    return 2


def _input_shapes(specs: list[str]) -> dict[str, list[int]] | None:
    out = {}
    for s in specs:
        name, eq, dims = s.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            out[name] = [int(d) for d in dims.split(",")]
        except ValueError:
            raise _UsageError(f"--input-shape {s!r}: expected NAME=D0,D1,... (integers)") from None
    return out or None


def _resolve_model(arg: str):
    """(model, zoo name or None): a file path, else a zoo model name."""
    from presil.host import zoo
    from .quantize import load_model
    if Path(arg).exists():
        return load_model(arg), None
    if arg in zoo.model_names():
        return zoo.build(arg), arg
    if arg.endswith(".onnx") or "/" in arg:
        return load_model(arg), None  # raises ModelError: file not found
    raise _UsageError(f"{arg!r} is neither a file nor a zoo model ({', '.join(zoo.model_names())})")


def _compile(args, cmd: str):
    from .bundle import compile_model
    from .errors import CalibrationError
    from . import zoodata
    model, zoo_name = _resolve_model(args.model)
    shapes = _input_shapes(args.input_shape)
    calib = args.calib
    if calib is None:
        if zoo_name is None:
            raise CalibrationError(f"no calibration data: {args.model} is not a zoo model; pass "
                                   f"--calib DATA.npy|npz with representative inputs")
        calib, what = zoodata.calibration(zoo_name)
        print(f"presil {cmd}: calibration: {what}", file=sys.stderr)
    name = zoo_name or Path(args.model).stem
    b = compile_model(model, calib, input_shapes=shapes, rows=args.rows, cols=args.rows, name=name)
    return b, zoo_name


def _guard(cmd: str, fn, args) -> int:
    from .errors import CompilerError
    from presil.golden.device_errors import DataRace, DeviceError, ProgramDeadlock
    from presil.host.errors import HostError
    try:
        return fn(args)
    except (CompilerError, _UsageError, DeviceError, DataRace, ProgramDeadlock, HostError) as e:
        return _err(cmd, e)
    except (OSError, ValueError) as e:  # unreadable files, bad arrays
        return _err(cmd, e)


def cmd_compile(args) -> int:
    return _guard("compile", _do_compile, args)


def _do_compile(args) -> int:
    b, _ = _compile(args, "compile")
    print(b.manifest["partition_table"])
    b.save(args.output)
    n_instr = sum(len(p.instructions) for p in b.programs.values())
    print(f"wrote {args.output}: {len(b.segments)} segment(s), {len(b.programs)} NPU program(s), "
          f"{n_instr} instructions")
    return 0


def cmd_run(args) -> int:
    return _guard("run", _do_run, args)


def _do_run(args) -> int:
    from .bundle import Bundle
    b = Bundle.load(args.bundle)
    feeds = {}
    names = [s["name"] for s in b.manifest["inputs"]]
    for spec in args.input:
        name, eq, path = spec.rpartition("=")
        if not eq:
            if len(names) != 1:
                raise _UsageError(f"model has inputs {names}: use --input NAME=X.npy")
            name, path = names[0], spec
        feeds[name] = np.load(path, allow_pickle=False)
    if args.device == "golden:":  # the golden ISS itself: also gives the cost model's cycles
        outs = b.run(feeds)
        cycles = f"{b.last_run['total_cycles']:,} NPU cycles (cost model)"
    else:  # any device URI, through the host driver (golden:?..., sim:, xdma:...)
        from presil.host.runtime import ModelRunner

        with ModelRunner(b, args.device) as runner:
            outs = runner.run(feeds)
            cycles = f"{runner.device.perf()['busy_cycles']:,} NPU cycles (last program, BUSY_CYCLES on {args.device})"
    if len(outs) == 1 and not args.output.endswith(".npz"):
        np.save(args.output, next(iter(outs.values())))
    else:
        np.savez(args.output, **outs)
    print(f"{args.output}: {', '.join(f'{k} {list(v.shape)}' for k, v in outs.items())}; {cycles}",
          file=sys.stderr)
    return 0


def cmd_verify(args) -> int:
    return _guard("verify", _do_verify, args)


def _do_verify(args) -> int:
    from .bundle import check_device
    from . import zoodata
    from .verify import stderr_progress, verify_bundle
    check_device(args.device)
    if args.samples < 1:
        raise _UsageError("--samples must be >= 1")
    b, zoo_name = _compile(args, "verify")
    print(b.manifest["partition_table"])
    labels = None
    if args.data:
        x = np.load(args.data, allow_pickle=False).astype(np.float32)
        shape = b.manifest["inputs"][0]["shape"]
        xs = [x[i].reshape(shape) for i in range(min(args.samples, len(x)))]
        what = f"{len(xs)} samples of {args.data}"
    elif zoo_name:
        xs, labels, what = zoodata.samples(zoo_name, args.samples)
    else:
        rng = np.random.default_rng(zoodata.EVAL_SEED)
        xs = [rng.standard_normal(b.manifest["inputs"][0]["shape"]).astype(np.float32)
              for _ in range(args.samples)]
        what = f"{args.samples} seeded synthetic inputs (default_rng({zoodata.EVAL_SEED}))"
    print(f"presil verify: inputs: {what}", file=sys.stderr)
    out0 = b.manifest["outputs"][0]
    classifier = zoodata.is_classifier(zoo_name) if zoo_name else \
        (len(b.manifest["outputs"]) == 1 and out0["shape"] is not None and len(out0["shape"]) == 2
         and out0["shape"][0] == 1)
    rep = verify_bundle(b, xs, labels=labels, classifier=classifier, progress=stderr_progress)
    print(rep.table())
    print(rep.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(rep.to_json(), indent=1, default=float))
    return 0 if rep.passed else 1

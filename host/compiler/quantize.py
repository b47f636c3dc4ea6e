"""Static int8 post-training quantisation of an FP32 ONNX model (QDQ format).

Pipeline: load + check -> fix input shapes -> fold BatchNormalization ->
onnxruntime's quant_pre_process (shape inference, basic graph optimisation) ->
quantize_static with the NPU's number formats: per-channel symmetric int8
weights (zero point 0), asymmetric int8 activations, int32 bias.  Only the ops
the NPU runs (plus the lossless data-movement ops) are quantised; everything
else stays float and becomes a host op in the IR.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from .errors import CalibrationError, DynamicShapeError, ModelError, UnsupportedOpError
from .fold import fold_batchnorm
from .hostexec import host_can_run

# Ops the NPU executes (Relu/Clip are fused as clamps) and ops that only move
# int8 data (free or exact on the host).  Softmax, Sigmoid, Concat, ... are
# deliberately absent: they run in float on the host, so quantising their
# outputs would only add rounding.
NPU_OP_TYPES = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Clip", "MaxPool",
                "AveragePool", "GlobalAveragePool")
MOVE_OP_TYPES = ("Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")
DEFAULT_OP_TYPES = NPU_OP_TYPES + MOVE_OP_TYPES

# --------------------------------------------------------------------------
# loading and shapes
# --------------------------------------------------------------------------

def load_model(model) -> onnx.ModelProto:
    """ModelProto from a path, serialized bytes or a ModelProto; checked."""
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto.FromString(model.SerializeToString())
    elif isinstance(model, (bytes, bytearray)):
        try:
            m = onnx.load_from_string(bytes(model))
        except Exception as exc:  # protobuf DecodeError and friends
            raise ModelError(f"not a valid ONNX protobuf ({len(model)} bytes): {exc}") from exc
    elif isinstance(model, (str, Path)):
        p = Path(model)
        if not p.is_file():
            raise ModelError(f"model file not found: {p}")
        try:
            m = onnx.load(str(p))
        except Exception as exc:
            raise ModelError(f"{p}: not a valid ONNX protobuf: {exc}") from exc
    else:
        raise ModelError(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}")
    if not m.graph.node:
        raise ModelError("model graph has no nodes")
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"ONNX checker rejected the model: {str(exc).strip().splitlines()[0]}") from exc
    return m


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Real inputs (initializers listed as inputs by old exporters excluded)."""
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def input_shape(vi: onnx.ValueInfoProto) -> list:
    """Dims as ints, or the dim_param string / '?' for unknown ones."""
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
            else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def fix_input_shapes(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]
                     ) -> onnx.ModelProto:
    """Overwrite the named inputs' dims and re-infer every other shape."""
    m = onnx.ModelProto.FromString(model.SerializeToString())
    ins = {i.name: i for i in graph_inputs(m)}
    for name, shape in input_shapes.items():
        if name not in ins:
            raise ModelError(f"input_shapes names '{name}', which is not a model input "
                             f"(inputs: {sorted(ins)})")
        if any(int(d) != d or d <= 0 for d in shape):
            raise ModelError(f"input_shapes['{name}'] = {list(shape)} must be positive ints")
        dims = ins[name].type.tensor_type.shape.dim
        if len(dims) and len(dims) != len(shape):
            raise ModelError(f"input_shapes['{name}'] has rank {len(shape)}, the model's "
                             f"input has rank {len(dims)}")
        del dims[:]
        for d in shape:
            dims.add().dim_value = int(d)
    # Stale symbolic shapes elsewhere would contradict the new ones.
    del m.graph.value_info[:]
    for o in m.graph.output:
        o.type.tensor_type.ClearField("shape")
    try:
        return shape_inference.infer_shapes(m, strict_mode=True)
    except Exception as exc:
        raise ModelError(f"shape inference failed with input_shapes={dict(input_shapes)}: {exc}") from exc


def check_static_shapes(model: onnx.ModelProto) -> None:
    """DynamicShapeError for the first input dim that is not a fixed positive int."""
    for vi in graph_inputs(model):
        shape = input_shape(vi)
        if not vi.type.tensor_type.HasField("shape"):
            raise DynamicShapeError(vi.name, 0, "unknown rank", shape)
        for i, d in enumerate(shape):
            if not isinstance(d, int):
                raise DynamicShapeError(vi.name, i, f"'{d}'" if d != "?" else "unknown", shape)


def prepare_fp32(model, input_shapes: Mapping[str, Sequence[int]] | None = None, *,
                 preprocess: bool = True) -> onnx.ModelProto:
    """Checked, static-shaped, BN-folded, pre-processed FP32 model."""
    m = load_model(model)
    if input_shapes:
        m = fix_input_shapes(m, input_shapes)
    check_static_shapes(m)
    for n in m.graph.node:  # fail before calibration runs into the same op
        if not host_can_run(n):
            raise UnsupportedOpError(n.name or n.output[0], n.op_type,
                                     f"domain '{n.domain}' has no NPU or host implementation")
    m, _ = fold_batchnorm(m)
    if preprocess:
        from onnxruntime.quantization.shape_inference import quant_pre_process
        with tempfile.TemporaryDirectory(prefix="presil-pre.") as d:
            src, out = Path(d) / "fp32.onnx", Path(d) / "pre.onnx"
            # A path, not a ModelProto: with a ModelProto quant_pre_process
            # writes external-data files into a temp dir it then deletes.
            onnx.save(m, str(src))
            try:
                quant_pre_process(str(src), str(out), skip_symbolic_shape=True)
            except Exception as exc:
                raise ModelError(f"onnxruntime pre-processing failed: {exc}") from exc
            m = onnx.load(str(out))
    # A BatchNormalization not after a Conv survives: it becomes a float host op.
    return m


# --------------------------------------------------------------------------
# calibration data
# --------------------------------------------------------------------------

def _samples_for(name: str, shape: list[int], data) -> list[np.ndarray]:
    """Split user data for one input into samples of exactly `shape`."""
    if isinstance(data, np.ndarray):
        arrays: Iterable = [data]
    elif isinstance(data, (list, tuple)):
        arrays = data
    else:
        raise CalibrationError(f"calibration data for input '{name}' must be numpy arrays, "
                               f"got {type(data).__name__}")
    out: list[np.ndarray] = []
    for a in arrays:
        a = np.asarray(a)
        if not np.issubdtype(a.dtype, np.number):
            raise CalibrationError(f"calibration data for input '{name}' is not numeric ({a.dtype})")
        a = a.astype(np.float32)
        if list(a.shape) == shape:
            out.append(a)
        elif a.ndim == len(shape) and list(a.shape[1:]) == shape[1:] and shape[0] == 1:
            out.extend(a[i:i + 1] for i in range(a.shape[0]))  # a batch of samples
        elif list(a.shape[1:]) == shape:
            out.extend(a[i] for i in range(a.shape[0]))  # a stack of samples
        else:
            raise CalibrationError(f"calibration sample for input '{name}' has shape "
                                   f"{list(a.shape)}, the model expects {shape}")
    if not out:
        raise CalibrationError(f"no calibration samples for input '{name}'")
    if not all(np.all(np.isfinite(s)) for s in out):
        raise CalibrationError(f"calibration data for input '{name}' contains NaN or inf")
    return out


def load_calibration(data, model: onnx.ModelProto) -> list[dict[str, np.ndarray]]:
    """Normalise user calibration data into a list of feed dicts.

    data: an array or list of arrays (single-input models), a mapping
    input name -> array(s), or a path to an .npy (single input) or .npz file
    (one array per input name; a single-input model accepts any one key).
    """
    ins = graph_inputs(model)
    names = [i.name for i in ins]
    shapes = {i.name: input_shape(i) for i in ins}
    if data is None:
        raise CalibrationError(f"no calibration data given: static quantisation needs sample "
                               f"inputs for {names}")
    if isinstance(data, (str, Path)):
        p = Path(data)
        if not p.is_file():
            raise CalibrationError(f"calibration file not found: {p}")
        try:
            loaded = np.load(str(p), allow_pickle=False)
        except Exception as exc:
            raise CalibrationError(f"{p}: cannot read calibration data: {exc}") from exc
        if isinstance(loaded, np.ndarray):
            data = loaded
        else:
            with loaded:
                d = {k: loaded[k] for k in loaded.files}
            if not d:
                raise CalibrationError(f"{p}: contains no arrays")
            data = d if set(names) <= set(d) or len(names) > 1 else next(iter(d.values()))
    if isinstance(data, Mapping):
        missing = [n for n in names if n not in data]
        if missing:
            raise CalibrationError(f"calibration data has no samples for input(s) {missing} "
                                   f"(got keys {sorted(data)})")
        per = {n: _samples_for(n, shapes[n], data[n]) for n in names}
    else:
        if len(names) != 1:
            raise CalibrationError(f"model has inputs {names}: give calibration data as a "
                                   f"mapping input name -> arrays")
        if isinstance(data, (list, tuple)) and len(data) == 0:
            raise CalibrationError(f"calibration data is empty: need samples for input '{names[0]}'")
        per = {names[0]: _samples_for(names[0], shapes[names[0]], data)}
    counts = {n: len(v) for n, v in per.items()}
    if len(set(counts.values())) != 1:
        raise CalibrationError(f"inputs have different numbers of calibration samples: {counts}")
    return [{n: per[n][i] for n in names} for i in range(next(iter(counts.values())))]


def _reader(feeds: list[dict[str, np.ndarray]]):
    from onnxruntime.quantization import CalibrationDataReader

    class _ListReader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(feeds)

    return _ListReader()


# --------------------------------------------------------------------------
# quantisation
# --------------------------------------------------------------------------

def quantize(model, calibration, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
             op_types_to_quantize: Sequence[str] = DEFAULT_OP_TYPES,
             calibrate_method: str = "minmax", preprocess: bool = True) -> onnx.ModelProto:
    """FP32 ONNX (path, bytes or ModelProto) -> int8 QDQ ModelProto.

    calibration: see load_calibration, or an onnxruntime CalibrationDataReader.
    input_shapes: {input name: shape} fixing dynamic input dims.
    """
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    fp32 = prepare_fp32(model, input_shapes, preprocess=preprocess)
    if isinstance(calibration, CalibrationDataReader):
        reader = calibration
    else:
        reader = _reader(load_calibration(calibration, fp32))
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if calibrate_method not in methods:
        raise ValueError(f"calibrate_method must be one of {sorted(methods)}")
    with tempfile.TemporaryDirectory(prefix="presil-q.") as d:
        out = Path(d) / "qdq.onnx"
        try:
            quantize_static(
                fp32, str(out), reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=False,
                calibrate_method=methods[calibrate_method],
                op_types_to_quantize=list(op_types_to_quantize),
                extra_options={
                    "ActivationSymmetric": False,   # NPU activations: (scale, zero point)
                    "WeightSymmetric": True,        # weights: zero point 0, per channel
                    "AddQDQPairToWeight": False,    # int8 weight initializers, read directly
                    "QuantizeBias": True,           # int32 bias at in_scale * w_scale
                    "DedicatedQDQPair": False,
                    # Relu/Clip folded into the producer's output range (zero
                    # point -128 == ReLU clamp): what the NPU's POST clamp does.
                    "QDQKeepRemovableActivations": False,
                },
            )
        except CalibrationError:
            raise
        except Exception as exc:
            raise ModelError(f"onnxruntime quantize_static failed: {exc}") from exc
        return onnx.load(str(out))

"""presil.host.zoo: the benchmark model zoo.

FP32 ONNX models (opset 17, static shapes, batch 1, NCHW) of the MLPerf Tiny and
MLPerf edge benchmarks, built from their published topologies with seeded weights,
plus ``digits_cnn``, a small CNN trained by this package on scikit-learn's 8x8
digits (the one model with meaningful accuracy).

    >>> from presil.host import zoo
    >>> [m.name for m in zoo.list_models()]            # doctest: +SKIP
    >>> model = zoo.build("resnet8", seed=0)           # onnx.ModelProto
    >>> zoo.export("resnet8", "resnet8.onnx")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from os import PathLike
from typing import Callable

import onnx

from . import builders
from .builders import GraphBuilder

__all__ = ["ModelInfo", "UnknownModelError", "list_models", "model_names", "info", "build", "export"]


@dataclass(frozen=True)
class ModelInfo:
    """What a zoo model is. ``macs`` counts Conv and Gemm multiply-accumulates only."""

    name: str
    task: str
    input_name: str
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    source: str  # where the topology comes from
    weights: str  # "seeded" (random, numpy default_rng(seed)) or "trained"
    macs: int
    params: int  # trainable parameters (conv/FC weights and biases, BN gamma/beta)
    notes: str = ""


class UnknownModelError(ValueError):
    """Raised for a model name that is not in the zoo; the message lists the names."""


@dataclass(frozen=True)
class _Entry:
    graph: Callable[[GraphBuilder], list[str]]
    task: str
    source: str
    weights: str
    notes: str = ""
    # Inputs in the BN calibration batch: enough positions for stable per-channel
    # statistics down to the smallest feature map, without making the build slow.
    calib_batch: int = 8


def _digits_graph(b: GraphBuilder) -> list[str]:
    from . import digits

    return digits.graph(b, None)


_REGISTRY: dict[str, _Entry] = {
    "resnet8": _Entry(
        builders.resnet8, "image classification (CIFAR-10, 10 classes)",
        "MLPerf Tiny IC, mlcommons/tiny benchmark/training/image_classification/keras_model.py "
        "(resnet_v1_eembc, 16 filters)", "seeded", "input NCHW 1x3x32x32; output softmax"),
    "dscnn": _Entry(
        builders.dscnn, "keyword spotting (Speech Commands, 12 classes)",
        "MLPerf Tiny KWS, mlcommons/tiny benchmark/training/keyword_spotting/keras_model.py (ds_cnn small)",
        "seeded", "input 1x1x49x10 MFCC (time x coeff); final AveragePool (24,5) over the 25x5 map as published"),
    "mobilenet_v1_025_vww": _Entry(
        builders.mobilenet_v1_025_vww, "visual wake words (person / no person, 2 classes)",
        "MLPerf Tiny VWW, mlcommons/tiny v0.1/benchmarks/visual_wake_words/vww_model.py (MobileNetV1 alpha 0.25)",
        "seeded", "ReLU (not ReLU6) and biased convs, as the Keras reference"),
    "autoencoder_ad": _Entry(
        builders.autoencoder_ad, "anomaly detection (ToyADMOS, reconstruction)",
        "MLPerf Tiny AD, mlcommons/tiny anomaly_detection/keras_model.py (dense autoencoder)",
        "seeded", "input 1x640 (5 frames x 128 log-mel); output is the reconstruction", calib_batch=64),
    "resnet50_v1_5": _Entry(
        builders.resnet50_v1_5, "image classification (ImageNet, 1000 classes)",
        "MLPerf Inference edge ResNet-50 v1.5 (He et al. 2016 with the stride on the bottleneck 3x3 conv)",
        "seeded", "1000 classes (the MLPerf TF checkpoint adds a background logit, 1001); output softmax",
        calib_batch=1),
    "ssd_mobilenet_v1": _Entry(
        builders.ssd_mobilenet_v1, "object detection (COCO, 91 classes incl. background)",
        "MLPerf Inference edge SSD-MobileNet v1 300x300 (TF Object Detection API ssd_mobilenet_v1_coco)",
        "seeded",
        "outputs raw box encodings [1,1917,4] (ty,tx,th,tw, scales 10,10,5,5) and class logits [1,1917,91]; "
        "sigmoid scores, anchor decoding (6 maps, 3/6 anchors per location) and NMS are host "
        "post-processing, not part of the graph", calib_batch=4),
    "digits_cnn": _Entry(
        _digits_graph, "image classification (sklearn 8x8 digits, 10 classes)",
        "presil: small CNN trained in numpy by presil.host.zoo.digits on sklearn.datasets.load_digits",
        "trained", "input 1x1x8x8 in [0,1]; output logits; held-out split from digits_split()"),
}


def model_names() -> list[str]:
    return list(_REGISTRY)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}") from None


@functools.cache
def info(name: str) -> ModelInfo:
    """ModelInfo of one model, from a dry (weightless) build: cheap even for ResNet-50."""
    e = _entry(name)
    b = GraphBuilder(name, dry=True)
    outs = e.graph(b)
    inp = b.inputs[0]
    return ModelInfo(
        name=name, task=e.task, input_name=inp.name,
        input_shape=tuple(d.dim_value for d in inp.type.tensor_type.shape.dim),
        output_names=tuple(outs), output_shapes=tuple(b.shape[o] for o in outs),
        source=e.source, weights=e.weights, macs=b.macs, params=b.params, notes=e.notes)


def list_models() -> list[ModelInfo]:
    return [info(n) for n in _REGISTRY]


def build(name: str, seed: int = 0) -> onnx.ModelProto:
    """Build one model. Seeded models are deterministic in ``seed``; ``digits_cnn`` ignores it."""
    e = _entry(name)
    if e.weights == "trained":
        data = resources.files(__package__).joinpath("data", f"{name}.onnx")
        return onnx.load_from_string(data.read_bytes())
    b = GraphBuilder(name, seed=seed, calib_batch=e.calib_batch)
    outs = e.graph(b)
    return b.finish(outs, doc=f"{name}: {e.task}. Topology: {e.source}. Weights: seeded (seed={seed}). {e.notes}")


def export(name: str, path: str | PathLike, seed: int = 0) -> None:
    onnx.save(build(name, seed), str(path))

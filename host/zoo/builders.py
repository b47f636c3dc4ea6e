"""ONNX builders for the benchmark models, written with ``onnx.helper``.

Every builder takes a :class:`GraphBuilder` and adds its layers through it. The
builder tracks the static shape of every tensor (NCHW), so it can count MACs and
parameters as it goes; BatchNormalization statistics are calibrated once the
graph is complete (see :meth:`GraphBuilder.bn`). A *dry* builder
generates no weights at all: that is how :func:`presil.host.zoo.list_models`
gets shapes, MACs and parameter counts without materialising ResNet-50.

Padding conventions follow the framework each model was published in: the TF /
Keras models use ``padding='same'``, which pads asymmetrically (the extra row or
column goes after) for stride 2 on even inputs; ``pads`` is set explicitly so
the ONNX graph computes exactly what the published model computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import npref

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; readable by every runtime we use


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TF 'SAME' padding (begin, end) for one spatial dimension."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class GraphBuilder:
    """Accumulates nodes/initializers and tracks shapes, MACs and parameter counts.

    Weights are drawn from ``numpy.random.default_rng(seed)`` in graph order (He
    normal for conv/FC weights, small biases), unless the caller passes them
    explicitly (the trained digits model does). ``dry=True`` skips all arrays.
    """

    def __init__(self, name: str, seed: int = 0, dry: bool = False, calib_batch: int = 1):
        self.name = name
        self.seed = seed
        self.dry = dry
        self.calib_batch = calib_batch
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.arrays: dict[str, np.ndarray] = {}  # initializers, in creation order
        self.inputs: list[onnx.ValueInfoProto] = []
        self.shape: dict[str, tuple[int, ...]] = {}
        self.macs = 0
        self.params = 0
        self._bn_jitter: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._counter: dict[str, int] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _uniq(self, base: str) -> str:
        n = self._counter.get(base, 0)
        self._counter[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def _init(self, name: str, arr: np.ndarray | None, trainable: bool = True, shape=None) -> str:
        shape = tuple(arr.shape) if arr is not None else tuple(shape)
        if trainable:
            self.params += int(np.prod(shape))
        if not self.dry:
            self.arrays[name] = np.ascontiguousarray(arr, dtype=np.float32)
        return name

    def _node(self, op: str, inputs: list[str], name: str, out_shape, **attrs) -> str:
        out = f"{name}/out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        self.shape[out] = tuple(int(d) for d in out_shape)
        return out

    def _he(self, shape: tuple[int, ...], fan_in: int) -> np.ndarray | None:
        if self.dry:
            return None
        return self.rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in))

    def _small(self, n: int, scale: float = 0.05) -> np.ndarray | None:
        return None if self.dry else self.rng.standard_normal(n, dtype=np.float32) * np.float32(scale)

    def input(self, name: str, shape: Sequence[int]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        self.shape[name] = tuple(shape)
        return name

    # -- layers ----------------------------------------------------------------------------

    def conv(self, x: str, cout: int, k, stride=1, pads="same", groups: int = 1, bias: bool = True,
             name: str = "conv", w: np.ndarray | None = None, b: np.ndarray | None = None) -> str:
        """Conv2d. ``pads``: 'same' (TF SAME), an int, or (top, left, bottom, right)."""
        n, cin, h, wd = self.shape[x]
        kh, kw = _pair(k)
        sh, sw = _pair(stride)
        if pads == "same":
            (pt, pb), (pl, pr) = same_pads(h, kh, sh), same_pads(wd, kw, sw)
        elif isinstance(pads, int):
            pt = pb = pl = pr = pads
        else:
            pt, pl, pb, pr = pads
        ho = (h + pt + pb - kh) // sh + 1
        wo = (wd + pl + pr - kw) // sw + 1
        cpg = cin // groups
        name = self._uniq(name)
        if w is None:
            w = self._he((cout, cpg, kh, kw), cpg * kh * kw)
        ins = [x, self._init(f"{name}/W", w, shape=(cout, cpg, kh, kw))]
        if bias:
            if b is None:
                b = self._small(cout)
            ins.append(self._init(f"{name}/B", b, shape=(cout,)))
        self.macs += n * cout * ho * wo * cpg * kh * kw
        return self._node("Conv", ins, name, (n, cout, ho, wo), kernel_shape=[kh, kw],
                          strides=[sh, sw], pads=[pt, pl, pb, pr], group=groups)

    def gemm(self, x: str, nout: int, name: str = "fc", w: np.ndarray | None = None,
             b: np.ndarray | None = None) -> str:
        """Fully connected layer, ``Y = X @ W.T + B`` with W stored [out, in] (transB=1)."""
        n, k = self.shape[x]
        name = self._uniq(name)
        if w is None:
            w = self._he((nout, k), k)
        if b is None:
            b = self._small(nout)
        ins = [x, self._init(f"{name}/W", w, shape=(nout, k)), self._init(f"{name}/B", b, shape=(nout,))]
        self.macs += n * nout * k
        return self._node("Gemm", ins, name, (n, nout), transB=1)

    def bn(self, x: str, eps: float = 1e-3, name: str = "bn") -> str:
        """BatchNormalization (inference form) with seeded, plausible parameters.

        gamma ~ U(0.8, 1.2) and beta ~ N(0, 0.1). Arbitrary running statistics would
        scale each channel by an arbitrary factor, and the product of those factors
        explodes or vanishes through 50 layers; so the running mean/variance are
        *calibrated* in :meth:`finish`: measured on a seeded N(0, 1) input, then
        jittered (mean by 0.1 sd, variance by x0.8..1.25, drawn here), as a trained
        network's statistics differ from any single input's.
        """
        c = self.shape[x][1]
        name = self._uniq(name)
        if self.dry:
            gamma = beta = None
        else:
            gamma = self.rng.uniform(0.8, 1.2, c).astype(np.float32)
            beta = self._small(c, 0.1)
            self._bn_jitter[name] = (self.rng.standard_normal(c), self.rng.uniform(0.8, 1.25, c))
        zeros = None if self.dry else np.zeros(c, np.float32)
        ones = None if self.dry else np.ones(c, np.float32)
        ins = [x, self._init(f"{name}/gamma", gamma, shape=(c,)), self._init(f"{name}/beta", beta, shape=(c,)),
               self._init(f"{name}/mean", zeros, False, (c,)), self._init(f"{name}/var", ones, False, (c,))]
        return self._node("BatchNormalization", ins, name, self.shape[x], epsilon=eps)

    def relu(self, x: str, name: str = "relu") -> str:
        return self._node("Relu", [x], self._uniq(name), self.shape[x])

    def relu6(self, x: str, name: str = "relu6") -> str:
        if "relu6/min" not in self.arrays and not self.dry:  # shared scalar bounds, not parameters
            self.arrays["relu6/min"] = np.array(0.0, np.float32)
            self.arrays["relu6/max"] = np.array(6.0, np.float32)
        return self._node("Clip", [x, "relu6/min", "relu6/max"], self._uniq(name), self.shape[x])

    def add(self, a: str, b: str, name: str = "add") -> str:
        assert self.shape[a] == self.shape[b], (self.shape[a], self.shape[b])
        return self._node("Add", [a, b], self._uniq(name), self.shape[a])

    def _pool(self, op: str, x: str, k, stride, pads, name: str) -> str:
        n, c, h, w = self.shape[x]
        kh, kw = _pair(k)
        sh, sw = _pair(stride)
        pt, pl, pb, pr = (pads,) * 4 if isinstance(pads, int) else pads
        ho = (h + pt + pb - kh) // sh + 1
        wo = (w + pl + pr - kw) // sw + 1
        return self._node(op, [x], self._uniq(name), (n, c, ho, wo), kernel_shape=[kh, kw],
                          strides=[sh, sw], pads=[pt, pl, pb, pr])

    def maxpool(self, x: str, k, stride, pads=0, name: str = "maxpool") -> str:
        return self._pool("MaxPool", x, k, stride, pads, name)

    def avgpool(self, x: str, k, stride=None, pads=0, name: str = "avgpool") -> str:
        return self._pool("AveragePool", x, k, k if stride is None else stride, pads, name)

    def global_avgpool(self, x: str, name: str = "gap") -> str:
        n, c, _, _ = self.shape[x]
        return self._node("GlobalAveragePool", [x], self._uniq(name), (n, c, 1, 1))

    def flatten(self, x: str, name: str = "flatten") -> str:
        shp = self.shape[x]
        return self._node("Flatten", [x], self._uniq(name), (shp[0], int(np.prod(shp[1:]))), axis=1)

    def softmax(self, x: str, name: str = "softmax") -> str:
        return self._node("Softmax", [x], self._uniq(name), self.shape[x], axis=-1)

    def transpose(self, x: str, perm: Sequence[int], name: str = "transpose") -> str:
        shp = self.shape[x]
        return self._node("Transpose", [x], self._uniq(name), [shp[p] for p in perm], perm=list(perm))

    def reshape(self, x: str, shape: Sequence[int], name: str = "reshape") -> str:
        name = self._uniq(name)
        assert int(np.prod(shape)) == int(np.prod(self.shape[x]))
        if not self.dry:
            self.arrays[f"{name}/shape"] = np.array(shape, dtype=np.int64)
        return self._node("Reshape", [x, f"{name}/shape"], name, shape)

    def concat(self, xs: Sequence[str], axis: int, name: str = "concat") -> str:
        shp = list(self.shape[xs[0]])
        shp[axis] = sum(self.shape[t][axis] for t in xs)
        return self._node("Concat", list(xs), self._uniq(name), shp, axis=axis)

    def identity(self, x: str, name: str) -> str:
        """Give a graph output a stable public name by renaming its producer's output."""
        for node in self.nodes:
            node.output[:] = [name if o == x else o for o in node.output]
            node.input[:] = [name if i == x else i for i in node.input]
        self.shape[name] = self.shape[x]
        return name

    # -- composites ------------------------------------------------------------------------

    def conv_bn(self, x, cout, k, stride=1, pads="same", groups=1, bias=True, act="relu",
                eps=1e-3, name="conv") -> str:
        y = self.conv(x, cout, k, stride, pads, groups, bias, name=name)
        y = self.bn(y, eps=eps, name=f"{name}/bn")
        if act == "relu":
            y = self.relu(y, name=f"{name}/relu")
        elif act == "relu6":
            y = self.relu6(y, name=f"{name}/relu6")
        return y

    # -- BN calibration --------------------------------------------------------------------

    def _calibrate(self) -> None:
        """Set every BN's running statistics from a numpy float64 forward pass.

        The graph is interpreted in node order (it is built topologically); each BN's
        statistics are measured on its actual input just before it is applied, so
        every BN sees the already-calibrated network upstream. float64 keeps the
        result independent of the BLAS's summation order once rounded to float32.
        """
        if not self._bn_jitter:
            return
        consumers: dict[str, int] = {}
        for node in self.nodes:
            for i in node.input:
                consumers[i] = consumers.get(i, 0) + 1
        crng = np.random.default_rng([self.seed, 0xCA1B])  # own stream: weights stay put
        shape = self.inputs[0].type.tensor_type.shape
        dims = [d.dim_value for d in shape.dim]
        env = {self.inputs[0].name: crng.standard_normal([self.calib_batch] + dims[1:])}
        remaining = len(self._bn_jitter)
        for node in self.nodes:
            if remaining == 0:
                break
            a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
            xs = [env[i] if i in env else self.arrays[i].astype(np.float64) for i in node.input]
            op = node.op_type
            if op == "Conv":
                pt, pl, pb, pr = a["pads"]
                y = npref.conv2d(xs[0], xs[1], xs[2] if len(xs) > 2 else None, tuple(a["strides"]),
                                 (pt, pl, pb, pr), a["group"])
            elif op == "BatchNormalization":
                x = xs[0]
                axes = (0,) + tuple(range(2, x.ndim))
                mean, var = x.mean(axis=axes), x.var(axis=axes)
                var = np.maximum(var, 1e-2 * var.mean() + 1e-12)  # no channel blown up by a zero variance
                z, u = self._bn_jitter[node.name]
                mean = (mean + 0.1 * np.sqrt(var) * z).astype(np.float32)
                var = (var * u).astype(np.float32)
                self.arrays[node.input[3]], self.arrays[node.input[4]] = mean, var
                bshape = (1, -1) + (1,) * (x.ndim - 2)
                s = xs[1] / np.sqrt(var.astype(np.float64) + a["epsilon"])
                y = (x - mean.reshape(bshape)) * s.reshape(bshape) + xs[2].reshape(bshape)
                remaining -= 1
            elif op == "Relu":
                y = np.maximum(xs[0], 0.0)
            elif op == "Clip":
                y = np.clip(xs[0], xs[1], xs[2])
            elif op == "Add":
                y = xs[0] + xs[1]
            elif op in ("MaxPool", "AveragePool"):
                y = npref.pool2d(xs[0], a["kernel_shape"], a["strides"], a["pads"],
                                 "max" if op == "MaxPool" else "avg")
            elif op == "GlobalAveragePool":
                y = xs[0].mean(axis=(2, 3), keepdims=True)
            elif op == "Flatten":
                y = xs[0].reshape(xs[0].shape[0], -1)
            elif op == "Gemm":
                y = xs[0] @ xs[1].T + xs[2]
            else:
                raise NotImplementedError(f"calibration does not interpret {op} before the last BN")
            env[node.output[0]] = y
            for i in node.input:  # free activations nobody else reads
                if i in env:
                    consumers[i] -= 1
                    if consumers[i] == 0:
                        del env[i]

    # -- result ----------------------------------------------------------------------------

    def finish(self, outputs: Sequence[str], doc: str = "") -> onnx.ModelProto:
        if not self.dry:
            self._calibrate()
        inits = [numpy_helper.from_array(arr, nm) for nm, arr in self.arrays.items()]
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(self.shape[o])) for o in outputs]
        graph = helper.make_graph(self.nodes, self.name, self.inputs, outs, initializer=inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                 ir_version=IR_VERSION, producer_name="presil.zoo",
                                 producer_version="0.1", doc_string=doc)


# =========================================================================================
# MLPerf Tiny
# =========================================================================================

def resnet8(b: GraphBuilder) -> list[str]:
    """MLPerf Tiny IC: ``resnet_v1_eembc`` (mlcommons/tiny, keras_model.py), 16/32/64 filters.

    Keras Conv2D keeps its bias; the 1x1 stride-2 projection shortcut has no BN.
    """
    x = b.input("input", (1, 3, 32, 32))
    x = b.conv_bn(x, 16, 3, name="conv1")
    for stage, (f, s) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        y = b.conv_bn(x, f, 3, s, name=f"stack{stage}/conv1")
        y = b.conv_bn(y, f, 3, 1, act=None, name=f"stack{stage}/conv2")
        if s != 1:
            x = b.conv(x, f, 1, s, name=f"stack{stage}/shortcut")
        x = b.relu(b.add(x, y, name=f"stack{stage}/add"), name=f"stack{stage}/relu")
    x = b.avgpool(x, b.shape[x][2])  # AveragePooling2D(pool_size=8) on the 8x8 map
    x = b.gemm(b.flatten(x), 10, name="fc")
    return [b.identity(b.softmax(x), "output")]


def dscnn(b: GraphBuilder) -> list[str]:
    """MLPerf Tiny KWS: DS-CNN small (mlcommons/tiny keyword_spotting/keras_model.py).

    The published final pool is ``(int(49/2), int(10/2)) = (24, 5)`` over a 25x5 map
    (valid padding, stride = pool size): it averages the first 24 of 25 rows. Kept.
    """
    x = b.input("input", (1, 1, 49, 10))
    x = b.conv_bn(x, 64, (10, 4), 2, name="conv1")
    for i in range(1, 5):
        x = b.conv_bn(x, 64, 3, 1, groups=64, name=f"dw{i}")
        x = b.conv_bn(x, 64, 1, 1, name=f"pw{i}")
    x = b.avgpool(x, (24, 5))
    x = b.gemm(b.flatten(x), 12, name="fc")
    return [b.identity(b.softmax(x), "output")]


def _mobilenet_v1_blocks(b: GraphBuilder, x: str, alpha: float, act: str, bias: bool,
                         taps: Sequence[int] = ()) -> tuple[str, dict[int, str]]:
    """The 13 depthwise-separable blocks of MobileNetV1; returns the output and tapped blocks."""
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    tapped = {}
    for i, (f, s) in enumerate(cfg, start=1):
        c = b.shape[x][1]
        x = b.conv_bn(x, c, 3, s, groups=c, bias=bias, act=act, name=f"Conv2d_{i}_depthwise")
        x = b.conv_bn(x, int(f * alpha), 1, 1, bias=bias, act=act, name=f"Conv2d_{i}_pointwise")
        if i in taps:
            tapped[i] = x
    return x, tapped


def mobilenet_v1_025_vww(b: GraphBuilder) -> list[str]:
    """MLPerf Tiny VWW: MobileNetV1 alpha=0.25 (mlcommons/tiny vww_model.py): ReLU, biased convs."""
    x = b.input("input", (1, 3, 96, 96))
    x = b.conv_bn(x, 8, 3, 2, name="Conv2d_0")
    x, _ = _mobilenet_v1_blocks(b, x, 0.25, "relu", True)
    x = b.avgpool(x, b.shape[x][2:])  # AveragePooling2D(pool_size=x.shape[1:3]): 3x3
    x = b.gemm(b.flatten(x), 2, name="fc")
    return [b.identity(b.softmax(x), "output")]


def autoencoder_ad(b: GraphBuilder) -> list[str]:
    """MLPerf Tiny AD: dense autoencoder (mlcommons/tiny anomaly_detection/keras_model.py)."""
    x = b.input("input", (1, 640))
    for i, width in enumerate([128, 128, 128, 128, 8, 128, 128, 128, 128], start=1):
        x = b.relu(b.bn(b.gemm(x, width, name=f"dense{i}"), name=f"dense{i}/bn"), name=f"dense{i}/relu")
    x = b.gemm(x, 640, name="dense10")  # reconstruction: linear
    return [b.identity(x, "output")]


# =========================================================================================
# MLPerf Inference (edge)
# =========================================================================================

def resnet50_v1_5(b: GraphBuilder) -> list[str]:
    """ResNet-50 v1.5: the bottleneck's stride sits on the 3x3 conv (not the first 1x1).

    Symmetric padding (TF official model's ``fixed_padding`` / torchvision), bias-free
    convs, BN eps 1e-5, 1000 classes (the MLPerf TF checkpoint has a 1001st
    background logit; the topology is otherwise identical).
    """
    x = b.input("input", (1, 3, 224, 224))
    x = b.conv_bn(x, 64, 7, 2, pads=3, bias=False, eps=1e-5, name="conv1")
    x = b.maxpool(x, 3, 2, pads=1)
    for stage, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=2):
        for blk in range(blocks):
            s = stride if blk == 0 else 1
            p = f"layer{stage}.{blk}"
            y = b.conv_bn(x, width, 1, 1, pads=0, bias=False, eps=1e-5, name=f"{p}/conv1")
            y = b.conv_bn(y, width, 3, s, pads=1, bias=False, eps=1e-5, name=f"{p}/conv2")
            y = b.conv_bn(y, width * 4, 1, 1, pads=0, bias=False, eps=1e-5, act=None, name=f"{p}/conv3")
            if blk == 0:
                x = b.conv_bn(x, width * 4, 1, s, pads=0, bias=False, eps=1e-5, act=None, name=f"{p}/downsample")
            x = b.relu(b.add(x, y, name=f"{p}/add"), name=f"{p}/relu")
    x = b.global_avgpool(x)
    x = b.gemm(b.flatten(x), 1000, name="fc")
    return [b.identity(b.softmax(x), "output")]


SSD_NUM_CLASSES = 91  # 90 COCO classes + background, as in ssd_mobilenet_v1_coco_2018_01_28
SSD_ANCHORS_PER_LOCATION = [3, 6, 6, 6, 6, 6]  # reduce_boxes_in_lowest_layer: 3 on the 19x19 map


def ssd_mobilenet_v1(b: GraphBuilder) -> list[str]:
    """SSD-MobileNet v1 300x300 (TF Object Detection API, the MLPerf edge model).

    Backbone: MobileNetV1 1.0 (bias-free convs, BN eps 1e-3, ReLU6, TF SAME padding).
    Feature maps: Conv2d_11_pointwise (19x19x512), Conv2d_13_pointwise (10x10x1024), then
    extra layers 1x1 (depth/2) + 3x3 stride 2 of depths 512, 256, 256, 128 (5, 3, 2, 1).
    Heads: ConvolutionalBoxPredictor with 1x1 kernels (biased, no BN), box code 4 and
    91 class logits per anchor; 1917 anchors. Outputs are reshaped in NHWC order, as
    TF does, so anchor k of the graph is anchor k of the anchor generator.
    """
    x = b.input("input", (1, 3, 300, 300))
    x = b.conv_bn(x, 32, 3, 2, bias=False, act="relu6", name="Conv2d_0")
    x, tapped = _mobilenet_v1_blocks(b, x, 1.0, "relu6", False, taps=(11, 13))
    feats = [tapped[11], tapped[13]]
    x = tapped[13]
    for i, depth in enumerate([512, 256, 256, 128], start=2):
        y = b.conv_bn(x, depth // 2, 1, 1, bias=False, act="relu6", name=f"Conv2d_13_pointwise_1_Conv2d_{i}_1x1_{depth // 2}")
        x = b.conv_bn(y, depth, 3, 2, bias=False, act="relu6", name=f"Conv2d_13_pointwise_2_Conv2d_{i}_3x3_s2_{depth}")
        feats.append(x)
    boxes, classes = [], []
    for i, (f, a) in enumerate(zip(feats, SSD_ANCHORS_PER_LOCATION)):
        _, _, h, w = b.shape[f]
        bx = b.conv(f, a * 4, 1, 1, name=f"BoxPredictor_{i}/BoxEncodingPredictor")
        cl = b.conv(f, a * SSD_NUM_CLASSES, 1, 1, name=f"BoxPredictor_{i}/ClassPredictor")
        boxes.append(b.reshape(b.transpose(bx, (0, 2, 3, 1)), (1, h * w * a, 4)))
        classes.append(b.reshape(b.transpose(cl, (0, 2, 3, 1)), (1, h * w * a, SSD_NUM_CLASSES)))
    return [b.identity(b.concat(boxes, 1), "box_encodings"),
            b.identity(b.concat(classes, 1), "class_logits")]

"""digits_cnn: a small CNN trained in pure numpy on scikit-learn's 8x8 handwritten digits.

The zoo's one model with real trained weights, so accuracy (FP32 vs. quantized vs.
hardware) can be measured on real data without downloading anything: the 1797
digits ship inside scikit-learn.

    conv3x3 1->16 (pad 1) + ReLU       8x8
    conv3x3 16->32 stride 2 (pad 1) + ReLU   4x4
    conv3x3 32->32 (pad 1) + ReLU      4x4
    flatten (512) -> FC 10 (logits)

Training is bit-deterministic: fixed seeds, float64 arithmetic, single-threaded BLAS
(a multi-threaded BLAS may split sums differently), and the float32 weights are
rounded from float64 only at export. Retrain with

    python -m presil.host.zoo.digits --train -o host/zoo/data/digits_cnn.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np
import onnx

from . import npref
from .builders import GraphBuilder

SPLIT_SEED = 0
TRAIN_SEED = 0
TEST_FRACTION = 0.2
EPOCHS = 60
BATCH = 32
LR = 2e-3
WEIGHT_DECAY = 1e-4

# (name, out channels, stride) of the three convs; all 3x3, padding 1.
CONVS = [("conv1", 16, 1), ("conv2", 32, 2), ("conv3", 32, 1)]


def default_model_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("data", "digits_cnn.onnx")))


def digits_split(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION):
    """Deterministic stratified split of sklearn's digits.

    Returns (x_train, y_train, x_test, y_test): x float32 [N,1,8,8] in [0,1] (pixel
    values 0..16 divided by 16), y int64. Written out rather than using
    ``train_test_split`` so the split does not depend on scikit-learn's version.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / np.float32(16.0))[:, None, :, :]
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        test_idx.append(idx[: int(round(test_fraction * len(idx)))])
    test = np.zeros(len(y), bool)
    test[np.concatenate(test_idx)] = True
    train_idx, test_idx = np.flatnonzero(~test), np.flatnonzero(test)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


# -- model -----------------------------------------------------------------------------------

def init_params(seed: int = TRAIN_SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p, cin = {}, 1
    for name, cout, _ in CONVS:
        p[f"{name}/W"] = rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))
        p[f"{name}/B"] = np.zeros(cout)
        cin = cout
    p["fc/W"] = rng.standard_normal((10, cin * 16)) * np.sqrt(1.0 / (cin * 16))
    p["fc/B"] = np.zeros(10)
    return p


def forward(params: dict[str, np.ndarray], x: np.ndarray, cache: list | None = None) -> np.ndarray:
    """Logits [N,10]. Computes in float64 whatever the dtype of ``params``/``x``.

    With ``cache`` (a list) it records what :func:`backward` needs.
    """
    h = np.asarray(x, np.float64)
    for name, cout, s in CONVS:
        n = h.shape[0]
        cols, ho, wo = npref.im2col(h, 3, 3, (s, s), (1, 1, 1, 1))
        w = np.asarray(params[f"{name}/W"], np.float64)
        z = cols @ w.reshape(cout, -1).T + np.asarray(params[f"{name}/B"], np.float64)
        if cache is not None:
            cache.append((h.shape, cols, z))
        h = np.maximum(z, 0.0).reshape(n, ho, wo, cout).transpose(0, 3, 1, 2)
    flat = h.reshape(h.shape[0], -1)  # NCHW order, as ONNX Flatten
    if cache is not None:
        cache.append(flat)
    return flat @ np.asarray(params["fc/W"], np.float64).T + np.asarray(params["fc/B"], np.float64)


def backward(params, cache, dlogits) -> dict[str, np.ndarray]:
    grads = {}
    flat = cache[-1]
    grads["fc/W"] = dlogits.T @ flat
    grads["fc/B"] = dlogits.sum(0)
    dflat = dlogits @ params["fc/W"]
    (shape3, _, z3) = cache[2]
    n = shape3[0]
    # back to the [N*Ho*Wo, C] layout the conv matmuls use
    dh = dflat.reshape(n, CONVS[-1][1], 4, 4).transpose(0, 2, 3, 1).reshape(-1, CONVS[-1][1])
    for li in range(len(CONVS) - 1, -1, -1):
        name, cout, s = CONVS[li]
        in_shape, cols, z = cache[li]
        dz = dh * (z > 0)
        grads[f"{name}/W"] = (dz.T @ cols).reshape(params[f"{name}/W"].shape)
        grads[f"{name}/B"] = dz.sum(0)
        if li == 0:
            break
        dcols = dz @ params[f"{name}/W"].reshape(cout, -1)
        dx = _col2im(dcols, in_shape, s)
        dh = dx.transpose(0, 2, 3, 1).reshape(-1, in_shape[1])
    return grads


def _col2im(dcols: np.ndarray, in_shape, s: int) -> np.ndarray:
    """Adjoint of npref.im2col for 3x3 kernels with padding 1 (a fixed-order tap loop)."""
    n, c, h, w = in_shape
    ho, wo = (h - 1) // s + 1, (w - 1) // s + 1
    d = dcols.reshape(n, ho, wo, c, 3, 3)
    dxp = np.zeros((n, c, h + 2, w + 2))
    for i in range(3):
        for j in range(3):
            dxp[:, :, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, 1:-1, 1:-1]


def _shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Augmentation: translate each image by -1..1 pixel in each direction (zero fill)."""
    out = np.zeros_like(x)
    d = rng.integers(-1, 2, size=(len(x), 2))
    for k, (dy, dx) in enumerate(d):
        src = x[k, 0, max(0, -dy):8 - max(0, dy), max(0, -dx):8 - max(0, dx)]
        out[k, 0, max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


@contextlib.contextmanager
def _single_thread_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1):
        yield


def train(seed: int = TRAIN_SEED, epochs: int = EPOCHS, verbose: bool = False) -> dict[str, np.ndarray]:
    """Train with Adam (cosine-decayed LR, decoupled weight decay); float32 params out."""
    x_tr, y_tr, _, _ = digits_split()
    x_tr = x_tr.astype(np.float64)
    params = init_params(seed)
    rng = np.random.default_rng([seed, 1])  # shuffling / augmentation stream
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    steps_per_epoch = -(-len(x_tr) // BATCH)
    total, t = epochs * steps_per_epoch, 0
    with _single_thread_blas():
        for ep in range(epochs):
            order = rng.permutation(len(x_tr))
            loss_sum = 0.0
            for k in range(steps_per_epoch):
                idx = order[k * BATCH:(k + 1) * BATCH]
                xb, yb = _shift(x_tr[idx], rng), y_tr[idx]
                cache: list = []
                logits = forward(params, xb, cache)
                prob = npref.softmax(logits)
                loss_sum += -np.log(prob[np.arange(len(yb)), yb] + 1e-12).sum()
                dlogits = prob
                dlogits[np.arange(len(yb)), yb] -= 1.0
                grads = backward(params, cache, dlogits / len(yb))
                t += 1
                lr = LR * 0.5 * (1.0 + np.cos(np.pi * (t - 1) / total))
                for name in params:
                    g = grads[name]
                    m[name] = b1 * m[name] + (1 - b1) * g
                    v[name] = b2 * v[name] + (1 - b2) * g * g
                    mh = m[name] / (1 - b1**t)
                    vh = v[name] / (1 - b2**t)
                    params[name] = params[name] * (1 - lr * WEIGHT_DECAY) - lr * mh / (np.sqrt(vh) + eps)
            if verbose:
                print(f"epoch {ep + 1:3d}  loss {loss_sum / len(x_tr):.4f}", file=sys.stderr)
    return {k: val.astype(np.float32) for k, val in params.items()}


# -- ONNX ------------------------------------------------------------------------------------

def graph(b: GraphBuilder, params: dict[str, np.ndarray] | None) -> list[str]:
    """The digits CNN in a GraphBuilder, with ``params`` (None only for a dry build)."""
    p = params or {}
    x = b.input("input", (1, 1, 8, 8))
    for name, cout, s in CONVS:
        x = b.conv(x, cout, 3, s, pads=1, name=name, w=p.get(f"{name}/W"), b=p.get(f"{name}/B"))
        x = b.relu(x, name=f"{name}/relu")
    x = b.gemm(b.flatten(x), 10, name="fc", w=p.get("fc/W"), b=p.get("fc/B"))
    return [b.identity(x, "logits")]


def to_onnx(params: dict[str, np.ndarray]) -> onnx.ModelProto:
    b = GraphBuilder("digits_cnn")
    outs = graph(b, params)
    return b.finish(outs, doc="digits_cnn: sklearn 8x8 digits CNN trained by presil.host.zoo.digits "
                              f"(split seed {SPLIT_SEED}, train seed {TRAIN_SEED}, {EPOCHS} epochs). "
                              "Input 1x1x8x8 in [0,1]; output logits.")


def params_from_onnx(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}


def onnx_logits(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """onnxruntime logits for a batch, one image at a time (the model has batch 1)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i:i + 1].astype(np.float32)})[0] for i in range(len(x))])


def heldout_accuracy(model: onnx.ModelProto | None = None) -> float:
    """FP32 accuracy of ``model`` (default: the checked-in one) on the held-out split, via onnxruntime."""
    if model is None:
        model = onnx.load(str(default_model_path()))
    _, _, x_te, y_te = digits_split()
    return float((onnx_logits(model, x_te).argmax(1) == y_te).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m presil.host.zoo.digits", description=__doc__.split("\n")[0])
    ap.add_argument("--train", action="store_true", help="retrain from scratch and write the ONNX model")
    ap.add_argument("-o", "--output", type=Path, default=default_model_path(), help="ONNX path to write")
    ap.add_argument("--eval", type=Path, nargs="?", const=default_model_path(), metavar="ONNX",
                    help="report held-out FP32 accuracy of a model (default: the checked-in one)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not args.train and args.eval is None:
        ap.print_help()
        return 2
    if args.train:
        t0 = time.perf_counter()
        params = train(verbose=args.verbose)
        dt = time.perf_counter() - t0
        model = to_onnx(params)
        onnx.checker.check_model(model, full_check=True)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_bytes(model.SerializeToString())
        print(f"trained in {dt:.1f} s; held-out FP32 accuracy {heldout_accuracy(model):.4f}; wrote {args.output}")
    if args.eval is not None:
        print(f"{args.eval}: held-out FP32 accuracy {heldout_accuracy(onnx.load(str(args.eval))):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

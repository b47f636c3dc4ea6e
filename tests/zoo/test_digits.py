"""digits_cnn: the split, the numpy trainer, its ONNX export, the checked-in model."""

from __future__ import annotations

import time

import numpy as np
import onnx
import pytest

from presil.host import zoo
from presil.host.zoo import digits, npref


@pytest.fixture(scope="module")
def split():
    return digits.digits_split()


@pytest.fixture(scope="module")
def checked_in() -> onnx.ModelProto:
    return onnx.load(str(digits.default_model_path()))


def test_split_is_stratified_deterministic_and_disjoint(split):
    x_tr, y_tr, x_te, y_te = split
    assert x_tr.dtype == x_te.dtype == np.float32 and x_tr.shape[1:] == (1, 8, 8)
    assert len(x_tr) + len(x_te) == 1797 and abs(len(x_te) / 1797 - 0.2) < 0.01
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0
    for c in range(10):  # every class is split 80/20
        n_c = (y_tr == c).sum() + (y_te == c).sum()
        assert abs((y_te == c).sum() - 0.2 * n_c) <= 1
    again = digits.digits_split()
    assert all(np.array_equal(a, b) for a, b in zip(split, again))
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}
    # no image of the held-out split occurs in the training split (sklearn's digits has no duplicates)
    assert not rows(x_tr) & rows(x_te)


def test_checked_in_model_is_registered(checked_in):
    assert zoo.build("digits_cnn").SerializeToString() == checked_in.SerializeToString()
    onnx.checker.check_model(checked_in, full_check=True)
    assert zoo.info("digits_cnn").input_shape == (1, 1, 8, 8)


def test_heldout_fp32_accuracy(checked_in, split):
    _, _, x_te, y_te = split
    acc = float((digits.onnx_logits(checked_in, x_te).argmax(1) == y_te).mean())
    print(f"\ndigits_cnn held-out FP32 accuracy (onnxruntime): {acc:.4f} ({len(y_te)} images)")
    assert acc >= 0.97


def test_numpy_forward_equals_onnxruntime(checked_in, split):
    """The trainer's forward on the exported weights reproduces onnxruntime: the export is right."""
    _, _, x_te, _ = split
    params = digits.params_from_onnx(checked_in)
    ref = digits.forward(params, x_te)
    got = digits.onnx_logits(checked_in, x_te)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(3)
    p = digits.init_params(1)
    p = {k: v + 0.05 * rng.standard_normal(v.shape) for k, v in p.items()}  # nonzero biases too
    x, y = rng.random((4, 1, 8, 8)), np.array([1, 5, 7, 9])

    def loss(q):
        pr = npref.softmax(digits.forward(q, x))
        return -np.log(pr[np.arange(4), y]).mean()

    cache: list = []
    pr = npref.softmax(digits.forward(p, x, cache))
    pr[np.arange(4), y] -= 1
    grads = digits.backward(p, cache, pr / 4)
    for k in p:
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in p[k].shape)
            q = {a: b.copy() for a, b in p.items()}
            q[k][idx] += 1e-6
            lp = loss(q)
            q[k][idx] -= 2e-6
            num = (lp - loss(q)) / 2e-6
            assert abs(num - grads[k][idx]) <= 1e-6 + 1e-4 * abs(num), (k, idx)


def test_retraining_reproduces_checked_in_model_bit_for_bit(checked_in):
    t0 = time.perf_counter()
    model = digits.to_onnx(digits.train())
    print(f"\ndigits_cnn retrained in {time.perf_counter() - t0:.1f} s")
    assert model.SerializeToString() == checked_in.SerializeToString()

"""Calibration and evaluation inputs for zoo models.

digits_cnn has real data (sklearn's digits: calibration from the training
split, evaluation from the held-out split). The other zoo models have seeded
weights and no shipped dataset, so they get seeded synthetic inputs (standard
normal, numpy default_rng) -- announced as such by whoever uses them.
"""

from __future__ import annotations

import numpy as np

from presil.host import zoo

CALIB_SEED = 0
EVAL_SEED = 1000
# Calibration runs the FP32 model with every activation exposed: keep the big models short.
_CALIB_N = {"resnet50_v1_5": 4, "ssd_mobilenet_v1": 4}


def has_real_data(name: str) -> bool:
    return name == "digits_cnn"


def calibration(name: str, n: int | None = None) -> tuple[list[np.ndarray], str]:
    """(samples, one-line description) for zoo model `name`."""
    info = zoo.info(name)
    n = n or _CALIB_N.get(name, 16)
    if has_real_data(name):
        from presil.host.zoo.digits import digits_split
        x_train = digits_split()[0]
        return [x_train[i:i + 1] for i in range(min(n * 8, len(x_train)))], \
            f"{min(n * 8, len(x_train))} samples of the digits training split"
    rng = np.random.default_rng(CALIB_SEED)
    xs = [rng.standard_normal(info.input_shape).astype(np.float32) for _ in range(n)]
    return xs, (f"{n} seeded synthetic samples (standard normal, numpy default_rng({CALIB_SEED})): "
                f"{name} ships no dataset")


def samples(name: str, n: int) -> tuple[list[np.ndarray], np.ndarray | None, str]:
    """(inputs, labels or None, description) for evaluating zoo model `name`."""
    info = zoo.info(name)
    if has_real_data(name):
        from presil.host.zoo.digits import digits_split
        _, _, x_test, y_test = digits_split()
        n = min(n, len(x_test))
        return [x_test[i:i + 1] for i in range(n)], y_test[:n], f"{n} held-out digits"
    rng = np.random.default_rng(EVAL_SEED)
    return ([rng.standard_normal(info.input_shape).astype(np.float32) for _ in range(n)], None,
            f"{n} seeded synthetic inputs (default_rng({EVAL_SEED}))")


def is_classifier(name: str) -> bool:
    """Whether top-1 agreement means something for the zoo model."""
    task = zoo.info(name).task
    return "classification" in task or "spotting" in task or "wake" in task

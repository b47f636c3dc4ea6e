"""Accuracy scripts: ROC AUC by hand and against scikit-learn, top-1 from a log, hash, target."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from presil.host.mlperf import accuracy
from presil.host.mlperf.submission import copy_accuracy_log


def test_auc_hand_checked_example():
    # Positives score 0.8, 0.4, 0.35; negatives 0.1, 0.4, 0.5.
    # Pairs (pos > neg): 0.8 beats 3; 0.4 beats 0.1, ties 0.4 (1/2), loses to 0.5;
    # 0.35 beats 0.1 only. U = 3 + 1.5 + 1 = 5.5 of 9 pairs.
    labels = [1, 1, 1, 0, 0, 0]
    scores = [0.8, 0.4, 0.35, 0.1, 0.4, 0.5]
    assert accuracy.roc_auc(labels, scores) == pytest.approx(5.5 / 9)
    assert accuracy.roc_auc([0, 1], [0.0, 1.0]) == 1.0
    assert accuracy.roc_auc([1, 0], [0.0, 1.0]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.standard_normal(300) + y * 0.7, 1)  # rounded: many ties
    assert accuracy.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_needs_both_classes():
    with pytest.raises(accuracy.AccuracyError, match="both"):
        accuracy.roc_auc([1, 1], [0.1, 0.2])


def _write_log(path, outputs):
    entries = [{"seq_id": i, "qsl_idx": idx, "data": np.asarray(o, np.float32).tobytes().hex()}
               for i, (idx, o) in enumerate(outputs)]
    path.write_text(json.dumps(entries))


def test_top1_from_log_and_hash(tmp_path):
    labels = np.array([3, 1, 4, 1, 5])
    outs = []
    for idx, lab in enumerate(labels):
        logits = np.zeros(10)
        logits[lab if idx != 2 else 0] = 1.0  # sample 2 is wrong
        outs.append((idx, logits))
    log = tmp_path / "mlperf_log_accuracy.json"
    _write_log(log, outs[::-1])  # completion order need not be index order
    r = accuracy.score(log, labels, "classification", classes=10)
    assert (r.good, r.total) == (4, 5)
    assert r.line == "accuracy=80.000%, good=4, total=5"
    txt = tmp_path / "accuracy.txt"
    accuracy.write_accuracy_txt(r, txt, target=accuracy.check_target(80.0, 81.0))
    lines = txt.read_text().splitlines()
    assert lines[0] == r.line
    assert lines[1] == "target: FAIL 80.0000 < 0.99 x FP32 81.0000 = 80.1900"
    assert lines[-1] == "hash=" + hashlib.sha256(log.read_bytes()).hexdigest()


def test_target_check():
    # ResNet-50: 0.99 x 76.46 = 75.6954 (published rounded as 75.695).
    assert accuracy.check_target(75.70, 76.46)["pass"]
    assert not accuracy.check_target(75.69, 76.46)["pass"]
    assert accuracy.check_target(0.85, 0.858)["pass"] and not accuracy.check_target(0.84, 0.858)["pass"]


def test_anomaly_score_auc_from_log(tmp_path):
    log = tmp_path / "log.json"
    _write_log(log, [(0, [0.1]), (1, [0.9]), (2, [0.2]), (3, [0.7])])
    r = accuracy.score(log, np.array([0, 1, 0, 1]), "anomaly")
    assert r.metric == "auc" and r.value == 1.0


def test_detection_needs_coco(tmp_path):
    log = tmp_path / "log.json"
    _write_log(log, [(0, [0.1])])
    with pytest.raises(accuracy.AccuracyError, match="COCO annotations"):
        accuracy.score(log, np.array([0]), "detection")


def test_large_accuracy_log_is_truncated_as_mlperf_does(tmp_path):
    src = tmp_path / "big.json"
    src.write_bytes(bytes(range(256)) * 100)  # 25.6 KiB
    dst = tmp_path / "small.json"
    copy_accuracy_log(src, dst)
    data = dst.read_bytes()
    assert data.startswith(src.read_bytes()[:4096]) and data.endswith(src.read_bytes()[-4096:])
    assert len(data) < 10 * 1024

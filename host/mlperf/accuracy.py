"""Accuracy scripts: mlperf_log_accuracy.json -> accuracy.txt.

The log holds, per sample, the response bytes the backend returned
(backend.encode_result): float32 outputs for classifiers (the first
`classes` values are the logits or probabilities), one float32 anomaly score
for the autoencoder. As MLPerf's scripts do, accuracy.txt ends with
`hash=<sha256 of the accuracy log>` so the truncated log in a submission
can be tied to the full one.

The closed-division target: the int8 result must reach 99% of the FP32
result of the same model, and the FP32 reference is our own onnxruntime run
of the model on the same samples (OnnxBackend), not a published number.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .datasets import TASK_ANOMALY, TASK_CLASSIFICATION, TASK_DETECTION

TARGET_FRACTION = 0.99


class AccuracyError(ValueError):
    pass


@dataclass
class AccuracyResult:
    metric: str  # "top1" | "auc" | "mAP"
    value: float  # top-1 in percent, AUC in [0, 1]
    good: int
    total: int
    line: str  # the accuracy.txt line
    hash: str

    def to_dict(self) -> dict:
        return asdict(self)


def read_log(path: str | Path) -> list[dict]:
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AccuracyError(f"{path}: not a LoadGen accuracy log ({exc})") from None
    if not isinstance(entries, list):
        raise AccuracyError(f"{path}: expected a JSON list")
    return entries


def decode(entries: list[dict]) -> dict[int, np.ndarray]:
    """qsl_idx -> float32 response (the last one wins; accuracy mode issues
    each sample once)."""
    out = {}
    for e in entries:
        raw = bytes.fromhex(e["data"])
        out[int(e["qsl_idx"])] = np.frombuffer(raw[: len(raw) // 4 * 4], np.float32)
    return out


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the probability that a random positive
    scores above a random negative, ties counting one half (Mann-Whitney U
    with average ranks)."""
    y = np.asarray(labels).astype(bool).reshape(-1)
    s = np.asarray(scores, np.float64).reshape(-1)
    if y.size != s.size:
        raise AccuracyError(f"{y.size} labels but {s.size} scores")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise AccuracyError("AUC needs both positive and negative samples")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(s.size, np.float64)
    # Average rank over each run of equal scores.
    bounds = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [s.size]))
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # ranks a+1..b averaged
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def score(log_path: str | Path, labels, task: str, *, classes: int = 0) -> AccuracyResult:
    entries = read_log(log_path)
    if not entries:
        raise AccuracyError(f"{log_path}: empty (was the test run in accuracy mode?)")
    digest = file_sha256(log_path)
    res = decode(entries)
    labels = np.asarray(labels)
    idx = np.array(sorted(res))
    if idx.max() >= len(labels):
        raise AccuracyError(f"log has sample {idx.max()} but the dataset has {len(labels)} labels")
    if task == TASK_CLASSIFICATION:
        n = classes or min(len(v) for v in res.values())
        pred = np.array([int(np.argmax(res[i][:n])) for i in idx])
        good = int((pred == labels[idx]).sum())
        total = len(idx)
        value = 100.0 * good / total
        line = f"accuracy={value:.3f}%, good={good}, total={total}"
        return AccuracyResult("top1", value, good, total, line, digest)
    if task == TASK_ANOMALY:
        scores = np.array([float(res[i][0]) for i in idx])
        auc = roc_auc(labels[idx], scores)
        line = f"auc={auc:.4f}, total={len(idx)}"
        return AccuracyResult("auc", auc, 0, len(idx), line, digest)
    if task == TASK_DETECTION:
        raise AccuracyError("mAP needs COCO annotations (annotations/instances_val2017.json) and pycocotools; "
                            "box decoding and NMS for SSD-MobileNet are not implemented in this harness yet")
    raise AccuracyError(f"no accuracy script for task {task!r}")


def write_accuracy_txt(result: AccuracyResult, path: str | Path, *, target: dict | None = None) -> None:
    lines = [result.line]
    if target:
        lines.append(target["line"])
    lines.append(f"hash={result.hash}")
    Path(path).write_text("\n".join(lines) + "\n")


def check_target(value: float, fp32_value: float, fraction: float = TARGET_FRACTION) -> dict:
    """MLPerf closed target: value >= fraction x FP32 value (same metric)."""
    need = fraction * fp32_value
    ok = value >= need
    line = (f"target: {'PASS' if ok else 'FAIL'} {value:.4f} {'>=' if ok else '<'} {fraction:g} x FP32 "
            f"{fp32_value:.4f} = {need:.4f}")
    return {"pass": bool(ok), "value": value, "fp32": fp32_value, "required": need, "fraction": fraction,
            "line": line}


def main(argv: list[str] | None = None) -> int:
    """python -m presil.host.mlperf.accuracy LOG --dataset digits [--classes 10]"""
    import argparse

    from .datasets import open_dataset

    p = argparse.ArgumentParser(prog="presil-mlperf-accuracy")
    p.add_argument("log")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--dataset-path")
    p.add_argument("--task", default=TASK_CLASSIFICATION)
    p.add_argument("--classes", type=int, default=0)
    p.add_argument("-o", "--output")
    a = p.parse_args(argv)
    ds = open_dataset(a.dataset, path=a.dataset_path)
    r = score(a.log, ds.labels, a.task, classes=a.classes)
    if a.output:
        write_accuracy_txt(r, a.output)
    print(r.line)
    print(f"hash={r.hash}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dataset loaders for the MLPerf harness: each yields float32 model inputs
(batch 1, the model's layout) and ground-truth labels.

Only the digits set ships with presil (inside scikit-learn); the others are
"for users who have the data": a missing or malformed folder raises
DatasetError naming the layout expected. The synthetic set is seeded random
data of any shape, for timing runs where accuracy does not matter.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

TASK_CLASSIFICATION = "classification"
TASK_ANOMALY = "anomaly"  # label 1 = anomalous; metric ROC AUC
TASK_DETECTION = "detection"


class DatasetError(ValueError):
    """Missing or malformed dataset; the message names the expected layout."""


@dataclass
class Dataset:
    """An indexable dataset. `loader(i)` returns sample i as float32 with the
    model's input shape (batch 1 included); labels[i] its ground truth."""

    name: str
    task: str
    input_shape: tuple[int, ...]
    labels: np.ndarray
    loader: Callable[[int], np.ndarray] = field(repr=False)
    classes: int = 0
    notes: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> np.ndarray:
        x = np.asarray(self.loader(int(index)), dtype=np.float32)
        if x.shape != tuple(self.input_shape):
            x = x.reshape(self.input_shape)
        return x

    def subset(self, count: int | None) -> "Dataset":
        """The first `count` samples (all when None or larger than the set)."""
        if count is None or count >= len(self):
            return self
        if count <= 0:
            raise DatasetError(f"count must be positive, got {count}")
        return Dataset(self.name, self.task, self.input_shape, self.labels[:count], self.loader,
                       self.classes, self.notes + f" (first {count})")


# --------------------------------------------------------------------------
# digits (real, shipped with scikit-learn)
# --------------------------------------------------------------------------

def digits(split: str = "test") -> Dataset:
    """sklearn 8x8 digits, the zoo's seeded 80/20 split (NCHW 1x1x8x8 in [0, 1])."""
    from presil.host.zoo.digits import digits_split

    x_tr, y_tr, x_te, y_te = digits_split()
    if split not in ("test", "train"):
        raise DatasetError(f"digits split must be 'test' or 'train', not {split!r}")
    x, y = (x_te, y_te) if split == "test" else (x_tr, y_tr)
    x = np.ascontiguousarray(x, dtype=np.float32)
    return Dataset("digits", TASK_CLASSIFICATION, (1,) + x.shape[1:], np.asarray(y, np.int64),
                   lambda i: x[i:i + 1], classes=10,
                   notes=f"sklearn digits, presil.host.zoo.digits.digits_split() {split} split")


# --------------------------------------------------------------------------
# synthetic (seeded)
# --------------------------------------------------------------------------

def synthetic(input_shape: Sequence[int], count: int = 1024, *, classes: int = 10, seed: int = 0,
              task: str = TASK_CLASSIFICATION) -> Dataset:
    """Seeded N(0, 1) inputs with seeded random labels: timing only, its
    accuracy is meaningless. Sample i is generated from (seed, i), so a subset
    or another process sees the same data."""
    shape = tuple(int(d) for d in input_shape)
    labels = np.random.default_rng([seed, 1 << 20]).integers(0, max(classes, 2), count)

    def load(i: int) -> np.ndarray:
        return np.random.default_rng([seed, i]).standard_normal(shape, dtype=np.float32)

    return Dataset("synthetic", task, shape, labels, load, classes=classes,
                   notes=f"seeded N(0,1), seed {seed}: timing only, accuracy meaningless")


# --------------------------------------------------------------------------
# image helpers (numpy; Pillow only to decode compressed images)
# --------------------------------------------------------------------------

_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".JPEG", ".JPG", ".PNG")


def _read_image(path: Path) -> np.ndarray:
    """HWC uint8 RGB. `.npy` files (HWC uint8) need nothing; compressed
    formats need Pillow."""
    if path.suffix == ".npy":
        a = np.load(path)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        return a
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError(f"decoding {path.name} needs Pillow (pip install pillow); "
                           "without it, store images as HWC uint8 .npy files") from None
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def resize_bilinear(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of an HWC image (half-pixel centres, as cv2/Pillow)."""
    ih, iw = img.shape[:2]
    ys = np.clip((np.arange(h) + 0.5) * ih / h - 0.5, 0, ih - 1)
    xs = np.clip((np.arange(w) + 0.5) * iw / w - 0.5, 0, iw - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, ih - 1), np.minimum(x0 + 1, iw - 1)
    wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    f = img.astype(np.float32)
    top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
    bot = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
    return top * (1 - wy) + bot * wy


def preprocess_image(img: np.ndarray, size: int, *, crop_fraction: float = 0.875,
                     mean=(123.68, 116.78, 103.94), std=(1.0, 1.0, 1.0),
                     layout: str = "NCHW") -> np.ndarray:
    """MLPerf ResNet-50 style: resize the short side to size/crop_fraction,
    centre-crop size x size, subtract the channel mean (divide by std)."""
    h, w = img.shape[:2]
    short = size / crop_fraction
    scale = short / min(h, w)
    img = resize_bilinear(img, max(size, round(h * scale)), max(size, round(w * scale)))
    h, w = img.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    img = img[top:top + size, left:left + size]
    img = (img - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    out = img.astype(np.float32)[None]
    return out.transpose(0, 3, 1, 2) if layout == "NCHW" else out


def _need_dir(root, layout: str) -> Path:
    p = Path(root) if root else None
    if p is None or not p.is_dir():
        raise DatasetError(f"dataset folder {root!r} not found; expected layout:\n{layout}")
    return p


# --------------------------------------------------------------------------
# ImageNet-style folder
# --------------------------------------------------------------------------

IMAGENET_LAYOUT = """  ROOT/<class_name>/<image>.{jpg,png,npy}     (one subfolder per class, sorted = label order)
or
  ROOT/val_map.txt  with lines '<relative image path> <label>'  (MLPerf's val_map.txt)"""


def image_folder(root, *, size: int = 224, input_shape: Sequence[int] | None = None,
                 mean=(123.68, 116.78, 103.94), std=(1.0, 1.0, 1.0), crop_fraction: float = 0.875,
                 name: str = "imagenet") -> Dataset:
    """ImageNet-style classification folder: class subfolders, or a val map."""
    base = _need_dir(root, IMAGENET_LAYOUT)
    vmap = base / "val_map.txt"
    files: list[Path] = []
    labels: list[int] = []
    if vmap.is_file():
        for ln, line in enumerate(vmap.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise DatasetError(f"{vmap}:{ln}: expected '<image> <label>', got {line!r}")
            files.append(base / parts[0])
            labels.append(int(parts[1]))
    else:
        classes = sorted(d.name for d in base.iterdir() if d.is_dir())
        for label, c in enumerate(classes):
            for f in sorted((base / c).iterdir()):
                if f.suffix in _IMAGE_EXT + (".npy",):
                    files.append(f)
                    labels.append(label)
    if not files:
        raise DatasetError(f"no images under {base}; expected layout:\n{IMAGENET_LAYOUT}")
    shape = tuple(input_shape) if input_shape else (1, 3, size, size)

    def load(i: int) -> np.ndarray:
        return preprocess_image(_read_image(files[i]), size, crop_fraction=crop_fraction,
                                mean=mean, std=std)

    return Dataset(name, TASK_CLASSIFICATION, shape, np.asarray(labels, np.int64), load,
                   classes=int(max(labels)) + 1, notes=f"{len(files)} images from {base}")


# --------------------------------------------------------------------------
# CIFAR-10 (python pickle batches)
# --------------------------------------------------------------------------

CIFAR_LAYOUT = """  ROOT/test_batch  (and/or data_batch_1..5): the CIFAR-10 'python version'
  pickles (cifar-10-batches-py), each a dict with b'data' (N x 3072 uint8) and b'labels'"""


def cifar10(root, *, split: str = "test", scale: float = 1 / 255.0) -> Dataset:
    """CIFAR-10 from the python pickle batches; NCHW 1x3x32x32 scaled to [0, 1]
    (MLPerf Tiny IC feeds pixels / 255)."""
    base = _need_dir(root, CIFAR_LAYOUT)
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    xs, ys = [], []
    for n in names:
        f = base / n
        if not f.is_file():
            raise DatasetError(f"{f} missing; expected layout:\n{CIFAR_LAYOUT}")
        with open(f, "rb") as fh:
            d = pickle.load(fh, encoding="bytes")
        try:
            xs.append(np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], np.int64))
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"{f}: not a CIFAR-10 batch ({exc}); expected layout:\n{CIFAR_LAYOUT}") from None
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    return Dataset("cifar10", TASK_CLASSIFICATION, (1, 3, 32, 32), y,
                   lambda i: x[i:i + 1].astype(np.float32) * scale, classes=10,
                   notes=f"CIFAR-10 {split} from {base}")


# --------------------------------------------------------------------------
# Speech Commands (precomputed MFCC)
# --------------------------------------------------------------------------

KWS_LAYOUT = """  ROOT/<label>/<clip>.npy  each a 49x10 float32 MFCC (MLPerf Tiny KWS front end, computed beforehand)
  with the 12 labels: down go left no off on right stop up yes _silence_ _unknown_
  (subfolders are matched by these names; other names are rejected)"""
KWS_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes",
              "_silence_", "_unknown_")


def speech_commands(root) -> Dataset:
    """Speech Commands v2 as precomputed 49x10 MFCCs; NCHW 1x1x49x10."""
    base = _need_dir(root, KWS_LAYOUT)
    files, labels = [], []
    for d in sorted(p for p in base.iterdir() if p.is_dir()):
        if d.name not in KWS_LABELS:
            raise DatasetError(f"unexpected class folder {d.name!r}; expected layout:\n{KWS_LAYOUT}")
        for f in sorted(d.glob("*.npy")):
            files.append(f)
            labels.append(KWS_LABELS.index(d.name))
    if not files:
        raise DatasetError(f"no .npy MFCC files under {base}; expected layout:\n{KWS_LAYOUT}")

    def load(i: int) -> np.ndarray:
        a = np.load(files[i]).astype(np.float32)
        if a.size != 490:
            raise DatasetError(f"{files[i]}: shape {a.shape}, expected 49x10 MFCC")
        return a.reshape(1, 1, 49, 10)

    return Dataset("speech_commands", TASK_CLASSIFICATION, (1, 1, 49, 10), np.asarray(labels, np.int64),
                   load, classes=12, notes=f"{len(files)} MFCC clips from {base}")


# --------------------------------------------------------------------------
# Visual Wake Words
# --------------------------------------------------------------------------

VWW_LAYOUT = """  ROOT/person/<image>.{jpg,png,npy}
  ROOT/non_person/<image>.{jpg,png,npy}     (label 1 = person, 0 = non_person)"""


def vww(root, *, size: int = 96) -> Dataset:
    """Visual Wake Words as two folders; resized to size x size, pixels / 255."""
    base = _need_dir(root, VWW_LAYOUT)
    files, labels = [], []
    for label, sub in ((0, "non_person"), (1, "person")):
        d = base / sub
        if not d.is_dir():
            raise DatasetError(f"{d} missing; expected layout:\n{VWW_LAYOUT}")
        for f in sorted(d.iterdir()):
            if f.suffix in _IMAGE_EXT + (".npy",):
                files.append(f)
                labels.append(label)
    if not files:
        raise DatasetError(f"no images under {base}; expected layout:\n{VWW_LAYOUT}")

    def load(i: int) -> np.ndarray:
        img = resize_bilinear(_read_image(files[i]), size, size) / 255.0
        return img.astype(np.float32).transpose(2, 0, 1)[None]

    return Dataset("vww", TASK_CLASSIFICATION, (1, 3, size, size), np.asarray(labels, np.int64), load,
                   classes=2, notes=f"{len(files)} images from {base}")


# --------------------------------------------------------------------------
# COCO (detection): accuracy needs the annotations
# --------------------------------------------------------------------------

COCO_LAYOUT = """  ROOT/annotations/instances_val2017.json and ROOT/val2017/<image>.jpg
  (mAP also needs pycocotools)"""


def coco(root, *, size: int = 300) -> Dataset:
    base = _need_dir(root, COCO_LAYOUT)
    ann = base / "annotations" / "instances_val2017.json"
    if not ann.is_file():
        raise DatasetError(f"needs COCO annotations: {ann} missing; expected layout:\n{COCO_LAYOUT}")
    import json
    meta = json.loads(ann.read_text())
    images = sorted(meta["images"], key=lambda m: m["id"])
    files = [base / "val2017" / m["file_name"] for m in images]

    def load(i: int) -> np.ndarray:
        img = resize_bilinear(_read_image(files[i]), size, size)
        return ((img - 127.5) / 127.5).astype(np.float32).transpose(2, 0, 1)[None]

    return Dataset("coco", TASK_DETECTION, (1, 3, size, size), np.asarray([m["id"] for m in images]),
                   load, classes=91, notes=f"COCO val2017 from {base}")


# --------------------------------------------------------------------------
# the registry the CLI and the worker use
# --------------------------------------------------------------------------

# Default dataset per zoo model: the set it was designed for.
MODEL_DATASETS = {
    "digits_cnn": "digits",
    "resnet8": "cifar10",
    "dscnn": "speech_commands",
    "mobilenet_v1_025_vww": "vww",
    "autoencoder_ad": "synthetic",
    "resnet50_v1_5": "imagenet",
    "ssd_mobilenet_v1": "coco",
}


def open_dataset(kind: str, *, path=None, input_shape: Sequence[int] | None = None, count: int | None = None,
                 seed: int = 0, classes: int = 10, task: str = TASK_CLASSIFICATION) -> Dataset:
    """Build a dataset from a JSON-able description (used in the test process)."""
    if kind == "digits":
        ds = digits(path or "test")
    elif kind == "synthetic":
        if input_shape is None:
            raise DatasetError("the synthetic dataset needs an input shape")
        ds = synthetic(input_shape, count or 1024, seed=seed, classes=classes, task=task)
    elif kind == "imagenet":
        size = int(input_shape[-1]) if input_shape else 224
        ds = image_folder(path, size=size, input_shape=input_shape)
    elif kind == "cifar10":
        ds = cifar10(path)
    elif kind == "speech_commands":
        ds = speech_commands(path)
    elif kind == "vww":
        ds = vww(path, size=int(input_shape[-1]) if input_shape else 96)
    elif kind == "coco":
        ds = coco(path, size=int(input_shape[-1]) if input_shape else 300)
    else:
        raise DatasetError(f"unknown dataset {kind!r}; known: digits, synthetic, imagenet, cifar10, "
                           "speech_commands, vww, coco")
    if input_shape is not None and tuple(ds.input_shape) != tuple(input_shape) and kind != "synthetic":
        if int(np.prod(ds.input_shape)) != int(np.prod(input_shape)):
            raise DatasetError(f"dataset {kind} gives inputs of shape {ds.input_shape}, "
                               f"the model expects {tuple(input_shape)}")
        ds.input_shape = tuple(input_shape)
    return ds.subset(count)

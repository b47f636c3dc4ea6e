"""Dataset loaders: the shipped digits, the seeded synthetic set, and the
"for users who have the data" loaders on tiny fakes in their expected layouts."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from presil.host.mlperf import datasets as D
from presil.host.mlperf.qsl import QSL


def test_digits_is_the_zoo_split():
    from presil.host.zoo.digits import digits_split

    ds = D.digits()
    _, _, x_te, y_te = digits_split()
    assert len(ds) == len(y_te) == 359 and ds.input_shape == (1, 1, 8, 8)
    np.testing.assert_array_equal(ds.load(7), x_te[7:8])
    assert ds.subset(10).labels.tolist() == list(y_te[:10])


def test_synthetic_is_seeded_per_sample():
    a = D.synthetic((1, 3, 4, 4), count=20, seed=3)
    b = D.synthetic((1, 3, 4, 4), count=5, seed=3)
    np.testing.assert_array_equal(a.load(4), b.load(4))
    assert not np.array_equal(a.load(4), D.synthetic((1, 3, 4, 4), seed=4).load(4))
    assert a.load(0).dtype == np.float32 and a.load(0).shape == (1, 3, 4, 4)


@pytest.mark.parametrize("kind,layout", [("imagenet", "val_map.txt"), ("cifar10", "test_batch"),
                                         ("speech_commands", "49x10 float32 MFCC"), ("vww", "non_person"),
                                         ("coco", "instances_val2017.json")])
def test_missing_data_names_the_expected_layout(tmp_path, kind, layout):
    with pytest.raises(D.DatasetError, match=layout):
        D.open_dataset(kind, path=tmp_path / "nope")


def test_cifar10_pickle_batches(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": [3, 1, 4, 1]}, f)
    ds = D.open_dataset("cifar10", path=tmp_path)
    assert len(ds) == 4 and ds.labels.tolist() == [3, 1, 4, 1]
    np.testing.assert_allclose(ds.load(2), data[2].reshape(1, 3, 32, 32) / 255.0, rtol=1e-6)


def test_speech_commands_mfcc_folders(tmp_path):
    for label in ("yes", "no"):
        (tmp_path / label).mkdir()
        np.save(tmp_path / label / "a.npy", np.full((49, 10), 1.0 if label == "yes" else 2.0, np.float32))
    ds = D.open_dataset("speech_commands", path=tmp_path)
    assert ds.input_shape == (1, 1, 49, 10)
    assert [D.KWS_LABELS[i] for i in ds.labels] == ["no", "yes"]
    assert ds.load(1)[0, 0, 0, 0] == 1.0
    (tmp_path / "banana").mkdir()
    with pytest.raises(D.DatasetError, match="banana"):
        D.open_dataset("speech_commands", path=tmp_path)


def test_vww_and_imagenet_folders_with_npy_images(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    for sub in ("person", "non_person"):
        (tmp_path / "vww" / sub).mkdir(parents=True)
        np.save(tmp_path / "vww" / sub / "x.npy", img)
    v = D.open_dataset("vww", path=tmp_path / "vww")
    assert v.labels.tolist() == [0, 1] and v.load(0).shape == (1, 3, 96, 96)
    assert 0.0 <= v.load(0).min() and v.load(0).max() <= 1.0

    root = tmp_path / "inet"
    root.mkdir()
    np.save(root / "a.npy", img)
    np.save(root / "b.npy", img[:, ::-1])
    (root / "val_map.txt").write_text("a.npy 7\nb.npy 2\n")
    ds = D.open_dataset("imagenet", path=root, input_shape=(1, 3, 64, 64))
    assert ds.labels.tolist() == [7, 2] and ds.load(1).shape == (1, 3, 64, 64)


def test_compressed_images_need_pillow_or_say_so(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "x.jpg").write_bytes(b"\xff\xd8not really")
    ds = D.open_dataset("imagenet", path=tmp_path, input_shape=(1, 3, 32, 32))
    try:
        import PIL  # noqa: F401
    except ImportError:
        with pytest.raises(D.DatasetError, match="Pillow"):
            ds.load(0)


def test_resize_bilinear_constant_and_identity():
    img = np.full((10, 20, 3), 7, np.uint8)
    assert np.allclose(D.resize_bilinear(img, 5, 7), 7)
    ramp = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    np.testing.assert_allclose(D.resize_bilinear(ramp, 3, 4), ramp)


def test_qsl_keeps_loaded_samples_and_calls_the_hook():
    seen = []
    q = QSL(D.synthetic((1, 2), count=10), 4, on_load=lambda s: seen.append(sorted(s)))
    q.load([1, 3])
    assert len(q) == 2 and q.get(3).shape == (1, 2) and seen == [[1, 3]]
    q.unload([1])
    with pytest.raises(KeyError, match="not loaded"):
        q.get(1)
    assert q.performance_count == 4 and q.total_count == 10

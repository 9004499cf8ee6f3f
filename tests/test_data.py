"""Datasets, the P x K sampler and the tf.data pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet.data.dataset import FaceDataset, make_pairs, scan_folder, split_identities
from facenet.data.sampler import PKSampler


def _labels():
    # 12 identities with 5..9 images, 6 with 2..3, 10 singletons
    sizes = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6] + [2, 3, 2, 3, 2, 3] + [1] * 10
    return np.repeat(np.arange(len(sizes)), sizes)


def test_sampler_pk_batches():
    labels = _labels()
    s = PKSampler(labels, p=4, k=4, seed=1)
    batches = s.epoch_batches(0, steps=20)
    assert batches.shape == (20, 16)
    for row in batches:
        assert len(set(row)) == 16  # never the same image twice: anchor != positive
        ids = labels[row].reshape(4, 4)
        assert (ids == ids[:, :1]).all()  # K images of one identity per block
        assert len(set(ids[:, 0])) == 4  # P distinct identities
        assert all(np.sum(labels == i) >= 4 for i in ids[:, 0])


def test_sampler_deterministic_and_stateful():
    labels = _labels()
    a = PKSampler(labels, p=3, k=2, seed=7, extra=2)
    b = PKSampler(labels, p=3, k=2, seed=7, extra=2)
    assert np.array_equal(a.epoch_batches(3, 10), b.epoch_batches(3, 10))
    assert not np.array_equal(a.epoch_batches(3, 10), a.epoch_batches(4, 10))
    assert not np.array_equal(
        a.epoch_batches(3, 10), PKSampler(labels, 3, 2, seed=8, extra=2).epoch_batches(3, 10)
    )
    a.epoch = 5
    c = PKSampler(labels, p=3, k=2, seed=0, extra=2)
    c.load_state_dict(a.state_dict())
    assert np.array_equal(c.epoch_batches(), a.epoch_batches(5))


def test_sampler_extras_are_small_distinct_identities():
    labels = _labels()
    counts = np.bincount(labels)
    s = PKSampler(labels, p=4, k=4, seed=0, extra=4)
    for row in s.epoch_batches(0, 30):
        extras = row[16:]
        assert (counts[labels[extras]] < 4).all()
        assert len(set(labels[extras])) == 4
        assert not set(labels[extras]) & set(labels[row[:16]])


def test_sampler_replica_layout_keeps_whole_identities():
    labels = _labels()
    s = PKSampler(labels, p=4, k=3, seed=0, extra=2, replicas=2)
    for row in s.epoch_batches(0, 10):
        halves = row.reshape(2, 7)
        for half in halves:
            ids = labels[half[:6]].reshape(2, 3)
            assert (ids == ids[:, :1]).all()
            assert np.sum(labels == labels[half[6]]) < 3
        assert not set(labels[halves[0]]) & set(labels[halves[1]])


def test_sampler_errors():
    labels = _labels()
    with pytest.raises(ValueError, match="at least 2"):
        PKSampler(labels, p=2, k=1)
    with pytest.raises(ValueError, match="divisible"):
        PKSampler(labels, p=3, k=2, replicas=2)
    with pytest.raises(ValueError, match="need at least p"):
        PKSampler(labels, p=13, k=5)


def test_sampler_covers_identities():
    labels = _labels()
    s = PKSampler(labels, p=4, k=4, seed=0)
    seen = set(labels[s.epoch_batches(0, 3).reshape(-1)])
    assert len(seen) == 12  # 3 steps x 4 = 12: each eligible identity once per pass


def _make_tree(root: Path, sizes):
    rng = np.random.default_rng(0)
    for i, n in enumerate(sizes):
        d = root / f"id{i:02d}"
        d.mkdir(parents=True)
        for j in range(n):
            shape = (40 + 3 * j, 30 + 2 * i) if j % 2 else (50, 44, 3)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(d / f"{j}.jpg")
    (root / "notes.txt").write_text("not an identity")


def test_scan_split_pairs(tmp_path):
    _make_tree(tmp_path, [4, 1, 3, 2, 5, 2])
    ds = scan_folder(tmp_path)
    assert ds.num_classes == 6 and len(ds) == 17
    assert list(ds.counts()) == [4, 1, 3, 2, 5, 2]
    assert scan_folder(tmp_path, min_images=3).num_classes == 3
    train, val = split_identities(ds, 0.34, seed=0)
    assert train.num_classes + val.num_classes == 6
    assert not set(train.classes) & set(val.classes)
    assert (val.counts() >= 2).all()
    a, b, same = make_pairs(val, 10, seed=0)
    assert (val.labels[a] == val.labels[b])[same].all()
    assert (val.labels[a] != val.labels[b])[~same].all()
    assert (a != b).all()


def test_pipeline_batches(tmp_path):
    pytest.importorskip("tensorflow")
    from facenet.data.pipeline import Augment, eval_images, pipeline_throughput, train_dataset

    _make_tree(tmp_path, [4, 4, 4, 3])
    ds = scan_folder(tmp_path)
    sampler = PKSampler(ds.labels, p=2, k=2, seed=0)
    batches = sampler.epoch_batches(0, 3)
    data = train_dataset(ds.paths, ds.labels, batches, image_size=32, seed=0,
                         augment=Augment(greyscale=0.5))  # fmt: skip
    out = list(data)
    assert len(out) == 3
    images, labels = out[0]
    assert images.shape == (4, 32, 32, 3) and images.dtype.name == "float32"
    assert float(images.numpy().min()) >= 0 and float(images.numpy().max()) <= 255
    assert np.array_equal(labels.numpy(), ds.labels[batches[0]])
    again = list(train_dataset(ds.paths, ds.labels, batches, image_size=32, seed=0,
                               augment=Augment(greyscale=0.5)))  # fmt: skip
    assert np.array_equal(again[2][0].numpy(), out[2][0].numpy())  # deterministic augmentation
    halves = list(train_dataset(ds.paths, ds.labels, batches, image_size=32, chunks=2))
    assert len(halves) == 6 and halves[0][0].shape[0] == 2
    worker = list(train_dataset(ds.paths, ds.labels, batches, image_size=32, chunks=2,
                                keep_chunks=(1, 2)))  # fmt: skip
    assert np.array_equal(worker[0][1].numpy(), ds.labels[batches[0][2:]])
    crops = eval_images(ds.paths[:3], 32)
    assert crops.shape == (3, 32, 32, 3) and crops.dtype == np.uint8
    rate = pipeline_throughput(data.repeat(), steps=3, warmup=1)
    assert rate["median_images_per_s"] > 0


def test_dataset_checks(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan_folder(tmp_path / "absent")
    with pytest.raises(ValueError, match="no identity"):
        scan_folder(tmp_path)
    with pytest.raises(ValueError):
        FaceDataset(["a"], [0, 1], ["x"])

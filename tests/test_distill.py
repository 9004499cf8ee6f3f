"""Distillation from a teacher's precomputed descriptors: targets, loss, and a short run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facenet.errors import FaceNetError  # noqa: E402
from facenet.train import TrainConfig, train  # noqa: E402
from facenet.train.distill import (  # noqa: E402
    distillation_loss,
    load_teacher_targets,
    random_rotation,
    relation_loss,
)

CELEBA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba"


def write_teacher(path: Path, rel_paths: list[str], dims: int = 16, seed: int = 0) -> np.ndarray:
    """A teacher in a narrow cone (a large common mean), as dlib's descriptors are."""
    rng = np.random.default_rng(seed)
    desc = 2.0 * np.ones(dims) + 0.3 * rng.normal(size=(len(rel_paths), dims))
    flip = desc + 0.05 * rng.normal(size=desc.shape)
    np.savez(path, paths=np.array(rel_paths), desc=desc, desc_flip=flip)
    return desc


def test_targets_keep_the_teachers_geometry(tmp_path):
    root = tmp_path / "data"
    rel = [f"id{i}/{j}.png" for i in range(5) for j in range(4)]
    desc = write_teacher(tmp_path / "t.npz", rel)
    images = [str(root / r) for r in rel[:-1]] + [str(root / "unseen/0.png")]
    targets = load_teacher_targets(tmp_path / "t.npz", images, root, 16)
    assert targets.table.shape == (20, 2, 16)
    np.testing.assert_array_equal(targets.mask, [1.0] * 19 + [0.0])
    seen = targets.table[:19, 0]
    # the spread around the mean matches a BatchNorm output's: E||t - mean||^2 = D
    spread = np.mean(np.sum((targets.table[:, 0][targets.mask > 0] - targets.offset) ** 2, 1))
    assert spread == pytest.approx(16, rel=0.15)
    # a rotation and one scale: pairwise distances keep their ratios
    d_teacher = np.linalg.norm(desc[0] - desc[1:19], axis=1)
    d_target = np.linalg.norm(seen[0] - seen[1:19], axis=1)
    np.testing.assert_allclose(d_target / d_teacher, d_target[0] / d_teacher[0], rtol=1e-5)
    assert not np.allclose(targets.table[:19, 0], targets.table[:19, 1])  # mirrored views


def test_rotation_is_orthogonal_and_seeded():
    r = random_rotation(8, 3)
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-10)
    np.testing.assert_array_equal(r, random_rotation(8, 3))


def test_loss_uses_the_view_shown_and_skips_unseen_images():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(6, 2, 4)).astype(np.float32)
    mask = np.array([1, 1, 0, 1, 1, 1], np.float32)
    index = np.array([0, 2, 3, 5])
    flipped = np.array([False, True, True, False])
    student = rng.normal(size=(4, 4)).astype(np.float32)
    got = float(distillation_loss(student, table, mask, index, flipped))
    target = np.stack([table[0, 0], table[2, 1], table[3, 1], table[5, 0]])
    per_image = np.mean((student - target) ** 2, axis=1)
    weight = mask[index]
    assert got == pytest.approx(float((weight * per_image).sum() / weight.sum()), rel=1e-6)


def test_relation_loss_scores_the_pairwise_similarities_only():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(6, 16)).astype(np.float32)
    rotation = random_rotation(16, 3).astype(np.float32)
    scaled = 3.0 * teacher @ rotation  # same similarities: a rotation and a scale
    assert float(relation_loss(scaled, teacher)) < 1e-10
    student = rng.normal(size=(6, 16)).astype(np.float32)
    s = student / np.linalg.norm(student, axis=1, keepdims=True)
    t = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    gap = s @ s.T - t @ t.T  # the diagonal is 0: only the 30 pairs of different images count
    assert float(relation_loss(student, teacher)) == pytest.approx((gap**2).sum() / 30, rel=1e-5)


def test_relation_neighbours_add_each_faces_nearest_pairs_by_the_teacher():
    rng = np.random.default_rng(2)
    teacher = rng.normal(size=(6, 16)).astype(np.float32)
    student = rng.normal(size=(6, 16)).astype(np.float32)
    s = student / np.linalg.norm(student, axis=1, keepdims=True)
    t = teacher / np.linalg.norm(teacher, axis=1, keepdims=True)
    gap = s @ s.T - t @ t.T
    similar = t @ t.T - 4.0 * np.eye(6)
    nearest = np.argsort(-similar, axis=1)[:, :2]
    extra = np.mean(np.take_along_axis(gap, nearest, axis=1) ** 2)
    want = (gap**2).sum() / 30 + extra
    assert float(relation_loss(student, teacher, neighbours=2)) == pytest.approx(want, rel=1e-5)
    assert float(relation_loss(3.0 * teacher, teacher, neighbours=2)) < 1e-10


@pytest.mark.parametrize(
    ("options", "message"),
    [({"relation_weight": 1.0, "relation_neighbours": 8}, r"in \[0, 7\]"),
     ({"relation_weight": 1.0, "relation_neighbours": -1}, r"in \[0, 7\]"),
     ({"relation_neighbours": 2}, "pass relation_weight")],
)  # fmt: skip
def test_relation_neighbours_are_checked_against_the_batch(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data=str(tmp_path), out=str(tmp_path / "run"), loss="ce", ce_weight=0.0,
                    teacher=str(tmp_path / "t.keras"), batch_p=4, batch_k=2, **options)  # fmt: skip


def test_bad_teacher_files(tmp_path):
    write_teacher(tmp_path / "t.npz", ["a/1.png"], dims=16)
    with pytest.raises(FaceNetError, match="--embedding-size 16"):
        load_teacher_targets(tmp_path / "t.npz", [str(tmp_path / "a/1.png")], tmp_path, 128)
    with pytest.raises(FaceNetError, match="holds none of the training images"):
        load_teacher_targets(tmp_path / "t.npz", [str(tmp_path / "b/1.png")], tmp_path, 16)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(FaceNetError, match="not a teacher file"):
        load_teacher_targets(tmp_path / "other.npz", [], tmp_path, 16)


@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"{CELEBA} is absent (shared data)")
def test_short_distillation_run_follows_the_teacher(tmp_path):
    """A teacher whose descriptor is a function of an image's colour: easy to learn quickly."""
    from PIL import Image

    identities = sorted(p.name for p in CELEBA.iterdir() if p.is_dir())[:20]
    files = [f for i in identities for f in sorted((CELEBA / i).iterdir())]
    colour = np.stack(
        [np.asarray(Image.open(f).convert("RGB"), np.float64).mean((0, 1)) for f in files]
    )
    projection = np.random.default_rng(0).normal(size=(3, 32))
    desc = 2.0 + np.tanh((colour / 255.0 - 0.5) * 4 @ projection)
    rel = [os.path.relpath(f, CELEBA) for f in files]
    np.savez(tmp_path / "teacher.npz", paths=np.array(rel), desc=desc, desc_flip=desc)
    config = TrainConfig(
        data=str(CELEBA), out=str(tmp_path / "run"), input_size=48, alpha=0.25,
        embedding_size=32, loss="triplet", triplet_weight=0.0, batch_p=8, batch_k=2, epochs=5,
        steps_per_epoch=10, lr=3e-3, val_pairs="none", max_identities=20,
        distill=str(tmp_path / "teacher.npz"), show_progress=False,
    )  # fmt: skip
    result = train(config)
    losses = [row["distill_loss"] for row in result.history]
    print("distillation loss by epoch:", np.round(losses, 3))
    assert losses[-1] < 0.9 * losses[0]
    from facenet import FaceNet

    model = FaceNet.load(result.model_path)
    assert model.info.extra["training"]["distill"] == str(tmp_path / "teacher.npz")


@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"{CELEBA} is absent (shared data)")
def test_training_can_start_from_a_model_file(tmp_path, small_model_file):
    """--init: a run continues from trained weights (here the 64-px test model's)."""
    import keras

    from facenet.models import load_keras_model

    config = TrainConfig(
        data=str(CELEBA), out=str(tmp_path / "run"), input_size=64, alpha=0.25,
        embedding_size=128, loss="triplet+ce", batch_p=4, batch_k=2, epochs=1,
        steps_per_epoch=1, lr=1e-9, val_pairs="none", max_identities=10,
        init=str(small_model_file), show_progress=False,
    )  # fmt: skip
    result = train(config)
    start, _ = load_keras_model(small_model_file)
    end, _ = load_keras_model(result.model_path)
    for name in ("conv1", "conv_pw_13", "Bottleneck"):
        np.testing.assert_allclose(
            end.get_layer(name).get_weights()[0], start.get_layer(name).get_weights()[0], atol=1e-5
        )
    assert isinstance(end, keras.Model)

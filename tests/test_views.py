"""Consistent views: drawn from a seed, stored as rows, regenerated bit for bit (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.data.views import COLUMN, PARAMS, ViewSpec, draw_views, render_view, view_seed


def _crop(seed: int, size: int = 96) -> np.ndarray:
    """A smooth, asymmetric test image (a gradient plus a bright blob off centre)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    base = np.stack([x * 2.0, y * 2.0, 255.0 - x - y / 2], axis=-1)
    cx, cy = rng.integers(size // 4, size // 2, 2)
    blob = 120.0 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 60.0)
    return np.clip(base + blob[..., None], 0, 255).astype(np.uint8)


def test_rows_are_a_function_of_the_seed():
    a = draw_views([3, 1, 0], 50, num_images=10)
    assert a.shape == (50, len(PARAMS)) and a.dtype == np.float64
    np.testing.assert_array_equal(a, draw_views([3, 1, 0], 50, num_images=10))
    assert not np.array_equal(a, draw_views([3, 1, 1], 50, num_images=10))
    assert view_seed(3, 1) == view_seed(3, 1) != view_seed(3, 2)


def test_regenerating_from_stored_rows_is_bit_identical(tmp_path):
    crops = [_crop(i) for i in range(4)]
    rows = draw_views(7, 40, ViewSpec(mixup=0.5, lowres=0.5, greyscale=0.5), num_images=4)
    first = [render_view(crops[i % 4], r, 64, crops[int(r[COLUMN["partner"]])]) for i, r in
             enumerate(rows)]  # fmt: skip
    np.savez(tmp_path / "views.npz", rows=rows)
    stored = np.load(tmp_path / "views.npz")["rows"]
    again = [render_view(crops[i % 4], r, 64, crops[int(r[COLUMN["partner"]])]) for i, r in
             enumerate(stored)]  # fmt: skip
    for x, y in zip(first, again, strict=True):
        assert x.dtype == np.float32 and x.shape == (64, 64, 3)
        assert x.tobytes() == y.tobytes()
    # different rows give different images (the test can fail)
    assert first[0].tobytes() != first[1].tobytes()


def test_the_distribution_covers_every_lever():
    spec = ViewSpec(mixup=0.3)
    rows = draw_views(0, 4000, spec, num_images=100)
    col = {name: rows[:, i] for i, name in enumerate(PARAMS)}
    assert col["scale"].min() >= spec.scale[0] and col["scale"].max() <= spec.scale[1]
    assert col["scale"].min() < 0.95 and col["scale"].max() > 1.2
    assert np.abs(col["shift_x"]).max() > 0.05 and np.abs(col["shift_y"]).max() > 0.05
    assert np.abs(col["angle"]).max() > 9.0 and np.abs(col["angle"]).max() <= spec.rotation
    for name, p in [("flip", spec.flip), ("grey", spec.greyscale)]:
        assert set(np.unique(col[name])) == {0.0, 1.0}
        assert abs(col[name].mean() - p) < 0.03
    assert abs((col["lowres"] < 1).mean() - spec.lowres) < 0.03
    low = col["lowres"][col["lowres"] < 1]
    assert low.min() >= spec.lowres_range[0] and low.max() <= spec.lowres_range[1]
    assert np.abs(col["brightness"]).max() > 0.9 * spec.brightness * 255
    assert col["contrast"].std() > 0 and col["saturation"].std() > 0
    mixed = col["partner"] >= 0
    assert abs(mixed.mean() - spec.mixup) < 0.03
    assert col["partner"][mixed].max() < 100 and np.all(col["mix"][~mixed] == 1.0)
    assert col["mix"][mixed].min() >= spec.mix_range[0]
    # no partner pool, no mixup
    assert np.all(draw_views(0, 100, spec)[:, COLUMN["partner"]] == -1)


def test_each_lever_changes_the_image_as_it_says():
    crop = _crop(1, 64)
    ident = draw_views(0, 1, ViewSpec.identity())[0]
    plain = render_view(crop, ident, 64)
    np.testing.assert_allclose(plain, crop.astype(np.float32), atol=1.0)  # the crop itself
    flipped = ident.copy()
    flipped[COLUMN["flip"]] = 1
    np.testing.assert_allclose(render_view(crop, flipped, 64), plain[:, ::-1], atol=1.0)
    grey = ident.copy()
    grey[COLUMN["grey"]] = 1
    g = render_view(crop, grey, 64)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    low = ident.copy()
    low[COLUMN["lowres"]] = 0.25
    assert (
        np.abs(np.diff(render_view(crop, low, 64), axis=1)).mean()
        < np.abs(np.diff(plain, axis=1)).mean()
    )
    # the same row at two sizes is the same view (teacher and student inputs)
    row = draw_views(5, 1)[0]
    big, small = render_view(crop, row, 96), render_view(crop, row, 48)
    shrunk = big.reshape(48, 2, 48, 2, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - small).mean() < 6.0


def test_a_mixed_row_needs_its_partner():
    row = draw_views(0, 200, ViewSpec(mixup=1.0), num_images=3)[0]
    with pytest.raises(ValueError, match="partner"):
        render_view(_crop(0), row, 32)
    with pytest.raises(ValueError, match="RGB uint8"):
        render_view(np.zeros((8, 8), np.uint8), draw_views(0, 1)[0], 32)


def test_teacher_views_tool_stores_rows_that_regenerate_its_inputs(tmp_path, small_model_file):
    import sys
    from pathlib import Path

    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from teacher_views import teacher_views

    from facenet.models import load_keras_model

    for i in range(6):
        (tmp_path / "faces" / f"id{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_crop(i, 80)).save(tmp_path / "faces" / f"id{i % 2}" / f"{i}.png")
    out = teacher_views(tmp_path / "faces", small_model_file, 3, spec=ViewSpec(mixup=0.5),
                        batch=4, workers=1)  # fmt: skip
    assert out["rows"].shape == (6, 3, len(PARAMS)) and out["desc"].shape == (6, 3, 128)
    teacher, _ = load_keras_model(small_model_file)
    crops = [np.asarray(Image.open(tmp_path / "faces" / p)) for p in out["paths"]]
    for i, k in [(0, 0), (3, 2), (5, 1)]:
        row = out["rows"][i, k]
        partner = crops[int(row[COLUMN["partner"]])] if row[COLUMN["partner"]] >= 0 else None
        view = render_view(crops[i], row, 64, partner)[None]
        np.testing.assert_allclose(np.asarray(teacher(view)), out["desc"][i, k][None], atol=1e-5)
    assert np.abs(out["desc"][0, 0] - out["desc"][0, 1]).max() > 1e-4  # the views differ
    # the trainer's side: a batch of stored views regenerates the teacher's input, and its
    # target is the teacher's output on it (projected); an image missing from the file weighs 0
    from facenet.data.dataset import scan_folder
    from facenet.data.loader import ViewLoader
    from facenet.train.view_targets import ViewTargets

    np.savez(tmp_path / "views.npz", **out)
    dataset = scan_folder(tmp_path / "faces")
    paths = [*dataset.paths, str(tmp_path / "faces" / "elsewhere.png")]
    targets = ViewTargets(tmp_path / "views.npz", paths, tmp_path / "faces", seed=0)
    loader = ViewLoader(paths, np.arange(len(paths)), [64], workers=1, targets=targets)
    batch = loader.batch(np.arange(len(paths) - 1), epoch=2, step=5)
    # in the background too, with its one worker (the trainer's path; it once waited forever)
    ahead = loader.submit(np.arange(len(paths) - 1), epoch=2, step=5).result(timeout=60)
    np.testing.assert_array_equal(ahead["views"][0], batch["views"][0])
    seen = np.asarray(teacher(batch["views"][0]))
    np.testing.assert_allclose(seen @ targets.projection, batch["target"], atol=1e-4)
    assert np.all(batch["weight"] == 1.0)
    _, missing = targets.batch([len(paths) - 1], 0, 0)
    assert missing["weight"][0] == 0.0
    loader.close()
    # the target space does not follow the run's seed: a student continued under another
    # seed (--init) keeps the space it was trained in
    other = ViewTargets(tmp_path / "views.npz", paths, tmp_path / "faces", seed=7)
    np.testing.assert_array_equal(other.projection, targets.projection)
    np.testing.assert_array_equal(other.targets, targets.targets)

"""Views rendered on the device (`facenet.data.views_jax`) against the PIL renderer, on real
faces: the same geometry, mixup, colour and low-resolution round trip, to within PIL's 8-bit
rounding."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.data.views import COLUMN, ViewSpec, draw_views, render_view

from .conftest import CELEBA_DIR

jnp = pytest.importorskip("jax.numpy")


def _celeba_crops(count: int = 8, size: int = 128) -> np.ndarray:
    from PIL import Image

    files = sorted(CELEBA_DIR.glob("*/*.jpg"))[:count]
    if len(files) < count:
        pytest.skip(f"CelebA not available at {CELEBA_DIR}")
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size))) for f in files])


def _pil(crops: np.ndarray, indices: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    out = []
    for i, row in zip(indices, rows, strict=True):
        partner = int(row[COLUMN["partner"]])
        out.append(render_view(crops[i], row, size, crops[partner] if partner >= 0 else None))
    return np.stack(out)


@pytest.mark.parametrize("size", [112, 150])
def test_device_views_match_the_pil_renderer(size):
    from facenet.data.views_jax import render_views

    crops = _celeba_crops()
    spec = ViewSpec(mixup=0.5, lowres=0.5, greyscale=0.3)
    rows = draw_views(3, 48, spec, num_images=len(crops))
    indices = np.arange(len(rows)) % len(crops)
    want = _pil(crops, indices, rows, size)
    got = np.asarray(render_views(jnp.asarray(crops), jnp.asarray(indices),
                                  jnp.asarray(rows, jnp.float32), size))  # fmt: skip
    assert got.shape == want.shape and got.dtype == np.float32
    per_view = np.abs(got - want).mean(axis=(1, 2, 3))
    assert per_view.max() < 1.0, per_view  # grey levels of 255: rounding, not geometry
    # every kind of view was drawn, so each branch above was compared
    assert (rows[:, COLUMN["flip"]] > 0.5).any() and (rows[:, COLUMN["lowres"]] < 1).any()
    assert (rows[:, COLUMN["partner"]] >= 0).any() and (rows[:, COLUMN["grey"]] > 0.5).any()


def test_a_wrong_geometry_would_show():
    """The comparison above can fail: a mirrored view differs from the unmirrored by far more."""
    from facenet.data.views_jax import render_views

    crops = _celeba_crops(2)
    rows = draw_views(5, 2, ViewSpec.identity(), num_images=2).astype(np.float32)
    mirrored = rows.copy()
    mirrored[:, COLUMN["flip"]] = 1.0
    want = _pil(crops, np.arange(2), rows, 112)
    got = np.asarray(render_views(jnp.asarray(crops), jnp.arange(2), jnp.asarray(mirrored), 112))
    assert np.abs(got - want).mean() > 5.0


def test_device_rendering_refuses_faces_of_mixed_sizes_in_one_line(tmp_path):
    """Every crop goes into one array on the device: faces of several sizes (a folder that was
    not aligned) are refused with the command that fixes it."""
    from PIL import Image

    from facenet.data.loader import ViewLoader
    from facenet.errors import FaceNetError

    paths = []
    for i, side in enumerate((64, 64, 80)):
        paths.append(tmp_path / f"{i}.jpg")
        Image.new("RGB", (side, side), (i * 40, 90, 120)).save(paths[-1])
    loader = ViewLoader([str(p) for p in paths], [0, 0, 1], [32], workers=2, render=False)
    try:
        with pytest.raises(FaceNetError, match="facenet align") as refused:
            loader.all_crops()
        assert "\n" not in str(refused.value) and "64x64, 80x80" in str(refused.value)
        same = ViewLoader([str(p) for p in paths[:2]], [0, 0], [32], workers=2, render=False)
        assert same.all_crops().shape == (2, 64, 64, 3)
        same.close()
    finally:
        loader.close()

"""Whole photos through the public API: detection, alignment, then the network."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from facenet import NoFaceError
from facenet.cli import main
from facenet.images import load_image

from .conftest import count_detect_batches, lfw_image

pytest.importorskip("keras")


def blank(size: int = 250) -> np.ndarray:
    return np.full((size, size, 3), 128, np.uint8)


def test_embed_photos_detects_and_aligns(small_model):
    photo = lfw_image("Aaron_Eckhart")
    crops = small_model.align([photo])
    assert crops[0].shape == (64, 64, 3) and crops[0].dtype == np.uint8
    from_photo = small_model.embed([photo])
    from_crop = small_model.embed(crops[0], detect=False)
    np.testing.assert_allclose(from_photo, from_crop, atol=1e-5)


def test_no_face_raises_naming_the_image_or_gives_nan(small_model):
    photo = lfw_image("Aaron_Eckhart")
    with pytest.raises(NoFaceError, match="array #1: no face found"):
        small_model.embed([photo, blank()])
    out = small_model.embed([photo, blank(), photo], on_missing="nan")
    assert np.all(np.isnan(out[1])) and np.all(np.isfinite(out[[0, 2]]))
    np.testing.assert_allclose(out[0], out[2], atol=1e-6)
    assert small_model.align([blank()], on_missing="none") == [None]


def test_several_faces_embed_uses_the_largest_and_represent_returns_all(small_model):
    small = load_image(lfw_image("Abel_Pacheco"))[::2, ::2]  # 125 px: a smaller face
    big = load_image(lfw_image("Aaron_Eckhart"))
    canvas = np.full((300, 600, 3), 90, np.uint8)
    canvas[25:275, 10:260] = big
    canvas[80:205, 400:525] = small
    faces = small_model.represent(canvas)
    assert len(faces) == 2
    for face in faces:
        assert face.embedding.shape == (128,)
        np.testing.assert_allclose(np.linalg.norm(face.embedding), 1.0, atol=1e-5)
    largest = max(faces, key=lambda f: f.area)
    assert largest.box[0] < 260  # the big face is the left one
    np.testing.assert_allclose(small_model.embed(canvas)[0], largest.embedding, atol=1e-5)


def test_verify_raw_photos_from_the_cli(small_model_file):
    a1, a2 = lfw_image("Aaron_Peirsol", 1), lfw_image("Aaron_Peirsol", 2)
    result = CliRunner().invoke(
        main, ["verify", str(a1), str(a2), "--model", str(small_model_file)]
    )
    assert result.exit_code == 0, result.output
    assert "distance" in result.output and "threshold" in result.output


def test_cli_no_face_is_a_user_error(small_model_file, tmp_path):
    from PIL import Image

    path = tmp_path / "wall.png"
    Image.fromarray(blank()).save(path)
    result = CliRunner().invoke(
        main, ["verify", str(path), str(path), "--model", str(small_model_file)]
    )
    assert result.exit_code == 2
    assert "wall.png: no face found" in result.output


def test_photos_are_decoded_and_detected_in_groups_bounded_by_pixels(small_model, monkeypatch):
    """A batch of large photos is never held decoded at once: the detector gets groups of at
    most `DECODED_PIXELS` (a larger photo alone), and the embeddings do not depend on them."""
    import facenet.images
    from facenet.images import pixel_groups

    photos = [lfw_image(name) for name in ("Aaron_Eckhart", "Colin_Powell", "Tony_Blair")]
    sizes = [len(g) for g in pixel_groups([blank(100), blank(100), blank(200)], 25_000)]
    assert sizes == [2, 1]  # 10k + 10k fit, 40k alone; order kept
    together = small_model.embed(photos)
    groups = count_detect_batches(monkeypatch, small_model.detector)
    monkeypatch.setattr(facenet.images, "DECODED_PIXELS", 250 * 250)  # one LFW photo each
    np.testing.assert_allclose(small_model.embed(photos), together, atol=1e-6)
    assert groups == [1, 1, 1]
    monkeypatch.setattr(facenet.images, "DECODED_PIXELS", 2 * 250 * 250)
    groups.clear()
    small_model.embed(photos)
    assert groups == [2, 1]

"""Alignment: FaceNet margin crops, 5-point similarity warps, prominence and fallbacks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet.detect import MTCNN, align_face, center_crop, most_prominent, similarity_transform
from facenet.detect.align import template
from facenet.images import load_image
from facenet.types import Face

LFW = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
needs_lfw = pytest.mark.skipif(not LFW.is_dir(), reason=f"LFW images not found at {LFW}")
NAMES = ["Colin_Powell/Colin_Powell_0001.jpg", "Serena_Williams/Serena_Williams_0001.jpg"]


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN()


def _face(box=(40.0, 50.0, 120.0, 150.0), landmarks=None) -> Face:
    return Face(box=box, score=0.99, landmarks=landmarks)


def test_similarity_transform_recovers_a_known_map():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = 0.3, 0.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + shift
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m, np.hstack([scale * rot, shift[:, None]]), atol=1e-9)
    with pytest.raises(ValueError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), dst)


def test_crop_mode_is_box_plus_half_margin_per_side():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    face = _face()
    crop = align_face(image, face, size=160, mode="crop", margin=32)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8
    want = Image.fromarray(image[34:166, 24:136]).resize((160, 160), Image.BILINEAR)
    assert np.abs(crop.astype(int) - np.asarray(want, int)).mean() < 1.0
    # margin scales with size: 32 at 160 is 16 at 80, i.e. 8 px per side
    small = align_face(image, face, size=80, mode="crop")
    want = Image.fromarray(image[42:158, 32:128]).resize((80, 80), Image.BILINEAR)
    assert small.shape == (80, 80, 3)
    assert np.abs(small.astype(int) - np.asarray(want, int)).mean() < 1.0


def test_crop_mode_clips_to_the_image():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = align_face(image, _face(box=(-20.0, -10.0, 60.0, 90.0)), size=112)
    assert crop.shape == (112, 112, 3)
    assert crop.min() == 200  # nothing from outside the image
    with pytest.raises(ValueError, match="outside"):
        align_face(image, _face(box=(300.0, 300.0, 400.0, 400.0)))


def test_bad_options():
    image = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(ValueError, match="mode"):
        align_face(image, _face(), mode="affine")
    with pytest.raises(ValueError, match="landmarks"):
        align_face(image, _face(), mode="similarity")
    with pytest.raises(ValueError, match="chip alignment needs"):
        align_face(image, _face(), mode="chip")


def test_similarity_puts_landmarks_on_the_template():
    # a coordinate image: red = x, green = y, so every crop pixel says where it came from
    yy, xx = np.mgrid[0:250, 0:250]
    image = np.stack([xx, yy, np.full_like(xx, 128)], -1).astype(np.uint8)
    angle = np.deg2rad(20)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    marks = 1.6 * template(112) @ rot.T + [70, 20]  # a rotated, scaled template as "landmarks"
    assert marks.min() > 0 and marks.max() < 250
    face = _face(box=(40.0, 20.0, 230.0, 230.0), landmarks=marks)
    crop = align_face(image, face, size=112, mode="similarity")
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    for (tx, ty), (ix, iy) in zip(template(112), marks, strict=True):
        red, green, _ = crop[int(ty), int(tx)].astype(float)
        assert abs(red + 0.5 - ix) < 2.5 and abs(green + 0.5 - iy) < 2.5


@needs_lfw
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size,mode", [(112, "similarity"), (160, "similarity"), (112, "chip")])
def test_landmark_modes_on_real_faces(detector, name, size, mode):
    image = load_image(LFW / name)
    face = detector.detect(image)[0]
    crop = align_face(image, face, size=size, mode=mode)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    # detect again in the aligned crop (padded, so the face is not at the border): the eyes,
    # nose and mouth land near the template
    padded = np.zeros((size * 2, size * 2, 3), np.uint8)
    padded[size // 2 : size // 2 + size, size // 2 : size // 2 + size] = crop
    again = detector.detect(padded)
    assert again, "no face in the aligned crop"
    marks = again[0].landmarks - size // 2
    error = np.linalg.norm(marks - template(size, mode), axis=1)
    # the chip template is dlib's framing: MTCNN's nose and mouth sit on it only on average
    # (their spread is 0.03-0.04 of the crop side; tools/fit_chip_template.py)
    assert error.max() < (0.06 if mode == "similarity" else 0.1) * size, error


def test_chip_template_is_dlibs_framing():
    # dlib's chip shows the forehead: the eyes sit near the top third, not mid-height as in
    # ArcFace's 112 template; the face is as wide or wider
    chip, tight = template(112, "chip"), template(112, "similarity")
    assert chip[:2, 1].mean() < tight[:2, 1].mean() - 0.1 * 112
    assert chip[3:, 1].mean() < tight[3:, 1].mean()
    assert chip[1, 0] - chip[0, 0] >= tight[1, 0] - tight[0, 0]
    assert np.allclose(template(224, "chip"), 2 * template(112, "chip"))


@needs_lfw
def test_crop_on_real_face_keeps_the_face_central(detector):
    image = load_image(LFW / NAMES[0])
    face = detector.detect(image)[0]
    crop = align_face(image, face, size=160, mode="crop", margin=32)
    again = detector.detect(np.pad(crop, ((80, 80), (80, 80), (0, 0))))
    assert again
    x1, y1, x2, y2 = np.array(again[0].box) - 80
    assert abs((x1 + x2) / 2 - 80) < 12 and abs((y1 + y2) / 2 - 80) < 16
    assert x2 - x1 > 110  # the face fills the crop but for the margin


@needs_lfw
def test_big_face_similarity_matches_small(detector):
    image = load_image(LFW / NAMES[1])
    face = detector.detect(image)[0]
    small = align_face(image, face, size=112, mode="similarity")
    big_image = np.asarray(Image.fromarray(image).resize((2000, 2000), Image.BICUBIC))
    big_face = Face(
        box=tuple(v * 8 for v in face.box), score=face.score, landmarks=face.landmarks * 8
    )
    big = align_face(big_image, big_face, size=112, mode="similarity")
    assert np.abs(big.astype(int) - small.astype(int)).mean() < 12


def test_most_prominent():
    assert most_prominent([], (100, 100, 3)) is None
    small = _face(box=(0.0, 0.0, 10.0, 10.0))
    large = _face(box=(50.0, 50.0, 90.0, 90.0))
    assert most_prominent([small, large], (100, 100, 3)) is large
    corner = _face(box=(0.0, 0.0, 40.0, 40.0))
    centre = _face(box=(30.0, 30.0, 70.0, 70.0))
    assert most_prominent([corner, centre], (100, 100, 3)) is centre
    assert most_prominent([centre, corner], (100, 100, 3)) is centre


def test_center_crop():
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 100:200] = 255  # the centred square is white
    crop = center_crop(image, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert crop.min() == 255
    tall = center_crop(np.zeros((300, 50, 3), np.uint8), 160)
    assert tall.shape == (160, 160, 3)


@needs_lfw
def test_align_cache_redoes_a_replaced_photo(tmp_path, detector):
    from facenet.data import scan_folder
    from facenet.data.align import align_cached

    photo = tmp_path / "data" / "someone" / "face.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes((LFW / NAMES[0]).read_bytes())
    first = align_cached(scan_folder(tmp_path / "data"), tmp_path / "cache", 64, detector=detector,
                         show_progress=False)  # fmt: skip
    crop = Path(first.paths[0])
    powell = crop.read_bytes()
    again = align_cached(scan_folder(tmp_path / "data"), tmp_path / "cache", 64, detector=detector,
                         show_progress=False)  # fmt: skip
    assert Path(again.paths[0]).read_bytes() == powell  # an unchanged photo is not redone
    photo.write_bytes((LFW / NAMES[1]).read_bytes())
    later = crop.stat().st_mtime + 5
    os.utime(photo, (later, later))
    align_cached(scan_folder(tmp_path / "data"), tmp_path / "cache", 64, detector=detector,
                 show_progress=False)  # fmt: skip
    assert crop.read_bytes() != powell

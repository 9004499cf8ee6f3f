"""MTCNN: the ONNX networks against a plain NumPy forward, and detection on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet.detect import MTCNN, most_prominent
from facenet.detect.mtcnn import WEIGHTS_DIR, _pack, nms
from facenet.errors import ModelNotFoundError
from facenet.images import load_image
from facenet.types import Face

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
LFW = DATA / "lfw" / "lfw-deepfunneled"
NPY = SHARED / "models" / "mtcnn"

needs_lfw = pytest.mark.skipif(not LFW.is_dir(), reason=f"LFW images not found at {LFW}")
needs_npy = pytest.mark.skipif(
    not (NPY / "det1.npy").is_file(), reason=f"MTCNN .npy weights not found at {NPY}"
)

LFW_SAMPLES = [
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg",
    "Serena_Williams/Serena_Williams_0001.jpg",
    "Colin_Powell/Colin_Powell_0001.jpg",
    "Gloria_Macapagal_Arroyo/Gloria_Macapagal_Arroyo_0001.jpg",
    "Jennifer_Aniston/Jennifer_Aniston_0001.jpg",
    "Hugo_Chavez/Hugo_Chavez_0001.jpg",
]


@pytest.fixture(scope="module")
def detector() -> MTCNN:
    return MTCNN()


def lfw(name: str) -> np.ndarray:
    return load_image(LFW / name)


# ---------------------------------------------------------------------- reference forward
# The original (Caffe / davidsandberg) semantics, written independently of the converter:
# NHWC, TF "SAME"/"VALID" padding, the raw .npy weights, and the x/y swap done literally by
# transposing the input before and the outputs after.


def _conv(x, layer):
    k = layer["weights"]
    kh, kw = k.shape[:2]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # N,H,W,C,kh,kw
    return np.einsum("nhwcij,ijco->nhwo", win, k, optimize=True) + layer["biases"]


def _prelu(x, layer):
    return np.where(x > 0, x, x * layer["alpha"])


def _pool(x, k, same):
    n, h, w, c = x.shape
    if same:
        oh, ow = -(-h // 2), -(-w // 2)
        ph, pw = max((oh - 1) * 2 + k - h, 0), max((ow - 1) * 2 + k - w, 0)
        x = np.pad(
            x,
            ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)),
            constant_values=-np.inf,
        )
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::2, ::2]
    return win.max(axis=(-1, -2))


def _fc(x, layer):
    return x.reshape(len(x), -1) @ layer["weights"] + layer["biases"]


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_forward(net: str, images: np.ndarray):
    """Upright RGB 0..255 NHWC -> the same outputs as the ONNX graphs, from the raw weights."""
    p = np.load(
        NPY / f"det{ {'pnet': 1, 'rnet': 2, 'onet': 3}[net] }.npy",
        allow_pickle=True,
        encoding="latin1",
    ).item()
    x = (images.astype(np.float64) - 127.5) * 0.0078125
    x = x.transpose(0, 2, 1, 3)  # the Caffe models see x and y swapped
    if net == "pnet":
        x = _pool(_prelu(_conv(x, p["conv1"]), p["PReLU1"]), 2, True)
        x = _prelu(_conv(x, p["conv2"]), p["PReLU2"])
        x = _prelu(_conv(x, p["conv3"]), p["PReLU3"])
        prob = _softmax(_conv(x, p["conv4-1"]))[..., 1].transpose(0, 2, 1)
        reg = _conv(x, p["conv4-2"]).transpose(0, 3, 2, 1)
        return prob, reg
    x = _pool(_prelu(_conv(x, p["conv1"]), p["prelu1"]), 3, True)
    x = _pool(_prelu(_conv(x, p["conv2"]), p["prelu2"]), 3, False)
    if net == "rnet":
        x = _prelu(_conv(x, p["conv3"]), p["prelu3"])
        x = _prelu(_fc(x, p["conv4"]), p["prelu4"])
        return _softmax(_fc(x, p["conv5-1"]))[:, 1], _fc(x, p["conv5-2"])
    x = _pool(_prelu(_conv(x, p["conv3"]), p["prelu3"]), 2, True)
    x = _prelu(_conv(x, p["conv4"]), p["prelu4"])
    x = _prelu(_fc(x, p["conv5"]), p["prelu5"])
    return _softmax(_fc(x, p["conv6-1"]))[:, 1], _fc(x, p["conv6-2"]), _fc(x, p["conv6-3"])


def _inputs(shape, seed):
    """Half random noise, half crops of a real face, so the outputs are not all near one value."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, shape).astype(np.float32)
    if LFW.is_dir():
        face = Image.fromarray(lfw(LFW_SAMPLES[0])[60:190, 60:190])
        x[: shape[0] // 2] = np.asarray(face.resize(shape[2:0:-1]), np.float32)
    return x


@needs_npy
@pytest.mark.parametrize(
    "net, shape", [("pnet", (2, 37, 50, 3)), ("rnet", (4, 24, 24, 3)), ("onet", (4, 48, 48, 3))]
)
def test_onnx_matches_numpy_reference(detector, net, shape):
    session = dict(zip(("pnet", "rnet", "onet"), detector._load(), strict=True))[net]
    x = _inputs(shape, seed=len(net) + shape[0])
    got = session.run(None, {"image": x})
    want = reference_forward(net, x)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=2e-4, rtol=1e-3)
    assert np.ptp(want[0]) > 0.1  # the comparison saw both faces and non-faces


def test_weights_ship_with_licence():
    for name in ("pnet.onnx", "rnet.onnx", "onet.onnx", "LICENSE.md"):
        assert (WEIGHTS_DIR / name).is_file()
    assert "MIT License" in (WEIGHTS_DIR / "LICENSE.md").read_text()
    assert (
        sum((WEIGHTS_DIR / n).stat().st_size for n in ("pnet.onnx", "rnet.onnx", "onet.onnx")) < 3e6
    )


def test_missing_weights_raise(tmp_path):
    with pytest.raises(ModelNotFoundError, match="pnet.onnx"):
        MTCNN(weights_dir=tmp_path).detect(np.zeros((64, 64, 3), np.uint8))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="thresholds"):
        MTCNN(thresholds=(0.6, 0.7))
    with pytest.raises(ValueError, match="min_face_size"):
        MTCNN(min_face_size=0)
    with pytest.raises(ValueError, match="factor"):
        MTCNN(factor=1.2)


# ---------------------------------------------------------------------- helpers


def test_nms_groups_and_modes():
    boxes = np.array(
        [[0, 0, 10, 10, 0.9], [1, 1, 11, 11, 0.8], [0, 0, 10, 10, 0.7], [2, 2, 6, 6, 0.6]], float
    )
    assert nms(boxes, 0.5).tolist() == [0, 3]
    assert nms(boxes, 0.5, groups=np.array([0, 0, 1, 1])).tolist() == [0, 2, 3]
    assert nms(boxes, 0.7, mode="min").tolist() == [0]  # the small box lies inside box 0
    assert nms(np.empty((0, 5)), 0.5).size == 0


def test_nms_matrix_and_loop_paths_agree(monkeypatch):
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 200, (400, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 60, (400, 2)), rng.uniform(0, 1, (400, 1))])
    groups = rng.integers(0, 4, 400)
    fast = [nms(boxes, 0.5, groups, mode) for mode in ("union", "min")]
    monkeypatch.setattr("facenet.detect.mtcnn._MATRIX_NMS", 0)
    slow = [nms(boxes, 0.5, groups, mode) for mode in ("union", "min")]
    for a, b in zip(fast, slow, strict=True):
        assert a.tolist() == b.tolist()
    assert 0 < len(fast[1]) < len(fast[0]) < 400


def test_pack_places_every_tile_once_without_overlap():
    shapes = [
        (150, 150),
        (107, 107),
        (76, 76),
        (54, 54),
        (38, 38),
        (27, 27),
        (19, 19),
        (13, 14),
    ] * 3
    canvases = list(_pack(shapes, 258, budget=120_000))
    assert len(canvases) > 1
    seen = []
    for (ch, cw), placements in canvases:
        mask = np.zeros((ch, cw), int)
        for k, y, x in placements:
            h, w = shapes[k]
            assert y % 2 == 0 and x % 2 == 0 and y + h <= ch and x + w <= cw
            mask[y : y + h, x : x + w] += 1
            seen.append(k)
        assert mask.max() == 1
    assert sorted(seen) == list(range(len(shapes)))


# ---------------------------------------------------------------------- real photos


def _check_face(face: Face, shape):
    x1, y1, x2, y2 = face.box
    h, w = shape[:2]
    assert 0 < face.score <= 1
    assert x2 > x1 and y2 > y1
    pts = face.landmarks
    assert pts.shape == (5, 2)
    assert np.all(pts[:, 0] >= x1) and np.all(pts[:, 0] <= x2)
    assert np.all(pts[:, 1] >= y1) and np.all(pts[:, 1] <= y2)
    left_eye, right_eye, nose, left_mouth, right_mouth = pts
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(left_mouth[1], right_mouth[1])
    return x1, y1, x2, y2


@needs_lfw
@pytest.mark.parametrize("name", LFW_SAMPLES)
def test_lfw_face_is_central(detector, name):
    img = lfw(name)
    faces = detector.detect(img)
    assert faces, f"no face found in {name}"
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    face = most_prominent(faces, img.shape)
    x1, y1, x2, y2 = _check_face(face, img.shape)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert abs(cx - 125) < 25 and abs(cy - 125) < 30
    assert 60 < x2 - x1 < 160


@needs_lfw
def test_batch_equals_single(detector):
    images = [lfw(n) for n in LFW_SAMPLES[:4]] + [np.zeros((90, 300, 3), np.uint8)]
    batch = detector.detect_batch(images)
    assert len(batch) == len(images) and batch[-1] == []
    for img, faces in zip(images[:4], batch[:4], strict=True):
        single = detector.detect(img)
        assert len(single) == len(faces)
        np.testing.assert_allclose(single[0].box, faces[0].box, atol=1e-3)
    assert detector.detect_batch([]) == []


@needs_lfw
def test_batch_groups_give_the_same_faces(detector, monkeypatch):
    images = [lfw(n) for n in LFW_SAMPLES[:3]]
    together = detector.detect_batch(images)
    monkeypatch.setattr("facenet.detect.mtcnn.GROUP_PIXELS", 1)  # one image per group
    apart = detector.detect_batch(images)
    assert [len(f) for f in apart] == [len(f) for f in together]
    for a, b in zip(apart, together, strict=True):
        np.testing.assert_allclose(a[0].box, b[0].box, atol=1e-3)


@needs_lfw
def test_levels_cut_into_strips_give_identical_faces(monkeypatch):
    """Levels larger than a canvas are cut into strips of whole P-Net window rows, and strips
    and canvases run on two threads: every window is computed exactly once, so the faces are
    the same, bit for bit, as with canvases that hold whole levels."""
    from facenet.detect import MTCNN

    images = [lfw(n) for n in LFW_SAMPLES[:3]]
    wide = np.concatenate([np.concatenate(images, 1)] * 2, 0)  # 500 x 750, six faces
    whole = MTCNN(threads=1)
    monkeypatch.setattr("facenet.detect.mosaic.CANVAS_PIXELS", 10**9)
    expected = whole.detect_batch([*images, wide])
    monkeypatch.setattr("facenet.detect.mosaic.CANVAS_PIXELS", 9_000)  # strips of ~30 rows
    cut = MTCNN(threads=2).detect_batch([*images, wide])
    assert [len(f) for f in cut] == [len(f) for f in expected] and len(cut[-1]) >= 6
    for got, want in zip(cut, expected, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a.box == b.box and a.score == b.score
            np.testing.assert_array_equal(a.landmarks, b.landmarks)


@needs_lfw
def test_several_faces_in_a_mosaic(detector):
    names = LFW_SAMPLES[:4]
    canvas = np.full((520, 520, 3), 128, np.uint8)
    offsets = [(10, 10), (10, 260), (260, 10), (260, 260)]
    for name, (y, x) in zip(names, offsets, strict=True):
        canvas[y : y + 250, x : x + 250] = lfw(name)
    faces = [f for f in detector.detect(canvas) if f.score > 0.9 and f.width > 50]
    tiles = sorted(
        {(int(f.box[1] + f.height / 2) // 260, int(f.box[0] + f.width / 2) // 260) for f in faces}
    )
    assert tiles == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(faces) == 4
    for f in faces:
        _check_face(f, canvas.shape)


def test_blank_and_gradient_have_no_face(detector):
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []
    assert detector.detect(np.full((240, 320, 3), 255, np.uint8)) == []
    yy, xx = np.mgrid[0:300, 0:400]
    sky = np.stack([80 + xx * 0.2, 140 + yy * 0.3, 230 - yy * 0.4], -1)
    ground = np.stack([60 + xx * 0.1, 120 + 0 * xx, 40 + 0 * xx], -1)
    landscape = np.where(yy[..., None] < 180, sky, ground).clip(0, 255).astype(np.uint8)
    assert detector.detect(landscape) == []


@needs_lfw
def test_tiny_images(detector):
    tiny = np.asarray(Image.fromarray(lfw(LFW_SAMPLES[0])).resize((20, 20)))
    assert detector.detect(tiny) == []
    assert detector.detect(np.zeros((5, 7, 3), np.uint8)) == []
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []


@needs_lfw
def test_huge_image_reports_original_coordinates(detector):
    canvas = np.full((8000, 8000, 3), 90, np.uint8)
    face = Image.fromarray(lfw(LFW_SAMPLES[2])).resize((1000, 1000), Image.BILINEAR)
    y0, x0 = 5200, 3100
    canvas[y0 : y0 + 1000, x0 : x0 + 1000] = np.asarray(face)
    small = detector.detect(lfw(LFW_SAMPLES[2]))[0]
    faces = detector.detect(canvas)
    assert len(faces) >= 1
    got = np.array(faces[0].box)
    want = np.array(small.box) * 4 + [x0, y0, x0, y0]
    np.testing.assert_allclose(got, want, atol=40)  # 40 px at 8000 px = 1.6 px at 250
    np.testing.assert_allclose(faces[0].landmarks, small.landmarks * 4 + [x0, y0], atol=40)


@needs_lfw
def test_greyscale_and_rgba_via_load_image(detector, tmp_path):
    rgb = lfw(LFW_SAMPLES[1])
    grey_path = tmp_path / "grey.png"
    Image.fromarray(rgb).convert("L").save(grey_path)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    for image in (load_image(grey_path), load_image(rgba), rgba, np.asarray(Image.open(grey_path))):
        faces = detector.detect(image)
        assert faces
        _check_face(faces[0], rgb.shape)

"""Face crops for embedding: FaceNet's box-plus-margin crop, 5-point similarity warps, fallbacks.

All functions are pure: an RGB uint8 image in, an RGB uint8 (size, size, 3) array out.
Coordinates follow `facenet.types.Face`: continuous pixels, pixel (i, j) covering
[j, j+1) x [i, i+1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..metadata import ALIGNMENT_MODES, check_choice
from ..types import Face

#: ArcFace's five-point template for 112 x 112 crops (left eye, right eye, nose, mouth corners),
#: in pixel-index coordinates (pixel centres at integers).
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


#: dlib's face-chip framing (`get_face_chip(size=150, padding=0.25)`, what the dlib ResNet
#: teacher sees) as MTCNN's five landmarks, in unit crop coordinates: fitted on 1,991 CelebA faces
#: by `tools/fit_chip_template.py` (median chip-corner offset from dlib's own chip 3.9%).
CHIP_TEMPLATE = np.array(
    [
        [0.31415, 0.30457],
        [0.67817, 0.30185],
        [0.49144, 0.51271],
        [0.33389, 0.66013],
        [0.65881, 0.65775],
    ],
    dtype=np.float64,
)


def template(size: int, mode: str = "similarity") -> np.ndarray:
    """A mode's five-point template for a size x size crop, in continuous pixel coordinates."""
    if mode == "chip":
        return CHIP_TEMPLATE * size
    return (TEMPLATE_112 + 0.5) * (size / 112.0)


def align_face(
    image: np.ndarray, face: Face, size: int = 160, mode: str = "crop", margin: float = 32
) -> np.ndarray:
    """Cut one face out of `image` as a size x size RGB uint8 array.

    Args:
        image: RGB uint8 (H, W, 3), as returned by `facenet.images.load_image`.
        face: a detection in that image's coordinates.
        size: output side in pixels.
        mode: "crop": FaceNet's (davidsandberg's align_dataset_mtcnn) - the box grown by
            `margin * size / 160` pixels, half on each side, clipped to the image, resized to
            size x size (aspect not kept); "similarity": the similarity transform (rotation,
            uniform scale, shift; least squares) that maps the five landmarks onto ArcFace's
            template scaled to `size`; "chip": the same warp onto dlib's face-chip framing (eyes
            near the top third, the forehead in view); `margin` is not used by either (the
            template has its own).
        margin: FaceNet's margin in pixels at size 160.
    """
    check_choice("mode", mode, ALIGNMENT_MODES)
    if size < 1:
        raise ValueError(f"size must be positive; got {size!r}")
    image = np.asarray(image)
    if mode in ("similarity", "chip"):
        if face.landmarks is None:
            raise ValueError(f"{mode} alignment needs the face's five landmarks")
        matrix = similarity_transform(np.asarray(face.landmarks, float), template(size, mode))
        return warp(image, matrix, size)
    return _margin_crop(image, face.box, size, margin * size / 160.0)


def _margin_crop(image: np.ndarray, box, size: int, margin: float) -> np.ndarray:
    h, w = image.shape[:2]
    x1 = max(box[0] - margin / 2, 0.0)
    y1 = max(box[1] - margin / 2, 0.0)
    x2 = min(box[2] + margin / 2, float(w))
    y2 = min(box[3] + margin / 2, float(h))
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise ValueError(
            f"face box {tuple(round(v, 1) for v in box)} lies outside the {w}x{h} image"
        )
    pil = Image.fromarray(image)
    return np.asarray(pil.resize((size, size), Image.BILINEAR, box=(x1, y1, x2, y2)))


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) taking points `src` to `dst`: a 2 x 3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"need matching N x 2 point sets (N >= 2); got {src.shape} and {dst.shape}"
        )
    mu_s, mu_d = src.mean(0), dst.mean(0)
    sc, dc = src - mu_s, dst - mu_d
    var_s = (sc**2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("landmarks are degenerate (all in one place)")
    cov = dc.T @ sc / len(src)
    u, sv, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ np.diag(d) @ vt
    scale = (sv * d).sum() / var_s
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Apply a 2 x 3 image->crop affine map, bilinear; pre-shrunk (box filter) when reducing."""
    a, t = matrix[:, :2], matrix[:, 2]
    inv = np.linalg.inv(a)
    inv_t = -inv @ t
    # The crop's footprint in the image: cut it out first so big images are not resampled whole.
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], float) @ inv.T + inv_t
    h, w = image.shape[:2]
    left = int(np.clip(np.floor(corners[:, 0].min()) - 1, 0, w))
    top = int(np.clip(np.floor(corners[:, 1].min()) - 1, 0, h))
    right = int(np.clip(np.ceil(corners[:, 0].max()) + 1, 0, w))
    bottom = int(np.clip(np.ceil(corners[:, 1].max()) + 1, 0, h))
    if right - left < 1 or bottom - top < 1:
        return np.zeros((size, size, 3), np.uint8)
    pil = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    inv_t = inv_t - [left, top]
    scale = math.sqrt(abs(np.linalg.det(a)))  # crop pixels per image pixel
    factor = int(1.0 / scale) if scale > 0 else 1
    if factor >= 2:  # shrink by a box filter first so the bilinear warp does not alias
        factor = min(factor, pil.width, pil.height)
        pil = pil.reduce(factor)  # reduced pixel j covers original [j * factor, (j + 1) * factor)
        inv, inv_t = inv / factor, inv_t / factor
    data = (inv[0, 0], inv[0, 1], inv_t[0], inv[1, 0], inv[1, 1], inv_t[1])
    out = pil.transform(
        (size, size), Image.AFFINE, data, resample=Image.BILINEAR, fillcolor=(0, 0, 0)
    )
    return np.asarray(out, dtype=np.uint8)


def most_prominent(faces: Sequence[Face], image_shape: Sequence[int]) -> Face | None:
    """The largest face; boxes within 1% of the largest area tie, and the most central one wins."""
    if not faces:
        return None
    h, w = image_shape[:2]
    largest = max(f.area for f in faces)
    tied = [f for f in faces if f.area >= 0.99 * largest]

    def off_centre(f: Face) -> float:
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        return (cx - w / 2) ** 2 + (cy - h / 2) ** 2

    return min(tied, key=off_centre)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centred square of `image` (side = its shorter side), resized to size x size."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    pil = Image.fromarray(np.ascontiguousarray(image[top : top + side, left : left + side]))
    return np.asarray(pil.resize((size, size), Image.BILINEAR))

"""Consistent views: augmented views of face crops, drawn from a seed and regenerated exactly.

Why: distillation works best when the student sees the *same* augmented image the teacher saw
(Beyer et al., "Knowledge distillation: a good teacher is patient and consistent", CVPR 2022).
On a CPU the teacher is too slow to run inside every step, so its outputs are precomputed for K
views of every face (`tools/teacher_views.py`); each view is stored as one small row of numbers
(`PARAMS`), and the trainer regenerates exactly that view for the student from the row. Online
(the JAX trainer) the same row is rendered at the teacher's and the student's input sizes.

A view of a square crop: a similarity transform (scale about the centre, shift, rotation) and an
optional mirror, rendered by PIL at any output size; then an optional mixup with a partner crop
(the partner warped by the same geometry), brightness / contrast / saturation jitter, greyscale
and a low-resolution round trip. numpy and PIL only (no TensorFlow), deterministic: the same row
and crop give the same bytes, every time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: The columns of a view row, in order.
PARAMS = (
    "scale", "shift_x", "shift_y", "angle", "flip", "brightness", "contrast", "saturation",
    "grey", "lowres", "partner", "mix",
)  # fmt: skip
COLUMN = {name: i for i, name in enumerate(PARAMS)}
_GREY = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class ViewSpec:
    """The distribution views are drawn from (defaults: moderate face-crop augmentation)."""

    scale: tuple[float, float] = (0.9, 1.25)  # zoom, log-uniform (> 1: closer crop)
    shift: float = 0.06  # max centre shift, fraction of the crop side, per axis
    rotation: float = 10.0  # max rotation, degrees
    flip: float = 0.5  # probability of a mirror image
    brightness: float = 0.1  # max delta, fraction of 255
    contrast: float = 0.25  # factor in [1 - c, 1 + c]
    saturation: float = 0.3  # factor in [1 - s, 1 + s]
    greyscale: float = 0.1  # probability
    lowres: float = 0.15  # probability of a low-resolution round trip
    lowres_range: tuple[float, float] = (0.25, 0.6)  # its size factor
    mixup: float = 0.0  # probability of mixing with a partner crop
    mix_range: tuple[float, float] = (0.5, 1.0)  # the view's own weight when mixed

    @classmethod
    def identity(cls) -> ViewSpec:
        """No augmentation: every view is the crop itself (centre view)."""
        return cls(scale=(1.0, 1.0), shift=0.0, rotation=0.0, flip=0.0, brightness=0.0,
                   contrast=0.0, saturation=0.0, greyscale=0.0, lowres=0.0)  # fmt: skip


def draw_views(
    seed, count: int, spec: ViewSpec | None = None, num_images: int | None = None
) -> np.ndarray:
    """(count, len(PARAMS)) float64 view rows drawn from `seed` (an int or a sequence of ints).

    `num_images` is the number of crops partners are drawn from; without it (or with
    `spec.mixup == 0`) no view is mixed (partner -1, mix 1).
    """
    spec = spec or ViewSpec()
    rng = np.random.default_rng(seed)
    n = int(count)
    rows = np.zeros((n, len(PARAMS)), np.float64)

    def coin(p: float) -> np.ndarray:
        return (rng.random(n) < p).astype(np.float64)

    lo, hi = np.log(spec.scale[0]), np.log(spec.scale[1])
    rows[:, COLUMN["scale"]] = np.exp(rng.uniform(lo, hi, n))
    rows[:, COLUMN["shift_x"]] = rng.uniform(-spec.shift, spec.shift, n)
    rows[:, COLUMN["shift_y"]] = rng.uniform(-spec.shift, spec.shift, n)
    rows[:, COLUMN["angle"]] = rng.uniform(-spec.rotation, spec.rotation, n)
    rows[:, COLUMN["flip"]] = coin(spec.flip)
    rows[:, COLUMN["brightness"]] = rng.uniform(-spec.brightness, spec.brightness, n) * 255.0
    rows[:, COLUMN["contrast"]] = rng.uniform(1 - spec.contrast, 1 + spec.contrast, n)
    rows[:, COLUMN["saturation"]] = rng.uniform(1 - spec.saturation, 1 + spec.saturation, n)
    rows[:, COLUMN["grey"]] = coin(spec.greyscale)
    factor = rng.uniform(*spec.lowres_range, n)
    rows[:, COLUMN["lowres"]] = np.where(coin(spec.lowres) > 0, factor, 1.0)
    mixed = coin(spec.mixup) > 0 if num_images else np.zeros(n, bool)
    partner = rng.integers(0, max(int(num_images or 1), 1), n)
    rows[:, COLUMN["partner"]] = np.where(mixed, partner, -1)
    rows[:, COLUMN["mix"]] = np.where(mixed, rng.uniform(*spec.mix_range, n), 1.0)
    return rows


def render_view(
    crop: np.ndarray, row: np.ndarray, size: int, partner: np.ndarray | None = None
) -> np.ndarray:
    """The view `row` of a square RGB uint8 crop, as float32 (size, size, 3) pixels in 0..255.

    `partner` is the partner's crop when the row is mixed (row's partner >= 0); it is required
    then, and warped by the same geometry before mixing.
    """
    row = np.asarray(row, np.float64)
    img = _warp(crop, row, size)
    if row[COLUMN["partner"]] >= 0:
        if partner is None:
            raise ValueError("this view is mixed with a partner crop; pass `partner`")
        w = np.float32(row[COLUMN["mix"]])
        img = w * img + (np.float32(1) - w) * _warp(partner, row, size)
    img = _colour(img, row)
    factor = row[COLUMN["lowres"]]
    if factor < 1.0:
        small = max(4, int(round(size * factor)))
        pil = Image.fromarray(np.round(img).astype(np.uint8))
        pil = pil.resize((small, small), Image.BILINEAR).resize((size, size), Image.BILINEAR)
        img = np.asarray(pil, np.float32)
    return img


def _warp(crop: np.ndarray, row: np.ndarray, size: int) -> np.ndarray:
    """Scale/shift/rotate (and mirror) the crop into a size x size image (bilinear)."""
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        raise ValueError(f"a crop must be RGB uint8 (H, W, 3); got {crop.dtype} {crop.shape}")
    h, w = crop.shape[:2]
    scale = row[COLUMN["scale"]]
    theta = np.deg2rad(row[COLUMN["angle"]])
    # output pixel (u, v) -> source pixel: centre, mirror, scale to the source, rotate, shift
    k = np.array([w, h], np.float64) / (scale * size)
    cos, sin = np.cos(theta), np.sin(theta)
    sx = -1.0 if row[COLUMN["flip"]] > 0.5 else 1.0
    a = np.array([[cos * k[0] * sx, -sin * k[1]], [sin * k[0] * sx, cos * k[1]]])
    centre_out = np.array([size / 2.0, size / 2.0])
    centre_in = np.array([w * (0.5 + row[COLUMN["shift_x"]]), h * (0.5 + row[COLUMN["shift_y"]])])
    offset = centre_in - a @ centre_out
    coeffs = (a[0, 0], a[0, 1], offset[0], a[1, 0], a[1, 1], offset[1])
    out = Image.fromarray(crop).transform(
        (size, size), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(0, 0, 0)
    )
    return np.asarray(out, np.float32)


def _colour(img: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Brightness, contrast (about the image mean), saturation and greyscale, clipped."""
    grey = img @ _GREY
    sat = np.float32(row[COLUMN["saturation"]])
    img = grey[..., None] + sat * (img - grey[..., None])
    img = img + np.float32(row[COLUMN["brightness"]])
    mean = img.mean(dtype=np.float32)
    img = mean + np.float32(row[COLUMN["contrast"]]) * (img - mean)
    if row[COLUMN["grey"]] > 0.5:
        img = np.repeat((img @ _GREY)[..., None], 3, axis=-1)
    return np.clip(img, 0.0, 255.0).astype(np.float32)


def view_seed(seed: int, epoch: int) -> list[int]:
    """The seed of an epoch's views (one per (seed, epoch): resuming regenerates the same)."""
    return [int(seed), int(epoch), 0x5EED]

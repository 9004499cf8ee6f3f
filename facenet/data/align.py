"""On-the-fly alignment of a training set, cached: each image is detected and cropped once.

The cache mirrors the dataset (`<cache>/<identity>/<file name>.png`: `a.jpg` and `a.png` are
two faces; a photo newer than its crop is aligned again) and holds crops at
`context_size(image_size)` whose central `image_size` square is exactly the crop inference uses
(`align_face(..., size=image_size, mode="crop", margin=margin)`), so random crops around the
centre see real context. Images where no face is found are centre-cropped instead.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..detect import align_face
from ..detect.crops import face_crops
from ..images import load_image
from ..types import Face
from .dataset import FaceDataset
from .pipeline import context_size

log = logging.getLogger(__name__)


def context_crop(rgb: np.ndarray, face: Face, image_size: int, margin: float) -> np.ndarray:
    """A crop at context_size(image_size) whose central image_size square is the inference crop."""
    big = context_size(image_size)
    x1, y1, x2, y2 = face.box
    grow = margin * image_size / 160.0  # what align_face adds, in source pixels
    # inference covers (w + grow) source px in image_size output px; cover big/image_size of that
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = (w + grow) * big / image_size / 2
    half_h = (h + grow) * big / image_size / 2
    box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    hgt, wid = rgb.shape[:2]
    pad = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - wid, box[3] - hgt))) + 1
    if pad > 1:  # the enlarged box leaves the image: edge-pad it rather than clipping (aspect)
        rgb = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        box = tuple(v + pad for v in box)
    pil = Image.fromarray(rgb)
    return np.asarray(pil.resize((big, big), Image.BILINEAR, box=box))


def align_cached(
    dataset: FaceDataset,
    cache_dir: str | os.PathLike,
    image_size: int = 160,
    margin: float = 32,
    *,
    detector=None,
    batch: int = 16,
    show_progress: bool = True,
) -> FaceDataset:
    """The dataset with paths pointing at cached context crops, aligning the missing ones."""
    cache = Path(cache_dir) / f"crop{image_size}_m{margin:g}"
    targets = []
    for path, label in zip(dataset.paths, dataset.labels, strict=True):
        targets.append(cache / dataset.classes[int(label)] / (Path(path).name + ".png"))
    todo = [i for i, t in enumerate(targets) if _stale(t, dataset.paths[i])]
    if todo:
        if detector is None:
            from ..detect import make_detector

            detector = make_detector()
        log.info("aligning %d images into %s", len(todo), cache)
        no_face = 0
        for start in tqdm(range(0, len(todo), batch), disable=not show_progress, desc="align",
                          unit="batch"):  # fmt: skip
            chunk = todo[start : start + batch]
            rgbs = [load_image(dataset.paths[i]) for i in chunk]
            cut = functools.partial(context_crop, image_size=image_size, margin=margin)
            for i, face in zip(chunk, face_crops(rgbs, detector, cut, context_size(image_size)),
                               strict=True):  # fmt: skip
                no_face += face.fallback
                _atomic_png(targets[i], face.crop)
        if no_face:
            log.warning("%d of %d images had no detected face: centre-cropped", no_face, len(todo))
    out = FaceDataset([str(t) for t in targets], dataset.labels.copy(), list(dataset.classes),
                      cache, dict(dataset.extra))  # fmt: skip
    out.extra["source"] = "context"
    return out


def _stale(crop: Path, source: str) -> bool:
    """A crop is redone when missing or older than its photo (a photo replaced since), as make
    decides; reading every photo to hash it would cost as much as aligning it again."""
    try:
        return crop.stat().st_mtime < os.stat(source).st_mtime
    except FileNotFoundError:
        return True


def _atomic_png(path: Path, crop: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    Image.fromarray(crop).save(tmp, format="PNG")
    os.replace(tmp, path)


__all__ = ["align_cached", "align_face", "context_crop"]

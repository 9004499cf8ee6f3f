"""The one crop path: detect, pick the most prominent face, cut it out, or fall back.

Why one place: the API (`FaceNet.crops`, `embed`, `verify`), training validation, dataset
alignment (`detect.aligner`, `data.align`) and evaluation all turn photos into face crops; they
must agree pixel for pixel, or a model is validated on other crops than it serves.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import ArgumentError
from ..types import Face
from .align import align_face, center_crop, most_prominent

#: Cuts one face out of an image: (RGB uint8 image, face) -> (S, S, 3) uint8 crop.
Cut = Callable[[np.ndarray, Face], np.ndarray]


def aligned(size: int, mode: str = "crop", margin: float = 32) -> Cut:
    """The model's cut: `align_face` at `size` in alignment `mode` with `margin`."""
    return functools.partial(_align, size=size, mode=mode, margin=margin)


def _align(image: np.ndarray, face: Face, *, size: int, mode: str, margin: float) -> np.ndarray:
    return align_face(image, face, size, mode, margin)


def crop_face(
    image: np.ndarray, faces: Sequence[Face], cut: Cut, fallback_size: int | None = None
) -> Face | None:
    """The most prominent of `faces` with its `crop` cut from `image`; with no face, the centred
    square resized to `fallback_size` as a `fallback` Face (box = that square, score 0), or None
    when `fallback_size` is None."""
    face = most_prominent(faces, image.shape)
    if face is not None:
        return dataclasses.replace(face, crop=cut(image, face))
    if fallback_size is None:
        return None
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    box = (float(left), float(top), float(left + side), float(top + side))
    return Face(box=box, score=0.0, crop=center_crop(image, fallback_size), fallback=True)


def face_crops(
    images: Sequence[np.ndarray],
    detector,
    cut: Cut,
    fallback_size: int | None = None,
    detections: Sequence[Sequence[Face]] | None = None,
) -> list[Face | None]:
    """`crop_face` for each RGB image, detecting them in one `detector.detect_batch` call
    (unless the caller gives the `detections`)."""
    if not images:
        return []
    if detections is None:
        detections = detector.detect_batch(list(images))
    elif len(detections) != len(images):  # (zip's ValueError named no argument)
        raise ArgumentError(
            f"detections: {len(detections)} lists of faces for {len(images)} images"
        )
    return [
        crop_face(image, faces, cut, fallback_size)
        for image, faces in zip(images, detections, strict=True)
    ]

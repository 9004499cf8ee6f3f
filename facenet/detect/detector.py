"""The detector seam: what a face detector must do, and the one place the default is built.

Why: the API, the gallery, training validation, dataset alignment and the server all detect
faces; with one `Detector` protocol and one factory, a model runs with the detection recorded in
its file (`ModelInfo.detection`) wherever it is used, and another detector is one module whose
class satisfies the protocol.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..types import Face

#: The default detector's settings (MTCNN's): what a model file without `detection` runs with.
DEFAULT_SETTINGS: dict[str, Any] = {
    "min_face_size": 20.0,
    "thresholds": (0.6, 0.7, 0.7),
    "max_side": 1600,
}


@runtime_checkable
class Detector(Protocol):
    """Finds faces: boxes (x1, y1, x2, y2), five landmarks and a score, in the image's own
    pixel coordinates, most confident first."""

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces of one RGB uint8 image (H, W, 3)."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """The faces of each image, in order (batched where the detector can)."""


def detector_settings(recorded: Mapping[str, Any] | None = None, **overrides) -> dict[str, Any]:
    """The defaults, updated by `recorded` (a model file's `ModelInfo.detection`) and then by
    `overrides` (None values ignored); unknown keys are a ValueError."""
    settings = dict(DEFAULT_SETTINGS)
    for source in (recorded or {}), {k: v for k, v in overrides.items() if v is not None}:
        unknown = set(source) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(
                f"unknown detector setting(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(DEFAULT_SETTINGS)}"
            )
        settings.update(source)
    settings["thresholds"] = tuple(float(t) for t in settings["thresholds"])
    return settings


def make_detector(recorded: Mapping[str, Any] | None = None, **overrides) -> Detector:
    """The default detector (MTCNN on ONNX Runtime) with `detector_settings(recorded,
    **overrides)`: every caller builds its detector here."""
    from .mtcnn import MTCNN

    return MTCNN(**detector_settings(recorded, **overrides))

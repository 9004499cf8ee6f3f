"""The server's model: one FaceNet shared by concurrent requests, and the face helpers it needs.

Why its own module: the request logic (`service.py`) and the model's concurrency (detection one
request per core, embedder calls serialised and merged, `batching.py`) change for different
reasons; a model migration swaps this object whole.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..runtime.common import num_threads
from ..types import Face, Verification
from .batching import BatchedEmbedder, SharedDetector

#: Faces embedded per network call. Small on purpose: the runtime's memory arena keeps the
#: activations of its largest batch for the process's life (about 70 MB at 32 faces of 112 px).
EMBED_BATCH = 8


class ServedModel:
    """The server's FaceNet without a lock around whole requests: detection runs for up to one
    request per core at once, the embedder calls of concurrent requests are merged
    (`batching`)."""

    def __init__(self, model, max_faces: int):
        from ..api import FaceNet

        self._model = model
        self._batched = FaceNet(
            BatchedEmbedder(model.embedder, max_crops=EMBED_BATCH),
            model.info,
            model_id=model.model_id,
            source=getattr(model, "source", None),
            detector=SharedDetector(model.detector, slots=_detector_slots(model.detector)),
            name=getattr(model, "name", None),
        )
        self.max_faces = max_faces
        self.model_id = model.model_id
        self.info = model.info

    @property
    def threshold(self) -> float:
        return float(self._model.threshold)

    @property
    def calibrated(self) -> bool:
        """Whether the model carries a calibrated threshold (else it is FaceNet's 1.1)."""
        return self.info.threshold is not None

    @property
    def runtime(self) -> str:
        return str(getattr(self._model.embedder, "runtime", "?"))

    def represent(self, image) -> list[Face]:
        """Every face with its embedding, at most `max_faces` (the gallery calls this)."""
        return self.represent_capped(image)[0]

    def represent_capped(self, rgb: np.ndarray) -> tuple[list[Face], int]:
        """The `max_faces` largest faces of a photo with their embeddings (only those are
        aligned and embedded), and how many faces were found."""
        found = self._batched.detector.detect(rgb)
        faces = largest_faces(found, self.max_faces)
        if not faces:
            return [], len(found)
        embeddings = self._embed([rgb] * len(faces), faces)
        faces = [
            dataclasses.replace(f, embedding=e) for f, e in zip(faces, embeddings, strict=True)
        ]
        return faces, len(found)

    def _embed(self, rgbs: list[np.ndarray], faces: list[Face]) -> np.ndarray:
        """Align each face on its photo and embed the crops."""
        from ..detect import align_face

        info = self.info
        crops = np.stack(
            [
                align_face(rgb, face, size=info.input_size, mode=info.alignment, margin=info.margin)
                for rgb, face in zip(rgbs, faces, strict=True)
            ]
        )
        return self._batched.embed_crops(crops, batch_size=EMBED_BATCH)

    def compare(
        self, first: np.ndarray, second: np.ndarray, threshold: float | None
    ) -> tuple[list[list[Face]], Verification | None]:
        """`FaceNet.verify`, keeping every face it found: (faces of each image, the
        verification; None when an image has no face)."""
        faces = self._batched.detector.detect_batch([first, second])
        if not all(faces):
            return faces, None
        return faces, self._batched.verify(first, second, threshold=threshold, detections=faces)


def _detector_slots(detector) -> int:
    """Requests detected at once: one per core for the bundled MTCNN (its ONNX Runtime sessions
    run concurrently), one for any other detector (it may hold state between calls)."""
    from ..detect.mtcnn import MTCNN

    return num_threads() if isinstance(detector, MTCNN) else 1


def largest_faces(faces: list[Face], limit: int) -> list[Face]:
    """The `limit` largest faces, in their detection order (the most prominent is among them)."""
    if len(faces) <= limit:
        return list(faces)
    keep = set(sorted(range(len(faces)), key=lambda i: -faces[i].area)[:limit])
    return [f for i, f in enumerate(faces) if i in keep]


def rescale(face: Face, scale: tuple[float, float]) -> Face:
    """A face found on a downscaled photo, in the photo's own pixels."""
    sx, sy = scale
    if sx == 1 and sy == 1:
        return face
    x1, y1, x2, y2 = face.box
    landmarks = None if face.landmarks is None else np.asarray(face.landmarks) * (sx, sy)
    return dataclasses.replace(face, box=(x1 * sx, y1 * sy, x2 * sx, y2 * sy), landmarks=landmarks)

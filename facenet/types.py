"""Plain result types shared by detection, embedding, verification and the gallery."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Face:
    """One detected face, in the coordinates of the original image.

    box: (x1, y1, x2, y2) floats; landmarks: 5 x 2 array (left eye, right eye, nose,
    left mouth corner, right mouth corner) as seen in the image; embedding: unit vector, once
    computed; crop: the aligned crop the network sees, once cut (`FaceNet.crops`); fallback:
    no face was found and `crop` is the image's centred square (box = that square, score 0).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)
    crop: np.ndarray | None = field(default=None, compare=False, repr=False)
    fallback: bool = False

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """Box area in pixels (0 for a degenerate box)."""
        return max(self.width, 0.0) * max(self.height, 0.0)

    def to_dict(self) -> dict:
        """JSON-ready fields: box, score, and landmarks / embedding when present."""
        out = {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 5)}
        if self.landmarks is not None:
            out["landmarks"] = np.round(np.asarray(self.landmarks, float), 2).tolist()
        if self.embedding is not None:
            out["embedding"] = np.asarray(self.embedding, float).round(6).tolist()
        return out


@dataclass(frozen=True)
class Verification:
    """Result of comparing two faces: squared L2 distance between unit embeddings (0..4)."""

    distance: float
    threshold: float
    same: bool
    #: The two faces compared (box, landmarks, crop), when the images were detected.
    faces: tuple[Face, Face] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready fields: distance, threshold, same."""
        return {"distance": self.distance, "threshold": self.threshold, "same": self.same}

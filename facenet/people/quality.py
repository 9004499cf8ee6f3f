"""A face's quality from what the detector already gives, and the gate that keeps poor faces from
seeding clusters.

Four cheap signals, no extra model (as Ente and PhotoPrism do; see
../shared/docs/people-library-notes.md):

- `eye_px`: distance between the two eye landmarks in photo pixels (face size);
- `score`: the detector's confidence;
- `blur`: variance of the Laplacian of the face box, in grey levels, after resizing the box to
  `BLUR_SIDE` pixels (so the figure does not grow with the face's size);
- `yaw` / `roll` in degrees from the five landmarks: roll is the eye line's angle, yaw the
  nose's offset from the eyes' midpoint along the eye line (asin of it over half the eye
  distance: 0 frontal, +-90 profile).

A face failing any gate is still stored, embedded and searchable, and may join a person that
it is close to (at a stricter distance), but it never seeds a cluster or a new person. The
thresholds (`GATE`) were set beforehand from what the products use (Ente: blur 50 soft, score
0.8 for clustering; PhotoPrism: faces of 25-50 px, about 12-20 px between the eyes) and then
measured, not tuned, by `benchmarks/people_quality.py`: docs/recognition.md has the share of
LFW and UTKFace faces each drops and the verification and clustering accuracy on those kept
(same-person pairs missed: 1.2% when both faces pass, 9.2% when one fails).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

#: Side (pixels) the face box is resized to before measuring blur.
BLUR_SIDE = 96

#: The gate: a face passes when every measure is within its bound (see the module doc).
GATE = {
    "min_eye_px": 12.0,
    "min_score": 0.90,
    "min_blur": 40.0,
    "max_yaw": 50.0,
    "max_roll": 40.0,
}


@dataclass(frozen=True)
class Quality:
    """What the gate looks at, for one face."""

    eye_px: float
    score: float
    blur: float
    yaw: float
    roll: float

    def failures(self, gate: dict[str, float] | None = None) -> list[str]:
        """The names of the gates this face fails (empty: it passes)."""
        gate = GATE if gate is None else gate
        out = []
        if self.eye_px < gate["min_eye_px"]:
            out.append("size")
        if self.score < gate["min_score"]:
            out.append("score")
        if self.blur < gate["min_blur"]:
            out.append("blur")
        if abs(self.yaw) > gate["max_yaw"]:
            out.append("yaw")
        if abs(self.roll) > gate["max_roll"]:
            out.append("roll")
        return out

    def to_dict(self) -> dict:
        """JSON-ready measures, rounded."""
        return {k: round(float(v), 3) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Quality:
        """The inverse of `to_dict`."""
        return cls(**{k: float(data[k]) for k in ("eye_px", "score", "blur", "yaw", "roll")})


def measure(rgb: np.ndarray, box, landmarks, score: float) -> Quality:
    """The quality measures of one detected face in the photo `rgb`."""
    yaw, roll, eye_px = pose(landmarks)
    return Quality(eye_px=eye_px, score=float(score), blur=blur(rgb, box), yaw=yaw, roll=roll)


def pose(landmarks) -> tuple[float, float, float]:
    """(yaw degrees, roll degrees, eye distance px) from the five landmarks (left eye, right eye,
    nose, mouth corners); (0, 0, 0) without landmarks, so the size gate fails."""
    if landmarks is None:
        return 0.0, 0.0, 0.0
    points = np.asarray(landmarks, np.float64).reshape(-1, 2)
    left, right, nose = points[0], points[1], points[2]
    axis = right - left
    eye_px = float(np.hypot(*axis))
    if eye_px == 0:
        return 0.0, 0.0, 0.0
    roll = math.degrees(math.atan2(axis[1], axis[0]))
    offset = float(np.dot(nose - (left + right) / 2, axis / eye_px)) / (eye_px / 2)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, offset))))
    return yaw, roll, eye_px


def blur(rgb: np.ndarray, box) -> float:
    """Variance of the 4-neighbour Laplacian of the face box (grey, `BLUR_SIDE` px square)."""
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = max(0, int(x1)), max(0, int(y1))
    right, bottom = min(w, int(math.ceil(x2))), min(h, int(math.ceil(y2)))
    if right - left < 2 or bottom - top < 2:
        return 0.0
    region = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right])).convert("L")
    grey = np.asarray(region.resize((BLUR_SIDE, BLUR_SIDE), Image.BILINEAR), np.float64)
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())

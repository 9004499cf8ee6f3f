"""Face crops kept in the gallery, so a face can be re-embedded by another model without its photo.

Every enrolled face keeps the region of its photo around the face: a square centred on the
detection box, `CROP_FACTOR` times the box's longer side (clipped to the photo), scaled so that
the square is at most `CROP_SIDE` pixels, JPEG quality `CROP_QUALITY`. With the face's box and
five landmarks mapped into the crop, any model re-aligns the face from the crop (chip, similarity
or FaceNet's margin crop) as it would from the photo. The sizes come from
`tools/measure_face_crop.py` (60 LFW faces, as they are and enlarged 3 times so that the crop is
downscaled; shared 2-core machine): the alignment footprints around the box are at most 1.45
(chip), 1.60 (similarity) and 1.30 (FaceNet's 160 px margin crop) times its longer side, so 1.8
leaves room for more tilted faces. At 1.8 and 224 px, re-aligning from the crop instead of the
photo moved the embedding by squared L2 0.0004-0.0005 on average and 0.0012 at most with
facenet-mobilenet (112 px; threshold 0.1749), 0.0004 and 0.0011 with dlib-resnet (150 px;
0.1793): under 2% of the thresholds, at 11.5 KB a face; 160 px would save 4 KB a face at two to
three times the error. `tests/test_gallery_crops.py` keeps it under 2% for every bundled model.

The crop's geometry is `(left, top, sx, sy)`: a photo point (x, y) is (x - left) * sx,
(y - top) * sy in the crop.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..types import Face

#: Side of the stored square, in multiples of the detection box's longer side (measured).
CROP_FACTOR = 1.8
#: Largest stored side in pixels (smaller faces are kept at their own resolution).
CROP_SIDE = 224
CROP_QUALITY = 92
#: Thumbnails shown by the server: the box grown by this factor (as before crops were stored).
THUMBNAIL_FACTOR = 1.4


@dataclass(frozen=True)
class StoredCrop:
    """An encoded face crop and where it lies in its photo."""

    image: bytes
    left: float
    top: float
    sx: float
    sy: float

    @property
    def geometry(self) -> str:
        """JSON text of how the crop sits in the photo (stored beside the image)."""
        return json.dumps([self.left, self.top, self.sx, self.sy])

    @classmethod
    def from_row(cls, image: bytes, geometry: str) -> StoredCrop:
        """A StoredCrop from its database columns."""
        left, top, sx, sy = json.loads(geometry)
        return cls(bytes(image), left, top, sx, sy)

    def decode(self) -> np.ndarray:
        """The crop as RGB uint8."""
        with Image.open(io.BytesIO(self.image)) as image:
            return np.asarray(image.convert("RGB"))

    def face_in_crop(self, box, landmarks) -> Face:
        """The face's box and landmarks (photo coordinates) in this crop's coordinates."""
        x1, y1, x2, y2 = (float(v) for v in box)
        box = (
            (x1 - self.left) * self.sx,
            (y1 - self.top) * self.sy,
            (x2 - self.left) * self.sx,
            (y2 - self.top) * self.sy,
        )
        points = None
        if landmarks is not None:
            points = (np.asarray(landmarks, np.float64) - [self.left, self.top]) * [
                self.sx,
                self.sy,
            ]
        return Face(box=box, score=1.0, landmarks=points)

    def thumbnail(self, box, size: int) -> bytes:
        """A square JPEG of the face (its box grown by `THUMBNAIL_FACTOR`), `size` px a side."""
        face = self.face_in_crop(box, None)
        return square_jpeg(self.decode(), face.box, THUMBNAIL_FACTOR, size, quality=85)


def cut_crop(
    rgb: np.ndarray,
    box,
    factor: float = CROP_FACTOR,
    side: int = CROP_SIDE,
    quality: int = CROP_QUALITY,
) -> StoredCrop:
    """The crop to keep for a face with `box` in photo `rgb` (other sizes: measurements only)."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = _square(box, factor, w, h)
    if right <= left or bottom <= top:
        left, top, right, bottom = 0, 0, w, h
    scale = min(1.0, side / max(right - left, bottom - top))
    width = max(1, round((right - left) * scale))
    height = max(1, round((bottom - top) * scale))
    # reducing_gap: a box-filter reduction first, then Lanczos (10x faster on camera photos)
    image = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right])).resize(
        (width, height), Image.LANCZOS, reducing_gap=3.0
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return StoredCrop(
        out.getvalue(), float(left), float(top), width / (right - left), height / (bottom - top)
    )


def square_jpeg(rgb: np.ndarray, box, factor: float, size: int, quality: int = 85) -> bytes:
    """A JPEG of the square `factor` times `box`'s longer side around it, at most `size` px."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = _square(box, factor, w, h)
    crop = rgb[top:bottom, left:right] if right > left and bottom > top else rgb
    image = Image.fromarray(np.ascontiguousarray(crop))
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _square(box, factor: float, w: int, h: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * factor
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(max(0, np.floor(cx - side / 2))), int(max(0, np.floor(cy - side / 2)))
    right, bottom = int(min(w, np.ceil(cx + side / 2))), int(min(h, np.ceil(cy + side / 2)))
    return left, top, right, bottom

"""One gallery face embedded again by another model (`migrate`): from its photo, else its crop.

The photo is used only when it is still there with the same content (sha256); a face of a legacy
gallery (no landmarks stored) is found again in its photo by detection and box overlap, and gets
its landmarks, crop and photo path kept on the way. A face with neither photo nor crop gets no
vector and a note saying why (the caller flags it; nothing is dropped).

Which face has a photo file is read from what was stored, never from how its `source` is
spelled (`_photo_path`): a file named `upload:x.jpg` is a photo like any other, and a face
enrolled from memory (a server upload, recorded as `upload:NAME`) is never opened as a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ImageError
from ..images import load_image
from ..types import Face
from .crops import StoredCrop, cut_crop
from .store import Store

#: A face of a legacy gallery (no landmarks) is found again in its photo at this box overlap.
MIN_IOU = 0.5


def reembed_face(store: Store, model, row) -> tuple[bytes | None, str, str | None, tuple | None]:
    """(embedding bytes or None, origin, note, backfill) for one face: from its photo, else
    from its stored crop, else none (flagged). backfill: (landmarks json, crop, photo path) for
    a legacy face found again in its photo."""
    box = json.loads(row["box"]) if row["box"] else None
    landmarks = json.loads(row["landmarks"]) if row["landmarks"] else None
    note = None
    crop_row = store.db.execute(
        "SELECT image, geometry FROM face_crops WHERE face_id = ?", (row["id"],)
    ).fetchone()
    photo = _photo_path(row, has_crop=crop_row is not None)
    if box is None:
        return None, "unavailable", "added as a ready embedding: no photo or crop to re-embed", None
    if photo is not None:
        try:
            image, changed = _load_if_same(photo, row["content_hash"])
        except ImageError as exc:
            image, changed = None, str(exc)
        if image is not None:
            vector, found = _embed_face(model, image, box, landmarks)
            if vector is not None:
                backfill = None
                if crop_row is None:  # a face enrolled before crops were kept: keep one now
                    backfill = (_json_points(found), cut_crop(image, box), str(photo.resolve()))
                return vector, "photo", None, backfill
            note = f"{photo}: face not found again in the photo"
        else:
            note = changed
    else:
        note = "no photo file (enrolled from an image in memory)"
    if crop_row is not None:
        crop = StoredCrop.from_row(crop_row["image"], crop_row["geometry"])
        local = crop.face_in_crop(box, landmarks)
        vector, _ = _embed_face(
            model, crop.decode(), local.box, None if landmarks is None else local.landmarks
        )
        if vector is not None:
            return vector, "crop", note, None
    return None, "unavailable", f"{note}; no stored crop to re-embed from", None


#: What a face read from memory was recorded as before photos had their own column (m002).
LEGACY_LABELS = ("array #", "PIL image")


def _photo_path(row, has_crop: bool = True) -> Path | None:
    """The face's photo file, by what was stored: the `photo` column, the absolute path of the
    file it was read from (recorded since schema m002; empty for an image in memory), whatever
    that file is called. A face without one but with a crop was stored since m002 from memory:
    its `source` is a label (`upload:NAME`, `array #i`), never opened. A face with neither
    (written before m002, never re-embedded since) has its file's path as given in `source`,
    unless it names an image in memory the way facenet did then (LEGACY_LABELS; `upload:` came
    later, so such a source is a file's name). `has_crop`: whether a crop of the face is stored
    (every face stored since m002 has one)."""
    if row["photo"]:
        return Path(row["photo"])
    source = row["source"]
    if has_crop or not source or source.startswith(LEGACY_LABELS):
        return None
    return Path(source)


def _load_if_same(path: Path, content_hash: str) -> tuple[np.ndarray | None, str]:
    from .enrol import _file_hash

    if not path.is_file():
        return None, f"photo {path} is missing"
    if _file_hash(path, str(path)) != content_hash:
        return None, f"photo {path} has changed since enrolment"
    return load_image(path), ""


def _embed_face(model, image: np.ndarray, box, landmarks) -> tuple[bytes | None, object]:
    """The model's embedding of the face at `box` (with `landmarks` when known) in `image`, and
    the landmarks it used (found again by detection when none were stored)."""
    if landmarks is not None and hasattr(model, "embed_crops"):
        from ..detect import align_face

        info = model.info
        face = Face(box=tuple(box), score=1.0, landmarks=np.asarray(landmarks, np.float64))
        crop = align_face(
            image, face, size=info.input_size, mode=info.alignment, margin=info.margin
        )
        vector = np.asarray(model.embed_crops(crop[None])[0], np.float32)
        return _unit_bytes(vector), landmarks
    faces = model.represent(image)
    best = max(faces, key=lambda f: _iou(f.box, box), default=None)
    if best is None or _iou(best.box, box) < MIN_IOU:
        return None, None
    return _unit_bytes(np.asarray(best.embedding, np.float32)), best.landmarks


def _unit_bytes(vector: np.ndarray) -> bytes | None:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0:
        return None
    return (vector / norm).astype(np.float32).tobytes()


def _iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _json_points(points) -> str | None:
    if points is None:
        return None
    return json.dumps(np.round(np.asarray(points, np.float64), 3).tolist())

"""What the routes do, without HTTP: decode uploads, run the model, read and change the gallery.

Everything here is synchronous and thread-safe; the routes call it from worker threads so the
event loop never waits on inference or SQLite. The model runs one call at a time (a lock around
it); the gallery's one SQLite connection is used under another lock, never held during inference
except while enrolling.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import GalleryError
from ..images import load_image
from ..types import Face
from .settings import IMAGE_FORMATS, Settings

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client error with an HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Upload:
    """One uploaded photo, decoded: the client's file name is only a label."""

    filename: str
    rgb: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_image(data: bytes, filename: str | None, max_pixels: int) -> Upload:
    """Decode an uploaded photo by its content; refuse non-images and oversized images unread."""
    label = _label(filename)
    if not data:
        raise ApiError(415, "not_an_image", f"{label}: empty file")
    try:
        image = Image.open(io.BytesIO(data), formats=list(IMAGE_FORMATS))
        width, height = image.size  # read from the header: nothing is decoded yet
        if width * height > max_pixels:
            raise ApiError(
                413,
                "image_too_large",
                f"{label}: image too large ({width}x{height} = {width * height:,} pixels; "
                f"the limit is {max_pixels:,})",
            )
        image.load()
        rgb = load_image(image, label)
    except ApiError:
        raise
    except UnidentifiedImageError:
        raise ApiError(
            415,
            "not_an_image",
            f"{label}: not a supported image (accepted: {', '.join(IMAGE_FORMATS)})",
        ) from None
    except Image.DecompressionBombError:
        raise ApiError(
            413, "image_too_large", f"{label}: image too large (decompression bomb)"
        ) from None
    except Exception as exc:  # any decoder failure on hostile bytes is the client's problem
        raise ApiError(
            415, "not_an_image", f"{label}: corrupt or unreadable image ({exc})"
        ) from None
    return Upload(label, rgb)


def _label(filename: str | None) -> str:
    """A safe display name for an upload: the base name only, printable, at most 100 chars."""
    name = os.path.basename((filename or "").replace("\\", "/")).strip()
    name = re.sub(r"[^\w.\- ()]", "_", name)[:100]
    return name or "upload"


class LockedModel:
    """A FaceNet whose calls run one at a time (detector and embedder hold state)."""

    def __init__(self, model):
        self._model = model
        self._lock = threading.Lock()
        self.model_id = model.model_id
        self.info = model.info

    @property
    def threshold(self) -> float:
        return float(self._model.threshold)

    @property
    def runtime(self) -> str:
        return str(getattr(self._model.embedder, "runtime", "?"))

    def represent(self, image) -> list[Face]:
        with self._lock:
            return self._model.represent(image)

    def compare(self, first: np.ndarray, second: np.ndarray):
        """What `FaceNet.verify` computes, keeping the faces it found: (faces of each image,
        the most prominent face of each (None: no face), their two embeddings or None)."""
        from ..detect import align_face, most_prominent

        info = self.info
        with self._lock:
            faces = self._model.detector.detect_batch([first, second])
            chosen = [
                most_prominent(f, rgb.shape) for f, rgb in zip(faces, (first, second), strict=True)
            ]
            if any(face is None for face in chosen):
                return faces, chosen, None
            crops = np.stack(
                [
                    align_face(
                        rgb, face, size=info.input_size, mode=info.alignment, margin=info.margin
                    )
                    for rgb, face in zip((first, second), chosen, strict=True)
                ]
            )
            return faces, chosen, self._model.embed_crops(crops)


class Service:
    """The server's state: one model and an optional gallery (which keeps the face crops that
    thumbnails are cut from)."""

    def __init__(self, model, gallery, settings: Settings):
        self.model = LockedModel(model)
        self.gallery = gallery
        self.settings = settings
        self._gallery_lock = threading.RLock()
        if gallery is not None:
            with self._gallery_lock:
                gallery.attach(self.model)  # every gallery inference goes through the lock
            # thumbnails written by servers before the gallery kept crops: still shown
            self.thumbnails = Path(str(gallery.path) + ".thumbs")
        else:
            self.thumbnails = None

    # -- model ------------------------------------------------------------------------------

    def model_info(self) -> dict:
        info = self.model.info
        return {
            "model_id": self.model.model_id,
            "name": info.name,
            "backbone": info.backbone,
            "input_size": info.input_size,
            "embedding_size": info.embedding_size,
            "preprocessing": info.preprocessing,
            "alignment": info.alignment,
            "threshold": self.model.threshold,
            "calibrated": info.threshold is not None,
            "runtime": self.model.runtime,
        }

    def embed(self, upload: Upload) -> dict:
        faces = self.model.represent(upload.rgb)
        return {**_size(upload), "faces": [f.to_dict() for f in faces]}

    def verify(self, first: Upload, second: Upload, threshold: float | None) -> dict:
        faces, chosen, embeddings = self.model.compare(first.rgb, second.rgb)
        for upload, face in zip((first, second), chosen, strict=True):
            if face is None:
                raise ApiError(422, "no_face", f"{upload.filename}: no face found")
        distance = float(np.sum((embeddings[0] - embeddings[1]) ** 2))
        threshold = self.model.threshold if threshold is None else float(threshold)
        return {
            "distance": round(distance, 6),
            "threshold": threshold,
            "same": distance <= threshold,
            "images": [
                {
                    **_size(upload),
                    "chosen": next(i for i, f in enumerate(found) if f is face),
                    "faces": [_face_out(f) for f in found],
                }
                for upload, found, face in zip((first, second), faces, chosen, strict=True)
            ],
        }

    def cluster(
        self, uploads: list[Upload], threshold: float | None, method: str, min_size: int
    ) -> dict:
        from ..clustering import cluster

        images, faces, owners = [], [], []
        for i, upload in enumerate(uploads):
            found = self.model.represent(upload.rgb)
            images.append({**_size(upload), "filename": upload.filename, "faces": len(found)})
            faces.extend(found)
            owners.extend([i] * len(found))
        threshold = self.model.threshold if threshold is None else float(threshold)
        embeddings = np.stack([f.embedding for f in faces]) if faces else np.zeros((0, 1))
        labels = cluster(embeddings, threshold, method=method, min_size=min_size)
        out_faces = [
            {"image": owner, "box": _box(f), "score": round(float(f.score), 5), "label": int(label)}
            for f, owner, label in zip(faces, owners, labels, strict=True)
        ]
        groups: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(int(label), []).append(i)
        clusters = [
            {"label": label, "faces": members}
            for label, members in sorted(groups.items(), key=lambda kv: (kv[0] < 0, -len(kv[1])))
        ]
        return {"threshold": threshold, "images": images, "faces": out_faces, "clusters": clusters}

    # -- gallery ----------------------------------------------------------------------------

    def _require_gallery(self):
        if self.gallery is None:
            raise ApiError(
                404, "no_gallery", "this server has no gallery (start it with --gallery)"
            )
        return self.gallery

    def gallery_counts(self) -> dict | None:
        if self.gallery is None:
            return None
        with self._gallery_lock:
            return {"people": len(self.gallery.people()), "faces": len(self.gallery)}

    def people(self) -> list[dict]:
        gallery = self._require_gallery()
        with self._gallery_lock:
            faces: dict[str, list[int]] = {}
            for record in gallery.faces():
                faces.setdefault(record.person, []).append(record.id)
            return [_person_out(p, faces.get(p.name, [])) for p in gallery.people()]

    def person(self, person_id: int) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            person = self._person(person_id)
            return _person_out(person, [r.id for r in gallery.faces(person.name)])

    def _person(self, person_id: int):
        for person in self.gallery.people():
            if person.id == person_id:
                return person
        raise ApiError(404, "person_not_found", f"no person with id {person_id} in the gallery")

    def _person_id_by_name(self, name: str) -> int | None:
        return next((p.id for p in self.gallery.people() if p.name == name), None)

    def identify(self, upload: Upload, k: int, threshold: float | None) -> dict:
        from ..gallery import UNKNOWN

        gallery = self._require_gallery()
        faces = self.model.represent(upload.rgb)  # outside the gallery lock
        threshold = gallery.threshold if threshold is None else float(threshold)
        out = []
        if faces:
            with self._gallery_lock:
                found = gallery.search(np.stack([f.embedding for f in faces]), k)
            for face, matches in zip(faces, found, strict=True):
                best = matches[0] if matches else None
                known = best is not None and best.distance <= threshold
                out.append(
                    {
                        **_face_out(face),
                        "name": best.name if known else UNKNOWN,
                        "person_id": best.person_id if known else None,
                        "distance": None if best is None else round(best.distance, 6),
                        "matches": [
                            {
                                "name": m.name,
                                "person_id": m.person_id,
                                "face_id": m.face_id,
                                "distance": round(m.distance, 6),
                            }
                            for m in matches
                        ],
                    }
                )
        return {**_size(upload), "threshold": threshold, "faces": out}

    def enroll(self, name: str, uploads: list[Upload]) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            try:
                report = gallery.enroll(name, [u.rgb for u in uploads])
            except GalleryError as exc:
                raise ApiError(400, "invalid_name", str(exc)) from None
            enrolled = [
                {"filename": _upload_name(e.source, uploads), "face_id": e.face_id,
                 "faces_in_photo": e.faces_in_photo}
                for e in report.enrolled
            ]  # fmt: skip
            skipped = [
                {"filename": _upload_name(s.source, uploads), "reason": _reason(s.reason)}
                for s in report.skipped
            ]
            if not report.enrolled:
                reasons = "; ".join(f"{s['filename']}: {s['reason']}" for s in skipped)
                raise ApiError(422, "nothing_enrolled", f"no face was enrolled ({reasons})")
            person_name = report.enrolled[0].person
            person_id = self._person_id_by_name(person_name)
            person = self._person(person_id)
            return {
                "person": _person_out(person, [r.id for r in gallery.faces(person.name)]),
                "enrolled": enrolled,
                "skipped": skipped,
            }

    def rename(self, person_id: int, new_name: str) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            person = self._person(person_id)
            if new_name.strip() != person.name and self._person_id_by_name(new_name.strip()):
                raise ApiError(
                    409, "name_taken", f"a person named {new_name.strip()!r} already exists"
                )
            try:
                gallery.rename(person.name, new_name)
            except GalleryError as exc:
                raise ApiError(400, "invalid_name", str(exc)) from None
            return self.person(person_id)

    def merge(self, person_id: int, into_id: int) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            src, dst = self._person(person_id), self._person(into_id)
            if src.id == dst.id:
                raise ApiError(400, "invalid_merge", "cannot merge a person into themself")
            gallery.merge(src.name, dst.name)
            return self.person(into_id)

    def remove_person(self, person_id: int) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            person = self._person(person_id)
            face_ids = [r.id for r in gallery.faces(person.name)]
            removed = gallery.remove_person(person.name)
            for face_id in face_ids:
                self._thumbnail_path(face_id).unlink(missing_ok=True)
            return {"id": person.id, "name": person.name, "faces_removed": removed}

    def remove_face(self, face_id: int) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            try:
                record = gallery.remove_face(face_id)
            except GalleryError:
                raise ApiError(404, "face_not_found", f"no face with id {face_id}") from None
            self._thumbnail_path(face_id).unlink(missing_ok=True)
            return {"id": record.id, "person": record.person}

    def thumbnail(self, face_id: int) -> bytes:
        """The face's thumbnail, cut from the crop the gallery keeps; only for a face that is
        still in the gallery (a removed face's crop went with it, in the same transaction)."""
        gallery = self._require_gallery()
        with self._gallery_lock:
            data = gallery.thumbnail(face_id, self.settings.thumbnail_size)
            if data is None and gallery.has_face(face_id):
                try:
                    data = self._thumbnail_path(face_id).read_bytes()
                except OSError:
                    data = None
        if data is None:
            raise ApiError(404, "thumbnail_not_found", f"no thumbnail for face {face_id}")
        return data

    def _thumbnail_path(self, face_id: int) -> Path:
        return self.thumbnails / f"{int(face_id)}.jpg"


# -- helpers ----------------------------------------------------------------------------------


def _size(upload: Upload) -> dict:
    return {"width": upload.width, "height": upload.height}


def _box(face: Face) -> list[float]:
    return [round(float(v), 2) for v in face.box]


def _face_out(face: Face) -> dict:
    out = face.to_dict()
    out.pop("embedding", None)
    return out


def _person_out(person, face_ids: list[int]) -> dict:
    return {
        "id": person.id,
        "name": person.name,
        "metadata": person.metadata,
        "faces": person.faces,
        "face_ids": face_ids,
        "created": person.created,
    }


def _upload_index(source: str, uploads: list[Upload]) -> int:
    """Gallery reports name in-memory inputs "array #i": map back to the i-th upload."""
    match = re.search(r"#(\d+)$", source)
    index = int(match.group(1)) if match else -1
    return index if 0 <= index < len(uploads) else -1


def _upload_name(source: str, uploads: list[Upload]) -> str:
    index = _upload_index(source, uploads)
    return uploads[index].filename if index >= 0 else source


def _reason(reason: str) -> str:
    # "duplicate: already enrolled (as X)" and "no face found" are meant for users as they are;
    # unreadable-image reasons name an in-memory array, which means nothing to a client.
    return re.sub(r"array #\d+: ", "", reason)

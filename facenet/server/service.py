"""What the routes do, without HTTP: decode uploads, run the model, read and change the gallery.

Everything here is synchronous and thread-safe; the routes call it from worker threads so the
event loop never waits on inference or SQLite. The detector and embedder calls of concurrent
requests are merged into shared calls (`batching.py`); the gallery's one SQLite connection is
used under a lock, never held during inference except while enrolling.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from ..errors import GalleryChangedError, GalleryError
from ..images import label_name
from ..types import Face
from .served_model import ServedModel, largest_faces, rescale
from .settings import Settings
from .uploads import ApiError, Probe, Upload, decode_image, probe_image

__all__ = ["ApiError", "Probe", "ServedModel", "Service", "Upload", "decode_image", "probe_image"]

log = logging.getLogger(__name__)


class Service:
    """The server's state: one model and an optional gallery (which keeps the face crops that
    thumbnails are cut from)."""

    def __init__(self, model, gallery, settings: Settings):
        self.model = ServedModel(model, settings.max_faces)
        self.gallery = gallery
        self.settings = settings
        self._gallery_lock = threading.RLock()
        self._library = None  # the people library over `gallery`, made when first used
        if gallery is not None:
            gallery.use_lock(self._gallery_lock)  # the gallery's reads and writes hold it
            with self._gallery_lock:
                gallery.attach(self.model)
            # thumbnails written by servers before the gallery kept crops: still shown
            self.thumbnails = Path(str(gallery.path) + ".thumbs")
            self._gallery_file = (gallery, _file_identity(gallery.path))
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
            "calibrated": self.model.calibrated,
            "runtime": self.model.runtime,
        }

    def _represent(self, upload: Upload) -> tuple[list[Face], dict]:
        """The (capped) faces of an upload in its own pixels, and what answers say of the cap."""
        faces, found = self.model.represent_capped(upload.rgb)
        faces = [rescale(f, upload.scale) for f in faces]
        return faces, {"faces_found": found, "faces_capped": found > len(faces)}

    def embed(self, upload: Upload) -> dict:
        faces, cap = self._represent(upload)
        return {**_size(upload), **cap, "faces": [f.to_dict() for f in faces]}

    def verify(self, first: Upload, second: Upload, threshold: float | None) -> dict:
        """`FaceNet.verify` on two uploads, with every face found in each (up to the cap)."""
        faces, verification = self.model.compare(first.rgb, second.rgb, threshold)
        for upload, found in zip((first, second), faces, strict=True):
            if not found:
                raise ApiError(422, "no_face", f"{upload.filename}: no face found")
        return {
            "distance": round(verification.distance, 6),
            "threshold": verification.threshold,
            "same": verification.same,
            "calibrated": self.model.calibrated,
            "images": [
                self._verified(upload, found, face)
                for upload, found, face in zip(
                    (first, second), faces, verification.faces, strict=True
                )
            ],
        }

    def _verified(self, upload: Upload, found: list[Face], chosen: Face) -> dict:
        """One photo of a verification: its faces (the largest, up to the cap) and which one
        was compared (the most prominent: always among them)."""
        listed = largest_faces(found, self.settings.max_faces)
        return {
            **_size(upload),
            "faces_found": len(found),
            "faces_capped": len(found) > len(listed),
            "chosen": next(i for i, f in enumerate(listed) if f.box == chosen.box),
            "faces": [_face_out(rescale(f, upload.scale)) for f in listed],
        }

    def cluster(
        self, uploads: list[Upload], threshold: float | None, method: str, min_size: int
    ) -> dict:
        from ..clustering import cluster

        images, faces, owners = [], [], []
        for i, upload in enumerate(uploads):  # a generator: one photo decoded at a time
            found, cap = self._represent(upload)
            images.append(
                {**_size(upload), **cap, "filename": upload.filename, "faces": len(found)}
            )
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

    def check_gallery_file(self) -> None:
        """503 `gallery_missing` when the served gallery's file was deleted, or another file put
        in its place, since the server opened it: a change would go to the open, unlinked file
        and be lost when the server stops. A gallery a migration reopened is taken as it is."""
        gallery = self.gallery
        if gallery is None:
            return
        with self._gallery_lock:
            opened, identity = self._gallery_file
            if opened is not gallery:  # reopened from its path by a migration's switch
                self._gallery_file = (gallery, _file_identity(gallery.path))
                return
            if identity is None or _file_identity(gallery.path) != identity:
                raise ApiError(
                    503, "gallery_missing",
                    f"the gallery file {gallery.path.name} was deleted or replaced while the "
                    "server ran; changes are refused (restart the server)",
                )  # fmt: skip

    def library_service(self):
        """The people library over the served gallery (built again after a migration swaps the
        gallery); 404 `no_library` without a gallery."""
        from ..people import Library
        from .library_service import LibraryService

        if self.gallery is None:
            raise ApiError(
                404, "no_library", "this server has no library (start it with --gallery)"
            )
        with self._gallery_lock:
            library = self._library
            if library is None or library.gallery is not self.gallery:
                library = self._library = Library.from_gallery(self.gallery)
            return LibraryService(library, self._gallery_lock, self.settings.thumbnail_size)

    def gallery_counts(self) -> dict | None:
        if self.gallery is None:
            return None
        with self._gallery_lock:
            people = self._named_people()
            return {"people": len(people), "faces": sum(p.faces for p in people)}

    def people(self) -> list[dict]:
        gallery = self._require_gallery()
        with self._gallery_lock:
            faces: dict[str, list[int]] = {}
            for record in gallery.faces():
                faces.setdefault(record.person, []).append(record.id)
            return [_person_out(p, faces.get(p.name, [])) for p in self._named_people()]

    def person(self, person_id: int) -> dict:
        gallery = self._require_gallery()
        with self._gallery_lock:
            person = self._person(person_id)
            return _person_out(person, [r.id for r in gallery.faces(person.name)])

    def _person(self, person_id: int):
        for person in self._named_people():
            if person.id == person_id:
                return person
        raise ApiError(404, "person_not_found", f"no person with id {person_id} in the gallery")

    def _person_id_by_name(self, name: str) -> int | None:
        return next((p.id for p in self._named_people() if p.name == name), None)

    def _named_people(self) -> list:
        """The gallery's people: its named ones. The people library keeps its unnamed clusters
        (name None) in the same table; the gallery endpoints never show or change those."""
        return [p for p in self.gallery.people() if p.name is not None]

    def identify(self, upload: Upload, k: int, threshold: float | None) -> dict:
        from ..gallery import UNKNOWN

        gallery = self._require_gallery()
        faces, cap = self._represent(upload)  # outside the gallery lock
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
        return {**_size(upload), **cap, "threshold": threshold, "faces": out}

    def enroll(self, name: str, uploads: list[Upload], person_id: int | None = None) -> dict:
        """Enrol uploads as `name` (created if new), or into person `person_id` only (never
        a new person of their old name when a concurrent request renamed or removed them)."""
        gallery = self._require_gallery()
        try:  # detects and embeds outside the gallery's lock (`Gallery.use_lock`)
            labels = [u.filename for u in uploads]  # recorded as `upload:NAME`, never opened
            images = [u.rgb for u in uploads]
            report = gallery.enroll(name, images, labels=labels, person_id=person_id)
        except GalleryChangedError as exc:  # its reason: the message without the server's path
            raise ApiError(409, "gallery_changed", exc.reason) from None
        except GalleryError as exc:
            raise ApiError(400, "invalid_name", str(exc)) from None
        with self._gallery_lock:
            if gallery is not self.gallery:  # switched by a migration since the enrolment
                message = "a migration switched the gallery during this enrolment; enrol again"
                raise ApiError(409, "gallery_changed", message)
            enrolled = [
                {"filename": label_name(e.source), "face_id": e.face_id,
                 "faces_in_photo": e.faces_in_photo}
                for e in report.enrolled
            ]  # fmt: skip
            skipped = [
                {"filename": label_name(s.source), "reason": _reason(s)} for s in report.skipped
            ]
            if not report.enrolled:
                reasons = "; ".join(f"{s['filename']}: {s['reason']}" for s in skipped)
                raise ApiError(422, "nothing_enrolled", f"no face was enrolled ({reasons})")
            person_name = report.enrolled[0].person
            if person_id is None:
                person_id = self._person_id_by_name(person_name)
            named = {p.id for p in self._named_people()}
            if person_id not in named or not all(
                gallery.has_face(e.face_id) for e in report.enrolled
            ):
                # removed (or renamed, or a face removed) by a request between the enrolment's
                # commit and this lock: what it enrolled is not there to answer with
                message = f"{person_name!r} was removed or changed meanwhile; enrol again"
                raise ApiError(409, "gallery_changed", message)
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
        """Delete a named person's face. The people library's other faces (of unnamed clusters,
        or of nobody) are not the gallery's: 404 (the library rejects them instead)."""
        gallery = self._require_gallery()
        with self._gallery_lock:
            library = self.library_service()
            try:
                if library.face(face_id)["state"] != "named":
                    raise GalleryError(f"face {face_id} is not a gallery face")
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


def _file_identity(path) -> tuple[int, int] | None:
    """The file at `path` (device, inode), or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


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


def _reason(skipped) -> str:
    # "duplicate: already enrolled (as X)" and "no face found" are meant for users as they are;
    # unreadable-image reasons name the upload's label, which the answer gives as `filename`.
    return skipped.reason.replace(f"{skipped.source}: ", "")

"""What the library endpoints do, without HTTP: call `facenet.Library` under the server's
gallery lock and turn its answers into the JSON shapes of `library_schemas`.

Why the server's lock: the library lives in the served gallery (one SQLite connection, one
index); holding the lock the gallery endpoints hold keeps their calls from interleaving and a
model migration from swapping the gallery in the middle of one. `add` reads its photos
(detection and embedding) outside it: the library takes it only to store and place the faces.
"""

from __future__ import annotations

import threading
from pathlib import PurePath

from ..errors import GalleryChangedError, GalleryError, LibraryNotFoundError
from ..images import label_name
from .uploads import ApiError


class LibraryService:
    """The server's people library (a `facenet.Library` over the served gallery), its calls
    one at a time."""

    def __init__(self, library, lock: threading.RLock, thumbnail_size: int = 112):
        self.library = library
        self._lock = lock
        self.thumbnail_size = thumbnail_size

    # -- reads --------------------------------------------------------------------------------

    def counts(self) -> dict:
        """People (named and unnamed), their faces and the unassigned faces, counted (rejected
        faces are not: they are nobody's and never will be)."""
        with self._lock:
            people = _shown(self.library.people())
            unassigned = len(self.library.faces(unassigned=True))
        named = sum(1 for p in people if p.name is not None)
        return {
            "people": len(people),
            "named": named,
            "clusters": len(people) - named,
            "faces": sum(p.face_count for p in people) + unassigned,
            "unassigned": unassigned,
        }

    def people(self, named: bool | None = None) -> list[dict]:
        """Everyone, named people first (`named` filters), as the library orders them; not the
        unnamed clusters left empty by corrections (until a recluster drops them)."""
        with self._lock:
            return [p.to_dict() for p in _shown(self.library.people(named=named))]

    def person(self, person_id: int) -> dict:
        """One person or cluster (404 if unknown)."""
        with self._lock:
            return self._call(self.library.person, person_id).to_dict()

    def faces(self, person_id: int | None, unassigned: bool, limit: int, offset: int) -> list[dict]:
        """A page of faces: of one person, or every face (or the unassigned ones)."""
        with self._lock:
            if person_id is not None:
                found = self._call(self.library.faces, person_id)
            else:
                found = self.library.faces(unassigned=unassigned)
        return [_client_json(f) for f in found[offset : offset + limit]]

    def face(self, face_id: int) -> dict:
        """One face (404 if unknown)."""
        with self._lock:
            return _client_json(self._call(self.library.face, face_id))

    def thumbnail(self, face_id: int) -> bytes:
        """The face's JPEG thumbnail, cut from the crop the library keeps."""
        with self._lock:
            try:
                return self.library.thumbnail(face_id, self.thumbnail_size)
            except GalleryError:
                raise ApiError(
                    404, "thumbnail_not_found", f"no thumbnail for face {face_id}"
                ) from None

    def suggestions(self, person_id: int, k: int) -> list[dict]:
        """The unassigned faces nearest a person, nearest first."""
        with self._lock:
            found = self._call(self.library.suggestions, person_id, k=k)
        return [{"face_id": x.face_id, "distance": round(float(x.distance), 6)} for x in found]

    def constraints(self) -> list[dict]:
        """Every stored correction."""
        with self._lock:
            return [c.to_dict() for c in self.library.constraints()]

    # -- changes ------------------------------------------------------------------------------

    def add(self, uploads, names: tuple[str, ...]) -> dict:
        """Add uploaded photos (`uploads` yields them decoded, one at a time), labelled with
        their file names (recorded as `upload:NAME`, never opened as files)."""
        # the library holds the lock while it stores (see the module doc)
        report = self._call(self.library.add, (u.rgb for u in uploads), labels=list(names))
        out = report.to_dict()
        out["duplicates"] = [label_name(d) for d in out["duplicates"]]
        out["failed"] = [
            {"filename": label_name(f["photo"]), "reason": f["error"]} for f in out["failed"]
        ]
        return out

    def recluster(self) -> dict:
        """Re-cluster the unassigned faces and unnamed clusters."""
        with self._lock:
            return self._call(self.library.recluster).to_dict()

    def name(self, person_id: int, name: str) -> dict:
        """Name a person or cluster; a name another person has answers 400 (merge instead)."""
        with self._lock:
            return self._call(self.library.name, person_id, name, code="invalid_name").to_dict()

    def merge(self, person_ids: list[int]) -> dict:
        """Merge people; answers the survivor. Unknown ids answer 404 before anything changes."""
        with self._lock:
            for person_id in person_ids:  # unknown ids answer 404, not 400
                self._call(self.library.person, person_id)
            survivor = self._call(self.library.merge, person_ids, code="invalid_merge")
            return self.library.person(survivor).to_dict()

    def split(self, person_id: int, face_ids: list[int]) -> dict:
        """The given faces become a new cluster; answers it and what is left."""
        with self._lock:
            self._call(self.library.person, person_id)
            new_id = self._call(self.library.split, person_id, face_ids, code="invalid_split")
            return {
                "person": self.library.person(new_id).to_dict(),
                "rest": self.library.person(person_id).to_dict(),
            }

    def move(self, face_id: int, person_id: int | None) -> dict:
        """Move a face to a person, or to nobody (None)."""
        with self._lock:
            self._call(self.library.face, face_id)
            if person_id is not None:
                self._call(self.library.person, person_id)
            return _client_json(self._call(self.library.move, face_id, person_id))

    def reject(self, face_id: int, reason: str) -> dict:
        """Reject a face (not a face, or ignore it): never placed again."""
        with self._lock:
            return _client_json(self._call(self.library.reject, face_id, reason))

    def link(self, kind: str, face_a: int, face_b: int) -> dict:
        """Record a must- or cannot-link between two faces; answers the stored link."""
        with self._lock:
            for face_id in (face_a, face_b):
                self._call(self.library.face, face_id)
            function = self.library.must_link if kind == "must" else self.library.cannot_link
            self._call(function, face_a, face_b, code="invalid_link")
            low, high = sorted((face_a, face_b))
            found = [
                c for c in self.library.constraints()
                if (c.kind, c.face_a, c.face_b) == (kind, low, high)
            ]  # fmt: skip
        if not found:  # a must-link between faces already one group adds no row
            return {"id": None, "kind": kind, "face_a": low, "face_b": high,
                    "origin": "user", "created": "", "person_id": None}  # fmt: skip
        return found[-1].to_dict()

    def unlink(self, face_a: int, face_b: int) -> dict:
        """Forget the links between two faces."""
        with self._lock:
            return {"removed": self._call(self.library.unlink, face_a, face_b)}

    def unreject(self, face_id: int) -> dict:
        """Undo a rejection."""
        with self._lock:
            return _client_json(self._call(self.library.unreject, face_id))

    def accept(self, person_id: int, face_id: int) -> dict:
        """Accept a suggestion: the face joins the person."""
        return self._answer(self.library.accept, person_id, face_id)

    def decline(self, person_id: int, face_id: int) -> dict:
        """Decline a suggestion: the face is never this person."""
        return self._answer(self.library.decline, person_id, face_id)

    def _answer(self, function, person_id: int, face_id: int) -> dict:
        with self._lock:
            self._call(self.library.person, person_id)
            self._call(self.library.face, face_id)
            return _client_json(self._call(function, person_id, face_id))

    @staticmethod
    def _call(function, *args, code: str = "library_error", **kwargs):
        """A library call; its refusals (one line) answer 404 for an unknown id
        (`LibraryNotFoundError`, by its kind), 409 for a gallery switched by a migration
        meanwhile (`GalleryChangedError`), else 400."""
        try:
            return function(*args, **kwargs)
        except LibraryNotFoundError as exc:
            raise ApiError(404, f"{exc.kind}_not_found", str(exc)) from None
        except GalleryChangedError as exc:  # its reason: the message without the server's path
            raise ApiError(409, "gallery_changed", exc.reason) from None
        except GalleryError as exc:
            raise ApiError(400, code, str(exc)) from None


def _shown(people: list) -> list:
    """People as the API lists them: named ones, and unnamed clusters with a face."""
    return [p for p in people if p.name is not None or p.face_count > 0]


def _client_json(face) -> dict:
    """A face for HTTP clients: `photo` is the file's name only (a photo added from the
    command line on the server's machine is stored with its path there, none of a client's
    business); an upload's is its file name (recorded as `upload:NAME`)."""
    out = face.to_dict()
    if out.get("photo"):
        out["photo"] = PurePath(label_name(out["photo"])).name
    return out

"""Browsing and editing a gallery's people and faces (a mixin of `Gallery`).

Why apart: listing, renaming, merging and removing need the database and the index, never the
model, so they read on their own; every change is one transaction, then the index follows.
"""

from __future__ import annotations

import json

from ..errors import ArgumentError, GalleryError
from ..metadata import as_integer
from .crops import StoredCrop
from .results import FaceRecord, Person, face_record_from_row, person_from_row
from .validation import MAX_ID, check_ids, check_metadata, check_name, known_id


class EditingMixin:
    """People and faces: list, look up, add, rename, merge, remove."""

    def __len__(self) -> int:
        """The number of faces in the file (and its index): those of named people, and a
        people library's others (unnamed clusters, unassigned, rejected)."""
        return self._store.aggregate()[0]

    def people(self) -> list[Person]:
        """Every named person, by name (a people library's unnamed clusters are listed by
        `facenet.people.Library.people`)."""
        return [person_from_row(r) for r in self._store.people()]

    def person(self, name: str) -> Person:
        """The person called `name` (GalleryError when there is none)."""
        for p in self.people():
            if p.name == name:
                return p
        raise GalleryError(f"no person named {name!r} in the gallery")

    def faces(self, name: str | None = None) -> list[FaceRecord]:
        """The faces of `name` (of every named person when None), oldest first."""
        person_id = None if name is None else self._person_id(name)
        return [face_record_from_row(r) for r in self._store.faces(person_id)]

    def unsearched_faces(self) -> int:
        """Faces kept with another model's embedding (a migration could not re-embed them, see
        `facenet.gallery.migrate`): listed, never matched."""
        return len(self) - self._store.aggregate(model_id=self.model_id)[0]

    def has_face(self, face_id: int) -> bool:
        """True when a face with this id is enrolled."""
        number = known_id(face_id)
        return number is not None and self._store.face(number) is not None

    def thumbnail(self, face_id: int, size: int = 112) -> bytes | None:
        """A square JPEG of an enrolled face, cut from the crop kept with it; None when there is
        no such face, or it was enrolled before crops were kept (and not migrated since)."""
        if not 0 < (as_integer(size) or 0) <= 4096:
            raise ArgumentError(f"thumbnail size must be an integer of 1-4096 px; got {size!r:.40}")
        number = known_id(face_id)
        row = None if number is None else self._store.crop(number)
        if row is None:
            return None
        crop = StoredCrop.from_row(row["image"], row["geometry"])
        return crop.thumbnail(json.loads(row["box"]), size)

    def add_person(self, name: str, metadata: dict | None = None) -> Person:
        """Add a person with no face yet (enrol photos later)."""
        name = check_name(name)
        with self._lock, self._store.transaction() as db:
            if self._store.person(name) is not None:
                raise GalleryError(f"a person named {name!r} already exists")
            self._store.add_person(db, name, check_metadata(metadata))
        return self.person(name)

    def rename(self, old: str, new: str) -> Person:
        """Rename a person; refused when `new` exists (merge them instead)."""
        new = check_name(new)
        with self._lock, self._store.transaction() as db:
            person_id = self._person_id(old)
            holder = self._store.person(new)
            if holder is not None and holder["id"] != person_id:  # the same name again: no-op
                raise GalleryError(
                    f"a person named {new!r} already exists (use merge to combine the two)"
                )
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))
        return self.person(new)

    def merge(self, src: str, dst: str) -> Person:
        """Move every face of `src` to `dst`, then delete `src`; metadata is combined, `dst`'s
        values winning. Both must exist."""
        if src == dst:
            raise GalleryError(f"cannot merge {src!r} into itself")
        with self._lock, self._store.transaction() as db:
            src_row, dst_row = self._person_row(src), self._person_row(dst)
            metadata = {**json.loads(src_row["metadata"]), **json.loads(dst_row["metadata"])}
            db.execute(
                "UPDATE faces SET person_id = ? WHERE person_id = ?", (dst_row["id"], src_row["id"])
            )
            self._store.update_metadata(db, dst_row["id"], metadata)
            db.execute("DELETE FROM people WHERE id = ?", (src_row["id"],))
        return self.person(dst)

    def remove_person(self, name: str) -> int:
        """Delete a person and their faces; return how many faces went. A people-library photo
        left with no face is forgotten (`Store.delete_faces`): adding it again detects it anew."""
        with self._lock:
            index = self.index
            with self._store.transaction() as db:
                person_id = self._person_id(name)
                face_ids = self._store.face_ids(person_id)
                self._store.delete_faces(db, face_ids)
                db.execute("DELETE FROM people WHERE id = ?", (person_id,))
            index.remove(face_ids)
            self._save_index()
        return len(face_ids)

    def remove_face(self, face_id: int) -> FaceRecord:
        """Delete one face: of a named person (who stays, even with no face left), or a
        people-library face of an unnamed cluster (dropped when left empty) or of nobody
        (`FaceRecord.person` None). GalleryError when there is no such face."""
        return self.remove_faces([face_id])[0]

    def remove_faces(self, face_ids: list[int]) -> list[FaceRecord]:
        """Delete several faces (as `remove_face`), all or nothing: one id with no face raises
        GalleryError naming every such id, and nothing is removed, so a typo in a list never
        leaves the gallery half edited. A repeated id counts once."""
        wanted = list(dict.fromkeys(check_ids(face_ids)))
        with self._lock:
            index = self.index
            with self._store.transaction() as db:
                rows = {f: self._face_row(f) for f in wanted}
                missing = [str(f) for f, row in rows.items() if row is None]
                if missing:
                    label = "id" if len(missing) == 1 else "ids"
                    raise GalleryError(
                        f"no face with {label} {', '.join(missing)} in the gallery; nothing removed"
                    )
                self._store.delete_faces(db, wanted)
            index.remove(wanted)
            self._save_index()
        return [face_record_from_row(rows[f]) for f in wanted]

    def _face_row(self, face_id: int):
        """The face's row with its person's name, None when there is none (also for an id no
        SQLite integer can hold, which could never have been given out)."""
        if not 0 < face_id <= MAX_ID:
            return None
        return self._store.face_with_person(face_id)

    def _person_row(self, name: str):
        row = self._store.person(name)
        if row is None:
            raise GalleryError(f"no person named {name!r} in the gallery")
        return row

    def _person_id(self, name: str) -> int:
        return int(self._person_row(name)["id"])

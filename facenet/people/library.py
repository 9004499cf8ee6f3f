"""The people library: every face of every photo, grouped into people as photos arrive, with
corrections that later adds and re-clusterings honour.

It lives in a gallery file (`facenet.gallery.Gallery`: one SQLite database, one `Index`):
named people and unnamed clusters are rows of the gallery's `people` table (name NULL for a
cluster), a face may belong to nobody, and the corrections are rows of `face_links` (see
`links.py`) and the faces' `rejected` column. Each batch of photos is one transaction (faces,
their quality, their assignment), so a killed `add` leaves whole batches; `recluster` and every
correction are one transaction each.

    >>> from facenet import FaceNet, Library
    >>> lib = Library.open("photos.db", FaceNet.load())
    >>> lib.add(["party.jpg", "beach.jpg"]).summary()
    >>> [(p.id, p.name, p.face_count) for p in lib.people()]
    >>> lib.name(3, "Ada"); lib.merge([3, 7]); lib.split(3, [41, 42])
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

from ..errors import LibraryError, LibraryNotFoundError
from ..gallery import Gallery
from ..gallery.validation import check_id, gallery_path, known_id
from . import links, settings
from .adding import AddMixin
from .corrections import CorrectionsMixin
from .quality import GATE
from .reclustering import recluster
from .records import Constraint, Face, Person, ReclusterReport, face_from_row
from .settings import Settings

log = logging.getLogger(__name__)
#: A low-quality face joins a person only this much closer than a good one (Ente: 0.16/0.24).
LOW_QUALITY_FACTOR = 0.75

FACE_SQL = "SELECT f.*, p.name AS person_name FROM faces f LEFT JOIN people p ON p.id = f.person_id"


class Library(AddMixin, CorrectionsMixin):
    """Every face of a photo collection, grouped into people (see the module doc).

    Open with `Library.open(path, model)`; the model is needed to `add` photos, not to list,
    correct or re-cluster. `threshold` (squared L2) decides whether a face joins a person and
    whether two faces open a cluster; `min_faces` is the smallest cluster. Both are recorded in
    the file (`settings`, `configure`): the threshold follows the gallery (its own threshold,
    else its model's verification threshold, across migrations) unless one is set. A long-lived
    library (a server's) takes the file's settings changed by another process at its next use.
    """

    def __init__(
        self, gallery: Gallery, threshold: float, min_faces: int | None, source: str = "set"
    ):
        self.gallery = gallery
        self._store = gallery._store  # the gallery's database: one file, one set of migrations
        #: held while the database or index is read or written, not while photos are read
        #: (the gallery's: a server's own lock when it serves the gallery, `Gallery.use_lock`)
        self._lock = gallery._lock
        count = None if min_faces is None else int(min_faces)
        #: the settings in use, as of `_seen` (`Gallery.meta_generation`): read again when the
        #: file's change (`_current`); `_given` (threshold, min_faces) hold for the session
        self._in_use = Settings(float(threshold), source, count, None)
        self._seen = gallery.meta_generation()
        self._given: tuple[float | None, int | None] = (None, None)
        self._repair = False  # opened to repair an invalid recorded setting (`from_gallery`)
        self.gate = dict(GATE)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        model=None,
        *,
        index: str = "faiss",
        create: bool = True,
        threshold: float | None = None,
        min_faces: int | None = None,
        repair: bool = False,
    ) -> Library:
        """Open the library (a gallery file) at `path`, creating it when `create` and missing.
        `threshold` and `min_faces` given are recorded when the library is created, else hold
        for this session only (`configure` records them). `repair`: open it even though its
        recorded threshold or min_faces is invalid, to `configure` a valid one."""
        path = gallery_path(path)
        if not path.exists() and not create:  # not Gallery.open's advice (`gallery create`)
            hint = f"`facenet library add {path} PHOTOS` makes one"
            raise LibraryError(f"{path}: no such library ({hint})")
        if not path.exists() and create:
            if model is None:
                raise LibraryError(f"{path}: no such library; creating one needs a model")
            # settings given are checked before a file is made (a refused one leaves none)
            settings.check(path, 1.0 if threshold is None else threshold,
                           2 if min_faces is None else min_faces)  # fmt: skip
            gallery = Gallery.create(path, model, index=index)
        else:
            gallery = Gallery.open(path, model, index=None if index == "faiss" else index)
        try:
            return cls.from_gallery(
                gallery, threshold=threshold, min_faces=min_faces, repair=repair
            )
        except BaseException:
            gallery.close()  # `open` made this gallery: it closes it (`from_gallery` never does)
            raise

    @classmethod
    def from_gallery(
        cls,
        gallery: Gallery,
        *,
        threshold: float | None = None,
        min_faces: int | None = None,
        repair: bool = False,
    ) -> Library:
        """The library in an open gallery (its settings recorded in the file on first use; a
        `threshold` or `min_faces` given later holds for this session only, and says so in the
        log). The gallery stays its owner's: a bad threshold or min_faces (given, or recorded
        in the file) raises LibraryError and leaves it open; with `repair`, a bad recorded
        threshold or min_faces does not, so that `configure` can replace it."""
        seen = gallery.meta_generation()  # before reading: a change meanwhile is read again
        found, writes = settings.resolve(gallery, threshold, min_faces, repair=repair)
        if writes:
            with gallery._lock, gallery._store.transaction() as db:
                gallery._store.set_meta(db, writes)
        given = threshold is not None or min_faces is not None
        if given and settings.MIN_FACES not in writes:  # (not the first use, which records them)
            log.warning(
                "%s: people threshold %.4f and min_faces %d for this session only (recorded: "
                "see `facenet library settings`, which changes them)",
                gallery.path, found.threshold, found.min_faces,
            )  # fmt: skip
        library = cls(gallery, found.threshold, found.min_faces, found.source)
        library._in_use, library._seen = found, seen
        library._given, library._repair = (threshold, min_faces), repair
        return library

    def close(self) -> None:
        """Save the index and close the database."""
        self.gallery.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def path(self) -> Path:
        """The library's database file."""
        return self.gallery.path

    # -- settings -----------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """Squared-L2 distance at or below which a face joins a person (`settings`)."""
        return self._current().threshold

    @property
    def low_threshold(self) -> float:
        """The stricter threshold a low-quality face joins a person at."""
        return self.threshold * LOW_QUALITY_FACTOR

    @property
    def min_faces(self) -> int | None:
        """The smallest cluster (None: the file records an invalid one, being repaired)."""
        return self._current().min_faces

    @property
    def threshold_source(self) -> str:
        """Where the threshold in use comes from (a key of `settings.SOURCES`)."""
        return self._current().source

    def settings(self) -> Settings:
        """The threshold and min_faces in use, and where the threshold comes from."""
        found = self._current()
        recorded, _ = settings.resolve(self.gallery, repair=True)  # (only what it follows)
        return Settings(found.threshold, found.source, found.min_faces, recorded.follows)

    def _current(self) -> Settings:
        """The settings in use, read again from the file when it may have changed since (another
        process's `facenet library settings` beside a running server): one `PRAGMA
        data_version` per call, the meta table only when it moved, as the gallery's own
        threshold (`Gallery.meta_generation`). An invalid value read raises the one-line
        LibraryError naming the repair, unless the library was opened to repair it."""
        with self._lock:
            seen = self.gallery.meta_generation()
            if seen != self._seen:
                found, _ = settings.resolve(self.gallery, *self._given, repair=self._repair)
                self._in_use, self._seen = found, seen
            return self._in_use

    def _decision(self) -> tuple[float, float, int]:
        """(threshold, low_threshold, min_faces) that an add, re-clustering or suggestion decides
        at; the LibraryError naming the repair while the file's are invalid (a library opened
        to repair them and not yet `configure`d)."""
        found = self._current()
        if math.isnan(found.threshold) or found.min_faces is None:
            keys = (settings.THRESHOLD, settings.MIN_FACES)
            given = [key for key, value in zip(keys, self._given, strict=True) if value is not None]
            settings.check_meta(self.path, self._store.meta(), given)
            raise LibraryError(f"{self.path}: its people settings are invalid")  # (not reached)
        return found.threshold, found.threshold * LOW_QUALITY_FACTOR, found.min_faces

    def configure(
        self,
        *,
        threshold: float | None = None,
        from_model: bool = False,
        min_faces: int | None = None,
    ) -> Settings:
        """Record the library's settings, for this and every later session: a `threshold` of its
        own (kept until changed; a migration to another model puts it aside), or `from_model`:
        follow the gallery again (the model in use: its verification threshold). Later adds use
        them; existing clusters are regrouped by `recluster`. LibraryError for a bad value."""
        if threshold is not None and from_model:
            raise LibraryError("give a threshold or from_model, not both")
        values: dict = {}
        with self._lock:
            seen = self.gallery.meta_generation()  # (before reading, as `from_gallery`)
            meta = self._store.meta()
            if threshold is not None:
                values = {settings.THRESHOLD: threshold, settings.SOURCE: settings.SET}
            elif from_model:
                model = settings.model_threshold(self.gallery, meta, None)
                values = {settings.THRESHOLD: model, settings.SOURCE: settings.DERIVED}
            if min_faces is not None:
                values[settings.MIN_FACES] = min_faces
            settings.check_meta(self.path, meta, values)  # a bad one kept: before any write
            value, count = settings.check(self.path, values.get(settings.THRESHOLD, 1.0),
                                          values.get(settings.MIN_FACES, 2))  # fmt: skip
            if settings.THRESHOLD in values:
                values[settings.THRESHOLD] = value
            if settings.MIN_FACES in values:
                values[settings.MIN_FACES] = count
            if values:
                with self._store.transaction() as db:
                    self._store.set_meta(db, values)
            found, _ = settings.resolve(self.gallery)
            self._in_use, self._seen, self._given = found, seen, (None, None)
        return found

    # -- re-clustering ------------------------------------------------------------------------

    def recluster(self) -> ReclusterReport:
        """Re-cluster the unassigned faces and those of unnamed clusters, honouring every
        constraint; named people keep their faces and may gain some (see `reclustering.py`)."""
        start = time.monotonic()
        with self._lock:
            report = recluster(self._store, *self._decision())
        report.seconds = time.monotonic() - start
        return report

    # -- listing ------------------------------------------------------------------------------

    def people(self, *, named: bool | None = None) -> list[Person]:
        """Named people (by name) then unnamed clusters (largest first); `named` filters."""
        rows = self._store.db.execute(
            "SELECT p.id, p.name, p.created, COUNT(f.id) AS n, MIN(f.id) AS cover FROM people p "
            "LEFT JOIN faces f ON f.person_id = p.id GROUP BY p.id"
        ).fetchall()
        out = [Person(r[0], r[1], r[3], r[4], r[2]) for r in rows]
        if named is not None:
            out = [p for p in out if (p.name is not None) == named]
        return sorted(out, key=lambda p: (p.name is None, p.name or "", -p.face_count, p.id))

    def person(self, person_id: int) -> Person:
        """One person or cluster (LibraryError when there is none)."""
        for p in self.people():
            if p.id == check_id(person_id, "person"):
                return p
        raise LibraryNotFoundError(f"no person or cluster with id {person_id}", "person")

    def faces(self, person_id: int | None = None, *, unassigned: bool = False) -> list[Face]:
        """The faces of one person (or of everyone; with `unassigned`, of nobody), oldest first."""
        if person_id is not None:
            self.person(person_id)
            rows = self._store.db.execute(
                FACE_SQL + " WHERE f.person_id = ? ORDER BY f.id", (check_id(person_id, "person"),)
            )
        elif unassigned:
            rows = self._store.db.execute(
                FACE_SQL + " WHERE f.person_id IS NULL AND f.rejected IS NULL ORDER BY f.id"
            )
        else:
            rows = self._store.db.execute(FACE_SQL + " ORDER BY f.id")
        return [face_from_row(r) for r in rows]

    def face(self, face_id: int) -> Face:
        """One face (LibraryError when there is none)."""
        number = known_id(face_id)
        query = FACE_SQL + " WHERE f.id = ?"
        row = None if number is None else self._store.db.execute(query, (number,)).fetchone()
        if row is None:
            raise LibraryNotFoundError(f"no face with id {face_id}", "face")
        return face_from_row(row)

    def thumbnail(self, face_id: int, size: int = 112) -> bytes:
        """A square JPEG of the face, cut from the crop kept with it."""
        data = self.gallery.thumbnail(face_id, size)
        if data is None:
            raise LibraryNotFoundError(f"no face with id {face_id} (or no crop kept for it)")
        return data

    def constraints(self) -> list[Constraint]:
        """Every stored correction: links, rejections, names."""
        db = self._store.db
        out = [
            Constraint(*r)
            for r in db.execute(
                "SELECT id, kind, face_a, face_b, origin, created FROM face_links ORDER BY id"
            )
        ]
        out += [
            Constraint(None, "reject", r[0], None, r[1], r[2])
            for r in db.execute(
                "SELECT id, rejected, created FROM faces WHERE rejected IS NOT NULL"
            )
        ]
        out += [
            Constraint(None, "name", None, None, r[1], r[2], person_id=r[0])
            for r in db.execute("SELECT id, name, created FROM people WHERE name IS NOT NULL")
        ]
        return out

    def violations(self) -> list[dict]:
        """Stored constraints the current assignment breaks: always empty (a test checks)."""
        return links.violations(self._store.db)

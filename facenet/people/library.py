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

import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImageError, LibraryError
from ..gallery import Gallery
from ..gallery.crops import cut_crop
from ..gallery.enrol import _file_hash, _landmarks_json, _pixel_hash, _unit
from ..gallery.store import now
from ..images import ImageInput, describe, load_image
from . import links
from .assign import NEIGHBOURS, Existing, assign_batch
from .corrections import CorrectionsMixin
from .quality import GATE, measure
from .reclustering import recluster
from .records import AddReport, Constraint, Face, Person, ReclusterReport, face_from_row

#: A low-quality face joins a person only this much closer than a good one (Ente: 0.16/0.24).
LOW_QUALITY_FACTOR = 0.75

FACE_SQL = "SELECT f.*, p.name AS person_name FROM faces f LEFT JOIN people p ON p.id = f.person_id"


class Library(CorrectionsMixin):
    """Every face of a photo collection, grouped into people (see the module doc).

    Open with `Library.open(path, model)`; the model is needed to `add` photos, not to list,
    correct or re-cluster. `threshold` (squared L2; default: the model's verification threshold)
    decides whether a face joins a person and whether two faces open a cluster; `min_faces` is
    the smallest cluster. Both are recorded in the file on creation.
    """

    def __init__(self, gallery: Gallery, threshold: float, min_faces: int):
        self.gallery = gallery
        self._store = gallery._store  # the gallery's database: one file, one set of migrations
        self._lock = gallery._lock
        self.threshold = float(threshold)
        self.low_threshold = self.threshold * LOW_QUALITY_FACTOR
        self.min_faces = int(min_faces)
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
    ) -> Library:
        """Open the library (a gallery file) at `path`, creating it when `create` and missing."""
        path = Path(path)
        if not path.exists() and create:
            if model is None:
                raise LibraryError(f"{path}: no such library; creating one needs a model")
            gallery = Gallery.create(path, model, index=index)
        else:
            gallery = Gallery.open(path, model, index=None if index == "faiss" else index)
        return cls.from_gallery(gallery, threshold=threshold, min_faces=min_faces)

    @classmethod
    def from_gallery(
        cls, gallery: Gallery, *, threshold: float | None = None, min_faces: int | None = None
    ) -> Library:
        """The library in an open gallery (its thresholds recorded in the file on first use)."""
        meta = gallery._store.meta()
        threshold = meta.get("people_threshold") if threshold is None else threshold
        if threshold is None:
            model = gallery.model
            threshold = model.info.verification_threshold if model else gallery._stored_threshold
        min_faces = int(meta.get("people_min_faces", 2)) if min_faces is None else min_faces
        if not 0 < float(threshold) <= 4 or int(min_faces) < 2:
            gallery.close()
            raise LibraryError("threshold must be in (0, 4] and min_faces at least 2")
        if "people_threshold" not in meta:
            with gallery._store.transaction() as db:
                values = {"people_threshold": threshold, "people_min_faces": min_faces}
                gallery._store.set_meta(db, values)
        return cls(gallery, float(threshold), int(min_faces))

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

    # -- add ----------------------------------------------------------------------------------

    def add(
        self,
        photos: ImageInput | Iterable[ImageInput],
        *,
        batch_size: int = 16,
        progress: bool = False,
        names: Sequence[str] | None = None,
    ) -> AddReport:
        """Detect, embed and store every face of each photo, then assign each new face to a
        person, a new cluster, or nobody (see `assign.py`). Photos already in the library (same
        content) are skipped; unreadable ones are reported, never raised. Interrupted, it is
        resumed by running it again (each batch of `batch_size` photos is one transaction).
        `names` label in-memory photos (the server's uploads) in the faces and the report."""
        model = self.gallery._require_model()
        if isinstance(photos, (str, os.PathLike, Image.Image, np.ndarray)):
            photos = [photos]
        items = list(photos)
        report = AddReport()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), unit="photo", desc="adding")
        seen: set[str] = set()
        try:
            with self._lock:
                for start in range(0, len(items), max(1, batch_size)):
                    pending = []
                    for offset, item in enumerate(items[start : start + max(1, batch_size)]):
                        name = names[start + offset] if names is not None else None
                        pending.append(self._read(model, item, start + offset, seen, report, name))
                        if bar is not None:
                            bar.update(1)
                    self._store_batch([p for p in pending if p is not None], report)
        finally:
            if bar is not None:
                bar.close()
            self.gallery._save_index()
        return report

    def _read(self, model, item, number: int, seen: set[str], report: AddReport, name=None):
        """(digest, path, source, [(face, quality, crop, vector)]) of one photo, or None."""
        source = name or describe(item, number)
        try:
            if isinstance(item, (str, os.PathLike)):
                digest, path = _file_hash(Path(item), source), str(Path(item).resolve())
                rgb = load_image(item, source)
            else:
                rgb, path = load_image(item, source), None
                digest = _pixel_hash(rgb)
            if (
                digest in seen
                or self._store.db.execute(
                    "SELECT 1 FROM photos WHERE content_hash = ?", (digest,)
                ).fetchone()
            ):
                report.duplicates.append(source)
                return None
            detected = model.represent(rgb)
        except ImageError as exc:
            report.failed.append((source, str(exc)))
            return None
        seen.add(digest)
        faces = []
        for face in detected:
            quality = measure(rgb, face.box, face.landmarks, face.score)
            vector = _unit(face.embedding, self.gallery.embedding_size)
            faces.append((face, quality, cut_crop(rgb, face.box), vector))
        return digest, path, source, faces

    def _store_batch(self, pending: list, report: AddReport) -> None:
        """Assign and insert one batch in one transaction, then add it to the index."""
        rows = [
            (digest, path, source, *f) for digest, path, source, faces in pending for f in faces
        ]
        index = self.gallery.index
        vectors = np.stack([r[-1] for r in rows]) if rows else np.zeros((0, 1), np.float32)
        low = np.array([bool(r[4].failures(self.gate)) for r in rows], bool)
        decisions = None
        if rows:
            distances, ids = index.search(vectors, NEIGHBOURS)
            existing = self._existing(ids)
            sums = self._sums({e.person_id for e in existing.values()} - {None})
            photos = [r[0] for r in rows]
            decisions = assign_batch(
                vectors, low, photos, distances, ids, existing, sums,
                self.threshold, self.low_threshold, self.min_faces,
            )  # fmt: skip
        with self._store.transaction() as db:
            for digest, path, source, faces in pending:
                db.execute(
                    "INSERT INTO photos VALUES (?, ?, ?, ?)",
                    (digest, path or source, len(faces), now()),
                )
            clusters = {}
            if decisions is not None:
                for k in range(decisions.clusters):
                    clusters[k] = db.execute(
                        "INSERT INTO people (name, created) VALUES (NULL, ?)", (now(),)
                    ).lastrowid
                for face_id, k in decisions.claimed.items():
                    db.execute(
                        "UPDATE faces SET person_id = ?, assigned_by = 'auto' WHERE id = ?",
                        (clusters[k], face_id),
                    )
            face_ids = []
            for i, (digest, path, source, face, quality, crop, vector) in enumerate(rows):
                target = decisions.person[i]
                person_id = (
                    None
                    if target is None
                    else (target[1] if target[0] == "p" else clusters[target[1]])
                )
                cursor = db.execute(
                    "INSERT INTO faces (person_id, source, content_hash, box, score, embedding, "
                    "model_id, created, landmarks, photo, quality, low_quality, assigned_by) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        person_id, source, digest,
                        json.dumps([round(float(v), 2) for v in face.box]), float(face.score),
                        vector.astype(np.float32).tobytes(), self.gallery.model_id, now(),
                        _landmarks_json(face.landmarks), path, json.dumps(quality.to_dict()),
                        int(low[i]), None if person_id is None else "auto",
                    ),
                )  # fmt: skip
                face_ids.append(int(cursor.lastrowid))
                self._store.set_crop(db, face_ids[-1], crop)
        if rows:
            index.add(vectors, face_ids)
        self._tally(report, pending, decisions, low, face_ids)

    def _existing(self, ids: np.ndarray) -> dict[int, Existing]:
        """What assignment needs of the stored faces among `ids` (rejected ones left out)."""
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0})
        out: dict[int, Existing] = {}
        linked = links.linked_faces(self._store.db)
        for chunk in range(0, len(wanted), 500):
            part = wanted[chunk : chunk + 500]
            for r in self._store.db.execute(
                "SELECT id, person_id, low_quality, rejected, content_hash, embedding FROM faces "
                f"WHERE id IN ({','.join('?' * len(part))})",
                part,
            ):
                if r[3] is None:
                    free = r[1] is None and r[0] not in linked
                    vector = np.frombuffer(r[5], np.float32)
                    out[int(r[0])] = Existing(r[1], bool(r[2]), free, r[4], vector)
        return out

    def _sums(self, person_ids: set[int]) -> dict[int, tuple[np.ndarray, int]]:
        """person id -> (sum of their faces' embeddings, face count)."""
        out: dict[int, tuple[np.ndarray, int]] = {}
        wanted = sorted(person_ids)
        for chunk in range(0, len(wanted), 500):
            part = wanted[chunk : chunk + 500]
            for person, blob in self._store.db.execute(
                "SELECT person_id, embedding FROM faces "
                f"WHERE person_id IN ({','.join('?' * len(part))})",
                part,
            ):
                total, n = out.get(person, (0.0, 0))
                out[person] = (total + np.frombuffer(blob, np.float32).astype(np.float64), n + 1)
        return out

    @staticmethod
    def _tally(report: AddReport, pending, decisions, low, face_ids) -> None:
        report.photos += len(pending)
        report.faces += len(face_ids)
        report.face_ids.extend(face_ids)
        report.low_quality += int(np.sum(low))
        if decisions is None:
            return
        report.new_clusters += decisions.clusters
        for target in decisions.person:
            if target is None:
                report.unassigned += 1
            elif target[0] == "p":
                report.assigned += 1

    # -- re-clustering ------------------------------------------------------------------------

    def recluster(self) -> ReclusterReport:
        """Re-cluster the unassigned faces and those of unnamed clusters, honouring every
        constraint; named people keep their faces and may gain some (see `reclustering.py`)."""
        start = time.monotonic()
        with self._lock:
            report = recluster(self._store, self.threshold, self.low_threshold, self.min_faces)
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
            if p.id == int(person_id):
                return p
        raise LibraryError(f"no person or cluster with id {person_id}")

    def faces(self, person_id: int | None = None, *, unassigned: bool = False) -> list[Face]:
        """The faces of one person (or of everyone; with `unassigned`, of nobody), oldest first."""
        if person_id is not None:
            self.person(person_id)
            rows = self._store.db.execute(
                FACE_SQL + " WHERE f.person_id = ? ORDER BY f.id", (int(person_id),)
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
        row = self._store.db.execute(FACE_SQL + " WHERE f.id = ?", (int(face_id),)).fetchone()
        if row is None:
            raise LibraryError(f"no face with id {face_id}")
        return face_from_row(row)

    def thumbnail(self, face_id: int, size: int = 112) -> bytes:
        """A square JPEG of the face, cut from the crop kept with it."""
        data = self.gallery.thumbnail(int(face_id), size)
        if data is None:
            raise LibraryError(f"no face with id {face_id} (or no crop kept for it)")
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

"""Adding photos to the library (a mixin of `Library`): store every face, then place the new
faces, regrouping the machine-made clusters near them (`assign.py`).

Two steps, so that the placement sees the whole call's faces at once (as a batch clustering of
them would) while storage stays in small transactions: photos are read, detected and embedded
and their faces stored `batch_size` photos per transaction, unassigned and marked `pending`;
then every pending face is placed in one transaction. A run killed in the first step leaves
whole photos (the next `add` skips them and places their faces); killed in the second, the
faces stay pending until the next `add` or `recluster` places them.

Detection and embedding run outside the library's lock (only storing and placing hold it), so
a server's other requests are answered while an upload is being read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import GalleryError, ImageError
from ..gallery.crops import cut_crop
from ..gallery.enrol import _file_hash, _landmarks_json, _pixel_hash, _unit
from ..gallery.store import drop_empty_clusters, now
from ..images import (
    MAX_BATCH_SIZE,
    ImageInput,
    check_batch_size,
    describe,
    image_list,
    load_image,
    require_utf8_path,
)
from . import links
from .assign import NEIGHBOURS, Existing, assign_batch
from .quality import measure
from .records import AddReport


class AddMixin:
    """`add` (see the module doc)."""

    def add(
        self,
        photos: ImageInput | Iterable[ImageInput],
        *,
        batch_size: int = 16,
        progress: bool = False,
        labels: Sequence[str] | None = None,
    ) -> AddReport:
        """Detect, embed and store every face of each photo, then place each new face with a
        person, in a new cluster, or nowhere yet, regrouping the machine-made clusters near
        them (see `assign.py`). Photos already in the
        library (same content) are skipped; unreadable ones are reported, never raised.
        Interrupted, it is resumed by running it again. `labels` name in-memory photos (a
        server's uploads by file name): recorded as `upload:LABEL` (`images.describe`), a
        label only, never opened as a file. batch_size: 1..1024 (`MAX_BATCH_SIZE`)."""
        step = check_batch_size(batch_size, MAX_BATCH_SIZE)
        model = self.gallery._require_model()
        self._decision()  # settings made invalid elsewhere: refused before reading any photo
        items = image_list(photos)
        if labels is not None and len(labels) != len(items):
            raise GalleryError(f"{len(items)} photos but {len(labels)} labels")
        report = AddReport()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), unit="photo", desc="adding")
        seen: set[str] = set()
        try:
            for start in range(0, len(items), step):
                pending = []
                for offset, item in enumerate(items[start : start + step]):
                    label = labels[start + offset] if labels is not None else None
                    pending.append(self._read(model, item, start + offset, seen, report, label))
                    if bar is not None:
                        bar.update(1)
                with self._lock:
                    self._ingest(model, [p for p in pending if p is not None], report)
            self.place_pending(report)
        finally:
            if bar is not None:
                bar.close()
            self.gallery._save_index_if_open()
        return report

    def _read(self, model, item, number: int, seen: set[str], report: AddReport, label=None):
        """(digest, path, source, [(face, quality, crop, vector)]) of one photo, or None."""
        source = describe(item, number, label)
        try:
            if isinstance(item, (str, os.PathLike)):
                require_utf8_path(source)  # stored as text, as is the resolved path
                digest, path = _file_hash(Path(item), source), str(Path(item).resolve())
                require_utf8_path(path, source)
                rgb = load_image(item, source)
            else:
                rgb, path = load_image(item, source), None
                digest = _pixel_hash(rgb)
            with self._lock:
                stored = self._stored(digest)
            if digest in seen or stored:
                report.duplicates.append(source)
                return None
            detected = model.represent(rgb)  # outside the lock: other calls go on meanwhile
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

    def _stored(self, digest: str) -> bool:
        """Whether a photo with this content is in the library (call under the lock)."""
        sql = "SELECT 1 FROM photos WHERE content_hash = ?"
        return self._store.db.execute(sql, (digest,)).fetchone() is not None

    def _ingest(self, model, pending: list, report: AddReport) -> None:
        """Store one batch of photos and their faces (pending) in one transaction; index them.
        Under the lock; the photos were read outside it, so a photo another call stored
        meanwhile is a duplicate, and a gallery closed or moved to another model meanwhile (a
        server's migration) refuses the batch rather than mixing models."""
        self.gallery._check_current(model)
        index = self.gallery.index
        ids, vectors, photos = [], [], 0
        with self._store.transaction() as db:
            self._store.require_model(db, self.gallery.model_id)
            for digest, path, source, faces in pending:
                if self._stored(digest):
                    report.duplicates.append(source)
                    continue
                photos += 1
                db.execute(
                    "INSERT INTO photos VALUES (?, ?, ?, ?)",
                    (digest, path or source, len(faces), now()),
                )
                for face, quality, crop, vector in faces:
                    cursor = db.execute(
                        "INSERT INTO faces (source, content_hash, box, score, embedding, "
                        "model_id, created, landmarks, photo, quality, low_quality, pending) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                        (
                            source, digest, json.dumps([round(float(v), 2) for v in face.box]),
                            float(face.score), vector.astype(np.float32).tobytes(),
                            self.gallery.model_id, now(), _landmarks_json(face.landmarks), path,
                            json.dumps(quality.to_dict()), int(bool(quality.failures(self.gate))),
                        ),
                    )  # fmt: skip
                    ids.append(int(cursor.lastrowid))
                    vectors.append(vector)
                    self._store.set_crop(db, ids[-1], crop)
        if ids:
            index.add(np.stack(vectors), ids)
        report.photos += photos
        report.faces += len(ids)
        report.face_ids.extend(ids)

    def place_pending(self, report: AddReport | None = None) -> AddReport:
        """Place every face still pending (see `assign.py`), in one transaction."""
        report = AddReport() if report is None else report
        with self._lock:
            return self._place(report)

    def _place(self, report: AddReport) -> AddReport:
        """Place the pending faces no correction touched since they were stored (`add` stores
        them batch by batch, releasing the lock between: a face the user moved, rejected or
        linked meanwhile keeps what the user said; all are no longer pending afterwards)."""
        rows = self._store.db.execute(
            "SELECT id, embedding, low_quality, content_hash FROM faces WHERE pending = 1 "
            "AND rejected IS NULL AND person_id IS NULL AND assigned_by IS NULL AND id NOT IN "
            "(SELECT face_a FROM face_links UNION SELECT face_b FROM face_links) ORDER BY id"
        ).fetchall()
        if not rows:
            with self._store.transaction() as db:
                db.execute("UPDATE faces SET pending = 0 WHERE pending = 1")
            return report
        new_ids = [int(r[0]) for r in rows]
        vectors = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
        low = np.array([bool(r[2]) for r in rows])
        _, ids = self.gallery.index.search(vectors, NEIGHBOURS)
        existing = self._existing(ids, set(new_ids))
        sums = self._sums({e.person_id for e in existing.values() if not e.free} - {None})
        decisions = assign_batch(
            vectors, low, [r[3] for r in rows], existing, sums, *self._decision()
        )  # fmt: skip
        self._write_places(new_ids, decisions, existing, report)
        report.low_quality += int(low.sum())
        report.unassigned += sum(1 for p in decisions.person if p is None)
        return report

    def _write_places(self, new_ids, decisions, existing, report: AddReport) -> None:
        """Write the decisions in one transaction: the new faces' places, the regrouped faces
        that moved, the clusters (an old machine-made id kept where `reuse` says), and the
        machine-made clusters left empty deleted."""
        old = {f: existing[f].person_id for f in decisions.claimed}
        with self._store.transaction() as db:
            clusters = [
                decisions.reuse.get(n)
                or db.execute(
                    "INSERT INTO people (name, created) VALUES (NULL, ?)", (now(),)
                ).lastrowid
                for n in range(decisions.clusters)
            ]
            places = [
                (f, _person(p, clusters)) for f, p in zip(new_ids, decisions.person, strict=True)
            ]
            moved = [(f, _person(p, clusters)) for f, p in decisions.claimed.items()]
            moved = [(f, p) for f, p in moved if p != old[f]]
            db.executemany(
                "UPDATE faces SET person_id = ?, assigned_by = ?, pending = 0 WHERE id = ?",
                [(p, None if p is None else "auto", f) for f, p in places + moved],
            )
            db.execute("UPDATE faces SET pending = 0 WHERE pending = 1")
            drop_empty_clusters(db, {p for p in old.values() if p is not None} - set(clusters))
        reused = set(decisions.reuse)
        report.regrouped += sum(1 for f, _ in moved if old[f] is not None)
        report.new_clusters += decisions.clusters - len(reused)
        report.assigned += sum(
            1 for p in decisions.person if p is not None and (p[0] == "p" or p[1] in reused)
        )

    def _existing(self, ids: np.ndarray, new: set[int]) -> dict[int, Existing]:
        """What placement needs of the stored faces among `ids` that are not `new` (rejected
        ones left out), and of every face of the machine-made clusters among them. `free`:
        unassigned and touched by no correction, or in a machine-made cluster (`_machine_made`):
        such faces are grouped again with the new ones."""
        wanted = sorted({int(i) for i in ids.ravel() if i >= 0} - new)
        linked = links.linked_faces(self._store.db)
        out = self._face_rows("id", wanted, linked, set())
        soft = self._machine_made({e.person_id for e in out.values()} - {None}, linked)
        for e in out.values():
            e.free = e.free or e.person_id in soft
        more = self._face_rows("person_id", sorted(soft), linked, soft)
        out.update({f: e for f, e in more.items() if f not in out and f not in new})
        return out

    def _face_rows(self, column: str, keys: list[int], linked: set[int], soft: set[int]):
        """Existing records of the unrejected faces whose `column` is in `keys`."""
        out: dict[int, Existing] = {}
        sql = "SELECT id, person_id, low_quality, rejected, content_hash, embedding FROM faces "
        for r in self._rows_in(sql + f"WHERE {column} IN ({{}})", keys):
            if r[3] is None:
                free = (r[1] is None and r[0] not in linked) or r[1] in soft
                vector = np.frombuffer(r[5], np.float32)
                out[int(r[0])] = Existing(r[1], bool(r[2]), free, r[4], vector)
        return out

    def _machine_made(self, person_ids: set[int], linked: set[int]) -> set[int]:
        """The unnamed clusters among `person_ids` that no correction touches: no face of
        theirs is linked or was put there by the user (`assign.py`: they may be regrouped)."""
        rows = self._rows_in(
            "SELECT p.id, f.id, f.assigned_by FROM people p JOIN faces f ON f.person_id = p.id "
            "WHERE p.name IS NULL AND p.id IN ({})",
            sorted(person_ids),
        )
        touched = {r[0] for r in rows if r[1] in linked or r[2] == "user"}
        return {r[0] for r in rows} - touched

    def _sums(self, person_ids: set[int]) -> dict[int, tuple[np.ndarray, int, set[str]]]:
        """person id -> (sum of their faces' embeddings, face count, their photos)."""
        out: dict[int, tuple[np.ndarray, int, set[str]]] = {}
        for person, blob, photo in self._rows_in(
            "SELECT person_id, embedding, content_hash FROM faces WHERE person_id IN ({})",
            sorted(person_ids),
        ):
            total, n, photos = out.get(person, (0.0, 0, set()))
            vector = np.frombuffer(blob, np.float32).astype(np.float64)
            out[person] = (total + vector, n + 1, photos | {photo})
        return out

    def _rows_in(self, sql: str, keys: list[int], chunk: int = 500) -> list[tuple]:
        """The rows of `sql` (its `{}` the IN list) for every key, asked `chunk` keys at a time
        (SQLite caps the parameters of one statement)."""
        rows: list[tuple] = []
        for start in range(0, len(keys), chunk):
            part = keys[start : start + chunk]
            rows += self._store.db.execute(sql.format(",".join("?" * len(part))), part).fetchall()
        return rows


def _person(place, clusters: list[int]) -> int | None:
    if place is None:
        return None
    kind, ref = place
    return ref if kind == "p" else clusters[ref]

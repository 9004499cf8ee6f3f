"""The gallery's SQLite database: people, faces and the model that made the embeddings.

One file, WAL journal, foreign keys on. The schema is built by numbered migrations recorded in
a `_migrations` table (and mirrored in `PRAGMA user_version`), so an older gallery file is
upgraded in place when opened. Every write happens inside `Store.transaction()`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import GalleryChangedError, GalleryError
from .schema import MIGRATIONS, SCHEMA_VERSION, now  # noqa: F401  (now: re-exported)


def drop_empty_clusters(db: sqlite3.Connection, person_ids) -> int:
    """Delete those of `person_ids` that are unnamed clusters with no face left (a named person
    stays, even with no face); returns how many went. Inside the caller's transaction."""
    gone = 0
    for person_id in {int(p) for p in person_ids}:
        gone += db.execute(
            "DELETE FROM people WHERE id = ? AND name IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM faces WHERE person_id = ?)",
            (person_id, person_id),
        ).rowcount
    return gone


class Store:
    """Thin, typed access to the gallery database. Not a public API: use `Gallery`."""

    def __init__(self, path: Path):
        self.path = path
        self._db: sqlite3.Connection | None = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False
        )
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")

    @property
    def db(self) -> sqlite3.Connection:
        """The connection; a GalleryError once closed (not sqlite3's ProgrammingError from
        whichever call comes next)."""
        if self._db is None:
            raise GalleryError(f"{self.path}: the gallery is closed")
        return self._db

    def close(self) -> None:
        """Close the database connection."""
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection in one write transaction: committed on exit, rolled back on error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- schema -------------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations; return their names. Foreign keys are off meanwhile (a
        migration may rebuild a table, as SQLite's documented procedure requires) and checked
        before the commit."""
        self.db.execute("PRAGMA foreign_keys = OFF")
        try:
            return self._migrate()
        finally:
            self.db.execute("PRAGMA foreign_keys = ON")

    def _migrate(self) -> list[str]:
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations "
                "(name TEXT PRIMARY KEY, applied TEXT NOT NULL)"
            )
            done = {r[0] for r in db.execute("SELECT name FROM _migrations")}
            unknown = done - {name for name, _ in MIGRATIONS}
            if unknown:
                raise GalleryError(
                    f"{self.path}: gallery written by a newer facenet "
                    f"(unknown migrations: {', '.join(sorted(unknown))}); upgrade facenet"
                )
            applied = []
            for name, function in MIGRATIONS:
                if name not in done:
                    function(db)
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now()))
                    applied.append(name)
            if applied and db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise GalleryError(f"{self.path}: migration left dangling references")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return applied

    def is_gallery(self) -> bool:
        """True when the file is a SQLite database with the gallery's tables."""
        tables = {
            r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        return {"_migrations", "meta", "people", "faces"} <= tables

    # -- meta ---------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """The gallery's key/value record (model id, thresholds...)."""
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}

    def require_model(self, db: sqlite3.Connection, model_id: str) -> None:
        """Inside a write transaction `db`: the database still uses `model_id`, else
        GalleryChangedError. A migration in another connection (a server's job, another
        process) may have switched it after this caller read its photos: storing their
        embeddings then would leave faces no search matches."""
        row = db.execute("SELECT value FROM meta WHERE key = 'model_id'").fetchone()
        if row is not None and row[0] != model_id:
            raise GalleryChangedError(
                "the gallery moved to another model while photos were being read; add them again",
                self.path,
            )

    def set_meta(self, db: sqlite3.Connection, values: dict[str, object]) -> None:
        """Insert or replace meta keys inside the transaction `db`."""
        db.executemany(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    # -- people -------------------------------------------------------------------------------

    def person(self, name: str) -> sqlite3.Row | None:
        """The person row called `name`, or None."""
        return self.db.execute("SELECT * FROM people WHERE name = ?", (name,)).fetchone()

    def add_person(self, db: sqlite3.Connection, name: str, metadata: dict | None) -> int:
        """Insert a person; returns their id."""
        cursor = db.execute(
            "INSERT INTO people (name, metadata, created) VALUES (?, ?, ?)",
            (name, json.dumps(metadata or {}, sort_keys=True), now()),
        )
        return int(cursor.lastrowid)

    def update_metadata(self, db: sqlite3.Connection, person_id: int, metadata: dict) -> None:
        """Replace a person's metadata."""
        db.execute(
            "UPDATE people SET metadata = ? WHERE id = ?",
            (json.dumps(metadata, sort_keys=True), person_id),
        )

    def people(self) -> list[sqlite3.Row]:
        """Every named person with their face count, by name (the people library's unnamed
        clusters, name NULL, are `facenet.people.Library`'s to list)."""
        return self.db.execute(
            "SELECT p.*, COUNT(f.id) AS face_count FROM people p "
            "LEFT JOIN faces f ON f.person_id = p.id WHERE p.name IS NOT NULL "
            "GROUP BY p.id ORDER BY p.name"
        ).fetchall()

    def person_count(self) -> int:
        """How many named people are enrolled."""
        return int(
            self.db.execute("SELECT COUNT(*) FROM people WHERE name IS NOT NULL").fetchone()[0]
        )

    # -- faces --------------------------------------------------------------------------------

    def add_faces(self, db: sqlite3.Connection, rows: list[tuple]) -> list[int]:
        """rows: (person_id, source, content_hash, box json, score, embedding bytes, model_id,
        landmarks json, photo path, crop: StoredCrop | None)."""
        ids = []
        created = now()
        for model_id in {row[6] for row in rows}:
            self.require_model(db, model_id)
        for *row, crop in rows:
            cursor = db.execute(
                "INSERT INTO faces (person_id, source, content_hash, box, score, embedding, "
                "model_id, landmarks, photo, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*row, created),
            )
            ids.append(int(cursor.lastrowid))
            if crop is not None:
                self.set_crop(db, ids[-1], crop)
        return ids

    def set_crop(self, db: sqlite3.Connection, face_id: int, crop) -> None:
        """Keep (or replace) a face's crop (`crops.StoredCrop`)."""
        db.execute(
            "INSERT OR REPLACE INTO face_crops (face_id, image, geometry) VALUES (?, ?, ?)",
            (face_id, crop.image, crop.geometry),
        )

    def crop(self, face_id: int) -> sqlite3.Row | None:
        """The stored crop row of a face, or None."""
        return self.db.execute(
            "SELECT c.image, c.geometry, f.box, f.landmarks FROM face_crops c "
            "JOIN faces f ON f.id = c.face_id WHERE c.face_id = ?",
            (int(face_id),),
        ).fetchone()

    def hash_owner(self, content_hash: str) -> str | None:
        """The name of the person a photo with this content hash was enrolled as, or None."""
        row = self.db.execute(
            "SELECT COALESCE(p.name, 'a face of the people library') FROM faces f "
            "LEFT JOIN people p ON p.id = f.person_id WHERE f.content_hash = ? LIMIT 1",
            (content_hash,),
        ).fetchone()
        return None if row is None else row[0]

    def faces(self, person_id: int | None = None) -> list[sqlite3.Row]:
        """Face rows (of one person, or of every named person), oldest first."""
        sql = (
            "SELECT f.*, p.name AS person FROM faces f JOIN people p ON p.id = f.person_id "
            "WHERE p.name IS NOT NULL"
        )
        if person_id is None:
            return self.db.execute(sql + " ORDER BY f.id").fetchall()
        return self.db.execute(sql + " AND f.person_id = ? ORDER BY f.id", (person_id,)).fetchall()

    def face_with_person(self, face_id: int) -> sqlite3.Row | None:
        """One face row with its person's name (None: an unnamed cluster's, or nobody's)."""
        return self.db.execute(
            "SELECT f.*, p.name AS person FROM faces f LEFT JOIN people p ON p.id = f.person_id "
            "WHERE f.id = ?",
            (face_id,),
        ).fetchone()

    def delete_faces(self, db: sqlite3.Connection, face_ids: list[int]) -> None:
        """Delete faces inside the transaction `db`, with what only they kept alive: the
        unnamed clusters (people library) they leave empty, and the recorded photos they leave
        with no face (so adding such a photo again detects its faces anew, instead of skipping
        it as a duplicate; a photo in which nothing was ever detected stays recorded)."""
        photos = db.execute(  # no such table in a file of an older schema (tests make one)
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'photos'"
        ).fetchone()
        for start in range(0, len(face_ids), 500):
            chunk = [int(f) for f in face_ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                f"SELECT DISTINCT person_id, content_hash FROM faces WHERE id IN ({marks})", chunk
            ).fetchall()
            db.execute(f"DELETE FROM faces WHERE id IN ({marks})", chunk)
            drop_empty_clusters(db, {r[0] for r in rows if r[0] is not None})
            if photos is None:
                continue
            db.executemany(
                "DELETE FROM photos WHERE content_hash = ? AND faces > 0 "
                "AND NOT EXISTS (SELECT 1 FROM faces WHERE content_hash = photos.content_hash)",
                [(h,) for h in {r[1] for r in rows}],
            )

    def face(self, face_id: int) -> sqlite3.Row | None:
        """One face row, or None."""
        return self.db.execute("SELECT * FROM faces WHERE id = ?", (face_id,)).fetchone()

    def face_ids(self, person_id: int) -> list[int]:
        """The face ids of one person."""
        return [
            r[0] for r in self.db.execute("SELECT id FROM faces WHERE person_id = ?", (person_id,))
        ]

    def names_for(self, face_ids: list[int]) -> dict[int, tuple[int, str]]:
        """face id -> (person id, person name), for faces of named people only (identification
        never answers with an unnamed cluster of the people library)."""
        out: dict[int, tuple[int, str]] = {}
        for start in range(0, len(face_ids), 500):
            chunk = face_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.execute(
                "SELECT f.id, p.id, p.name FROM faces f JOIN people p ON p.id = f.person_id "
                f"WHERE p.name IS NOT NULL AND f.id IN ({marks})",
                chunk,
            ):
                out[int(r[0])] = (int(r[1]), r[2])
        return out

    def data_version(self) -> int:
        """SQLite's counter of commits made by other connections (other processes) since this
        one opened: when it moves, an index cached in memory may miss their changes."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    def aggregate(
        self, up_to: int | None = None, model_id: str | None = None
    ) -> tuple[int, int, int]:
        """(count, sum of ids, max id) of the faces, optionally only those with id <= up_to,
        and only those whose embedding is `model_id`'s (the others are left out of the index:
        faces a migration could not re-embed)."""
        sql = "SELECT COUNT(*), COALESCE(SUM(id), 0), COALESCE(MAX(id), 0) FROM faces WHERE 1"
        args: list = []
        if up_to is not None:
            sql, args = sql + " AND id <= ?", [*args, up_to]
        if model_id is not None:
            sql, args = sql + " AND model_id = ?", [*args, model_id]
        row = self.db.execute(sql, args).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def embeddings(
        self, after: int = 0, chunk: int = 50_000, model_id: str | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, embeddings) in id order, for faces with id > after (and of `model_id`'s
        embedding when given), `chunk` rows at a time."""
        last = after
        where = "" if model_id is None else " AND model_id = ?"
        extra = () if model_id is None else (model_id,)
        while True:
            rows = self.db.execute(
                f"SELECT id, embedding FROM faces WHERE id > ?{where} ORDER BY id LIMIT ?",
                (last, *extra, chunk),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            yield ids, vectors.reshape(len(rows), -1)
            last = int(ids[-1])

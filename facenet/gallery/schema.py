"""The gallery database's schema: numbered migrations, applied in order by `Store.migrate`.

Why its own module: the schema only grows (append-only migrations), while `store.py`'s queries
change with every feature.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime


def now() -> str:
    """The current UTC time as ISO text, as the database stores times."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _run(db: sqlite3.Connection, script: str) -> None:
    # not executescript(): it would commit the migration's transaction half-way
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _m001_initial(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE people (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            metadata TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL
        );
        CREATE TABLE faces (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
            source TEXT,
            content_hash TEXT NOT NULL,
            box TEXT,
            score REAL,
            embedding BLOB NOT NULL,
            model_id TEXT NOT NULL,
            created TEXT NOT NULL
        );
        CREATE INDEX faces_person ON faces(person_id);
        CREATE INDEX faces_hash ON faces(content_hash);
        """,
    )


def _m002_face_sources(db: sqlite3.Connection) -> None:
    """What re-embedding a face with another model needs (see crops.py and migrate.py): its
    landmarks, its photo's absolute path, a crop around it, and embeddings of other models (a
    migration's target, or the previous model kept for rollback; NULL: could not be made)."""
    _run(
        db,
        """
        ALTER TABLE faces ADD COLUMN landmarks TEXT;
        ALTER TABLE faces ADD COLUMN photo TEXT;
        CREATE TABLE face_crops (
            face_id INTEGER PRIMARY KEY REFERENCES faces(id) ON DELETE CASCADE,
            image BLOB NOT NULL,
            geometry TEXT NOT NULL
        );
        CREATE TABLE face_embeddings (
            face_id INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
            model_id TEXT NOT NULL,
            embedding BLOB,
            origin TEXT NOT NULL,
            note TEXT,
            PRIMARY KEY (face_id, model_id)
        );
        CREATE INDEX face_embeddings_model ON face_embeddings(model_id);
        """,
    )


def _m003_people_library(db: sqlite3.Connection) -> None:
    """The people library (facenet.people, issue 19): a person's name becomes optional (an
    unnamed cluster is a person without one) and a face may belong to nobody yet (deleting a
    person unassigns its faces instead of deleting them). SQLite cannot drop NOT NULL in place,
    so both tables are rebuilt (foreign keys are off while migrations run, see `migrate`); ids
    and the AUTOINCREMENT counters are kept. New: each face's quality (and whether it passed
    the gate), a rejection reason, who assigned it, whether it still awaits its placement; the
    photos added; must/cannot links."""
    sequences = dict(db.execute("SELECT name, seq FROM sqlite_sequence").fetchall())
    _m003_rebuild(db)
    _run(
        db,
        """
        CREATE TABLE photos (
            content_hash TEXT PRIMARY KEY,
            path TEXT,
            faces INTEGER NOT NULL,
            added TEXT NOT NULL
        );
        CREATE TABLE face_links (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('must', 'cannot')),
            face_a INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
            face_b INTEGER NOT NULL REFERENCES faces(id) ON DELETE CASCADE,
            origin TEXT NOT NULL,
            created TEXT NOT NULL,
            CHECK (face_a < face_b),
            UNIQUE (kind, face_a, face_b)
        );
        CREATE INDEX face_links_b ON face_links(face_b);
        """,
    )
    for table in ("people", "faces"):
        if table in sequences:
            db.execute(
                "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?",
                (sequences[table], table),
            )


def _m003_rebuild(db: sqlite3.Connection) -> None:
    """people.name and faces.person_id become nullable (new tables, rows copied, ids kept)."""
    _run(
        db,
        """
        CREATE TABLE people_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT UNIQUE,
            metadata TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL
        );
        INSERT INTO people_new (id, name, metadata, created)
            SELECT id, name, metadata, created FROM people;
        DROP TABLE people;
        ALTER TABLE people_new RENAME TO people;
        CREATE TABLE faces_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
            source TEXT,
            content_hash TEXT NOT NULL,
            box TEXT,
            score REAL,
            embedding BLOB NOT NULL,
            model_id TEXT NOT NULL,
            created TEXT NOT NULL,
            landmarks TEXT,
            photo TEXT,
            quality TEXT,
            low_quality INTEGER NOT NULL DEFAULT 0,
            rejected TEXT,
            assigned_by TEXT,
            pending INTEGER NOT NULL DEFAULT 0
        );
        INSERT INTO faces_new (id, person_id, source, content_hash, box, score, embedding,
                               model_id, created, landmarks, photo)
            SELECT id, person_id, source, content_hash, box, score, embedding, model_id,
                   created, landmarks, photo FROM faces;
        DROP TABLE faces;
        ALTER TABLE faces_new RENAME TO faces;
        CREATE INDEX faces_person ON faces(person_id);
        CREATE INDEX faces_hash ON faces(content_hash);
        """,
    )


#: Append only: (name, function). Never edit or reorder a released migration.
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    ("m001_initial", _m001_initial),
    ("m002_face_sources", _m002_face_sources),
    ("m003_people_library", _m003_people_library),
]
SCHEMA_VERSION = len(MIGRATIONS)

"""Corrections: name, merge, split, move, link, reject, and suggestions to accept or decline (a
mixin of `Library`). Each is one transaction that records what the user said as face links
(`links.py`), so every later add and re-clustering honours it.

What each records (the newest correction wins over an older one it contradicts):
- merge: a must-link group of all the merged faces (cannot-links between them are dropped);
- split: the two parts each become a must-link group, with a cannot-link across every pair;
- move / accept: the face leaves its must-link group, is cannot-linked to the faces of the
  person it leaves and must-linked to one of the person it joins;
- decline: the face is cannot-linked to every face of that person;
- must_link / cannot_link: the link, after bringing the two faces' groups together or apart;
- reject: the face is unassigned for good, its must-links dropped (its cannot-links kept).
An unnamed cluster a correction leaves with no face is deleted in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np

from ..errors import LibraryError, LibraryNotFoundError
from ..gallery.store import drop_empty_clusters, now
from ..gallery.validation import check_id, check_ids, check_name, known_id
from ..metadata import check_k, check_threshold
from . import links
from .records import Face, Person, Suggestion

REJECT_REASONS = ("not_a_face", "ignore")


class CorrectionsMixin:
    """The corrections of `Library` (see the module doc)."""

    def name(self, person_id: int, name: str | None) -> Person:
        """Name a person or cluster (None: make it an unnamed cluster again). A name already
        used by another person is refused: merge the two instead."""
        name = None if name is None else check_name(name)
        with self._lock, self._store.transaction() as db:
            _person_row(db, person_id)
            other = db.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            if name is not None and other is not None and other[0] != check_id(person_id, "person"):
                raise LibraryError(f"{name!r} is already person {other[0]} (merge the two instead)")
            db.execute(
                "UPDATE people SET name = ? WHERE id = ?", (name, check_id(person_id, "person"))
            )
        return self.person(person_id)

    def merge(self, person_ids: Sequence[int]) -> int:
        """Merge people/clusters into one; returns the survivor (the first named one, else the
        first given). Their faces become one must-link group."""
        ids = list(dict.fromkeys(check_ids(person_ids, "person")))
        if len(ids) < 2:
            raise LibraryError("merge needs at least two different people or clusters")
        with self._lock, self._store.transaction() as db:
            rows = [_person_row(db, p) for p in ids]
            survivor = next((r[0] for r in rows if r[1] is not None), ids[0])
            parts = [_face_ids(db, p) for p in ids]
            for i, a in enumerate(parts):
                for b in parts[i + 1 :]:
                    links.delete_between(db, "cannot", a, b)
            everyone = [f for part in parts for f in part]
            links.chain(db, everyone, "merge")
            _assign(db, everyone, survivor)
            db.executemany("DELETE FROM people WHERE id = ?", [(p,) for p in ids if p != survivor])
        return survivor

    def split(self, person_id: int, face_ids: Sequence[int]) -> int:
        """Move `face_ids` (faces of `person_id`) to a new unnamed cluster; returns its id. Each
        part becomes a must-link group, cannot-linked to the other."""
        part = sorted(set(check_ids(face_ids)))
        with self._lock, self._store.transaction() as db:
            _person_row(db, person_id)
            faces = set(_face_ids(db, person_id))
            stray = [f for f in part if f not in faces]
            if not part or stray:
                raise LibraryError(
                    f"split takes faces of person {person_id}; not theirs: {stray[:5]}"
                )
            rest = sorted(faces - set(part))
            if not rest:
                raise LibraryError("split needs to leave at least one face where it is")
            links.delete_between(db, "must", part, rest)
            links.chain(db, part, "split")
            links.chain(db, rest, "split")
            links.add_links(db, "cannot", [(a, b) for a in part for b in rest], "split")
            new = db.execute(
                "INSERT INTO people (name, created) VALUES (NULL, ?)", (now(),)
            ).lastrowid
            _assign(db, part, new)
        return int(new)

    def move(self, face_id: int, person_id: int | None) -> Face:
        """Move one face to a person (None: to nobody): cannot-linked to the faces it leaves,
        must-linked to the person it joins."""
        with self._lock, self._store.transaction() as db:
            _move(
                db,
                check_id(face_id),
                None if person_id is None else check_id(person_id, "person"),
                "move",
            )
        return self.face(face_id)

    def accept(self, person_id: int, face_id: int) -> Face:
        """Accept a suggestion: the face is `person_id`'s (as `move`)."""
        with self._lock, self._store.transaction() as db:
            _move(db, check_id(face_id), check_id(person_id, "person"), "accept")
        return self.face(face_id)

    def decline(self, person_id: int, face_id: int) -> Face:
        """Decline a suggestion: the face is not `person_id` (cannot-linked to all their faces;
        taken out of them if it was theirs)."""
        with self._lock, self._store.transaction() as db:
            row = _face_row(db, face_id)
            _person_row(db, person_id)
            if row["person_id"] == check_id(person_id, "person"):
                links.detach(db, check_id(face_id), "decline")
                _assign(db, [check_id(face_id)], None)
            others = [f for f in _face_ids(db, person_id) if f != check_id(face_id)]
            links.add_links(db, "cannot", [(check_id(face_id), f) for f in others], "decline")
        return self.face(face_id)

    def must_link(self, face_a: int, face_b: int) -> None:
        """Faces a and b are the same person: their groups join (and their person, when one of
        them has one); refused when it would put a cannot-linked pair together."""
        with self._lock, self._store.transaction() as db:
            _must_link(db, check_id(face_a), check_id(face_b))

    def cannot_link(self, face_a: int, face_b: int) -> None:
        """Faces a and b are different people; if they are together, b's group leaves."""
        with self._lock, self._store.transaction() as db:
            a, b = _face_row(db, face_a), _face_row(db, face_b)
            if check_id(face_a) == check_id(face_b):
                raise LibraryError("a face cannot be cannot-linked to itself")
            groups = links.must_groups(db)
            if groups.find(check_id(face_a)) == groups.find(check_id(face_b)):
                raise LibraryError(
                    f"faces {face_a} and {face_b} are must-linked (unlink them first)"
                )
            links.add_links(db, "cannot", [(check_id(face_a), check_id(face_b))], "user")
            if a["person_id"] is not None and a["person_id"] == b["person_id"]:
                _assign(db, links.group_of(db, check_id(face_b)), None)

    def unlink(self, face_a: int, face_b: int) -> int:
        """Forget the links between two faces; returns how many were removed."""
        with self._lock, self._store.transaction() as db:
            _face_row(db, face_a), _face_row(db, face_b)
            a, b = links.pair(face_a, face_b)
            removed = db.execute(
                "DELETE FROM face_links WHERE face_a = ? AND face_b = ?", (a, b)
            ).rowcount
            _evict_same_photo(db, [a, b])
        return removed

    def reject(self, face_id: int, reason: str = "not_a_face") -> Face:
        """Mark a face "not_a_face" or "ignore": unassigned for good, never clustered."""
        if reason not in REJECT_REASONS:
            raise LibraryError(f"reason must be one of {', '.join(REJECT_REASONS)}; got {reason!r}")
        with self._lock, self._store.transaction() as db:
            old = _face_row(db, face_id)["person_id"]
            links.detach(db, check_id(face_id), "reject")
            db.execute(
                "UPDATE faces SET rejected = ?, person_id = NULL, assigned_by = 'user' "
                "WHERE id = ?",
                (reason, check_id(face_id)),
            )
            drop_empty_clusters(db, [] if old is None else [old])
        return self.face(face_id)

    def unreject(self, face_id: int) -> Face:
        """Undo `reject`: the face is unassigned again, and clustered from now on. A face that
        is not rejected is an error (a wrong id would otherwise pass unnoticed)."""
        with self._lock, self._store.transaction() as db:
            if _face_row(db, face_id)["rejected"] is None:
                raise LibraryError(f"face {face_id} is not rejected")
            db.execute("UPDATE faces SET rejected = NULL WHERE id = ?", (check_id(face_id),))
        return self.face(face_id)

    def suggestions(
        self, person_id: int, k: int = 10, max_distance: float | None = None
    ) -> list[Suggestion]:
        """The unassigned faces nearest to a person (mean squared L2 to their faces), nearest
        first, leaving out faces cannot-linked to them or from a photo they are in already."""
        k = check_k(k)
        limit = check_threshold(max_distance, 1.5 * self._decision()[0], "max_distance")
        db = self._store.db
        _person_row(db, person_id)
        mine = db.execute(
            "SELECT id, embedding, content_hash FROM faces WHERE person_id = ?",
            (check_id(person_id, "person"),),
        ).fetchall()
        if not mine:
            return []
        mean = np.mean([np.frombuffer(r[1], np.float32) for r in mine], axis=0)
        own, photos = {r[0] for r in mine}, {r[2] for r in mine}
        barred = {b if a in own else a for a, b in links.cannot_pairs(db) if a in own or b in own}
        rows = db.execute(
            "SELECT id, embedding, content_hash FROM faces "
            "WHERE person_id IS NULL AND rejected IS NULL"
        ).fetchall()
        rows = [r for r in rows if r[0] not in barred and r[2] not in photos]
        if not rows:
            return []
        x = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
        d = 2.0 - 2.0 * (x @ mean)
        order = [i for i in np.argsort(d, kind="stable") if d[i] <= limit][:k]
        return [
            Suggestion(check_id(person_id, "person"), int(rows[i][0]), float(d[i])) for i in order
        ]


# -- helpers (inside a transaction) -------------------------------------------------------------


def _face_row(db: sqlite3.Connection, face_id) -> sqlite3.Row:
    number = known_id(face_id)
    query = "SELECT * FROM faces WHERE id = ?"
    row = None if number is None else db.execute(query, (number,)).fetchone()
    if row is None:
        raise LibraryNotFoundError(f"no face with id {face_id}", "face")
    return row


def _person_row(db: sqlite3.Connection, person_id) -> sqlite3.Row:
    number = known_id(person_id, "person")
    query = "SELECT id, name FROM people WHERE id = ?"
    row = None if number is None else db.execute(query, (number,)).fetchone()
    if row is None:
        raise LibraryNotFoundError(f"no person or cluster with id {person_id}", "person")
    return row


def _face_ids(db: sqlite3.Connection, person_id) -> list[int]:
    return [
        r[0]
        for r in db.execute(
            "SELECT id FROM faces WHERE person_id = ? ORDER BY id", (check_id(person_id, "person"),)
        )
    ]


def _assign(db: sqlite3.Connection, faces, person_id: int | None) -> None:
    """Give `faces` to `person_id` (None: nobody); the unnamed clusters they leave empty go."""
    faces = [int(f) for f in faces]
    left = {
        db.execute("SELECT person_id FROM faces WHERE id = ?", (f,)).fetchone()[0] for f in faces
    }
    db.executemany(
        "UPDATE faces SET person_id = ?, assigned_by = 'user' WHERE id = ?",
        [(person_id, f) for f in faces],
    )
    drop_empty_clusters(db, left - {None, person_id})


def _move(db: sqlite3.Connection, face_id: int, person_id: int | None, origin: str) -> None:
    row = _face_row(db, face_id)
    if row["rejected"] is not None:
        raise LibraryError(f"face {face_id} is rejected ({row['rejected']}); unreject it first")
    old = row["person_id"]
    if person_id is not None:
        _person_row(db, person_id)
        clash = db.execute(
            "SELECT id FROM faces WHERE person_id = ? AND content_hash = ? AND id != ?",
            (person_id, row["content_hash"], face_id),
        ).fetchone()
        if clash is not None:
            raise LibraryError(
                f"person {person_id} already has face {clash[0]} of the same photo "
                "(move that face first, or must-link the two)"
            )
    if old == person_id:
        return
    links.detach(db, face_id, origin)
    if old is not None:
        others = [f for f in _face_ids(db, old) if f != face_id]
        links.add_links(db, "cannot", [(face_id, f) for f in others], origin)
    if person_id is not None:
        theirs = _face_ids(db, person_id)
        links.delete_between(db, "cannot", [face_id], theirs)
        if theirs:
            links.add_links(db, "must", [(face_id, theirs[0])], origin)
    _assign(db, [face_id], person_id)


def _must_link(db: sqlite3.Connection, a: int, b: int) -> None:
    ra, rb = _face_row(db, a), _face_row(db, b)
    if a == b or ra["rejected"] is not None or rb["rejected"] is not None:
        raise LibraryError("must-link takes two different faces, neither rejected")
    group_a, group_b = links.group_of(db, a), links.group_of(db, b)
    links.delete_between(db, "cannot", group_a, group_b)
    pa, pb = ra["person_id"], rb["person_id"]
    named = {p: _person_row(db, p)[1] for p in (pa, pb) if p is not None}
    if pa == pb:
        target, mover = pa, []
    elif pa is None or pb is None:
        target, mover = (pb, group_a) if pa is None else (pa, group_b)
    elif named[pa] is not None and named[pb] is not None:
        raise LibraryError(f"faces {a} and {b} belong to two named people (merge them instead)")
    else:
        target, mover = (pb, group_a) if named[pb] is not None else (pa, group_b)
    if target is not None:
        theirs = set(_face_ids(db, target)) - set(mover)
        for x, y in links.cannot_pairs(db):
            if (x in theirs and y in mover) or (y in theirs and x in mover):
                raise LibraryError(f"face {x} and face {y} are cannot-linked (unlink them first)")
    links.add_links(db, "must", [(a, b)], "user")
    _assign(db, mover, target)
    _evict_same_photo(db, group_a + group_b)


def _evict_same_photo(db: sqlite3.Connection, faces) -> None:
    """Unassign the groups of the given faces that share a photo and a person with a face of
    another group (the implicit cannot-link of one photo's faces)."""
    groups = links.must_groups(db)
    for face in faces:
        row = db.execute(
            "SELECT person_id, content_hash FROM faces WHERE id = ?", (int(face),)
        ).fetchone()
        if row is None or row[0] is None:
            continue
        mates = db.execute(
            "SELECT id FROM faces WHERE person_id = ? AND content_hash = ? AND id != ?",
            (row[0], row[1], int(face)),
        ).fetchall()
        if any(groups.find(m[0]) != groups.find(int(face)) for m in mates):
            _assign(db, links.group_of(db, int(face)), None)
            groups = links.must_groups(db)

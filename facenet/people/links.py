"""Must-link and cannot-link between faces: how they are stored, grouped and checked.

Why faces, not people: a link between two faces means the same thing whatever clusters exist
later (a merge, a split or a re-clustering renumbers clusters, never faces), so a correction
cannot be lost when the cluster it was made on goes away. Must-links are transitive: the faces
they connect form a group that is always in one person (or all unassigned). A cannot-link
keeps the two faces' groups apart. Two faces of one photo are cannot-linked implicitly (not
stored) unless a must-link path joins them: the user's word wins (a mirror, a collage).

`violations(db)` checks every stored constraint against the assignment; the library keeps it
empty after every operation (tests/test_people_invariants.py).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable

from ..gallery.store import now


class Groups:
    """Union-find over face ids (must-link groups)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        """The representative of x's group (x itself when x has no must-link)."""
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> bool:
        """Join the groups of a and b; False when they were one already."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True

    def members(self, faces: Iterable[int]) -> dict[int, list[int]]:
        """root -> the given faces in that group."""
        out: dict[int, list[int]] = defaultdict(list)
        for f in faces:
            out[self.find(f)].append(f)
        return out


def pair(a: int, b: int) -> tuple[int, int]:
    """A link's stored order (smaller id first)."""
    a, b = int(a), int(b)
    return (a, b) if a < b else (b, a)


def must_groups(db: sqlite3.Connection) -> Groups:
    """Union-find of every stored must-link."""
    groups = Groups()
    for a, b in db.execute("SELECT face_a, face_b FROM face_links WHERE kind = 'must'"):
        groups.union(a, b)
    return groups


def cannot_pairs(db: sqlite3.Connection) -> list[tuple[int, int]]:
    """Every stored cannot-link."""
    return [
        tuple(r) for r in db.execute("SELECT face_a, face_b FROM face_links WHERE kind = 'cannot'")
    ]


def linked_faces(db: sqlite3.Connection) -> set[int]:
    """Faces with any stored link (the add path never moves those)."""
    rows = db.execute("SELECT face_a, face_b FROM face_links").fetchall()
    return {int(x) for r in rows for x in r}


def add_links(
    db: sqlite3.Connection, kind: str, pairs: Iterable[tuple[int, int]], origin: str
) -> int:
    """Store links (duplicates ignored; a face is never linked to itself); how many new."""
    rows = [(kind, *pair(a, b), origin, now()) for a, b in pairs if int(a) != int(b)]
    before = db.total_changes
    db.executemany(
        "INSERT OR IGNORE INTO face_links (kind, face_a, face_b, origin, created) "
        "VALUES (?, ?, ?, ?, ?)",
        rows,
    )
    return db.total_changes - before


def delete_between(
    db: sqlite3.Connection, kind: str, side_a: Iterable[int], side_b: Iterable[int]
) -> int:
    """Delete the `kind` links with one face in each side; how many."""
    a, b = {int(x) for x in side_a}, {int(x) for x in side_b}
    if not a or not b:
        return 0
    rows = db.execute(
        f"SELECT id, face_a, face_b FROM face_links WHERE kind = ? AND (face_a IN ({_marks(a)}) "
        f"OR face_b IN ({_marks(a)}))",
        (kind, *a, *a),
    ).fetchall()
    doomed = [r[0] for r in rows if (r[1] in a and r[2] in b) or (r[2] in a and r[1] in b)]
    db.executemany("DELETE FROM face_links WHERE id = ?", [(i,) for i in doomed])
    return len(doomed)


def chain(db: sqlite3.Connection, faces: Iterable[int], origin: str) -> int:
    """Must-link `faces` into one group with as few new links as needed (one per group joined)."""
    groups = must_groups(db)
    faces = sorted({int(f) for f in faces})
    new = []
    for a, b in zip(faces, faces[1:], strict=False):
        if groups.union(a, b):
            new.append((a, b))
    return add_links(db, "must", new, origin)


def detach(db: sqlite3.Connection, face: int, origin: str) -> None:
    """Take `face` out of its must-link group; the rest of the group stays one group."""
    rows = db.execute(
        "SELECT id, face_a, face_b FROM face_links "
        "WHERE kind = 'must' AND (face_a = ? OR face_b = ?)",
        (face, face),
    ).fetchall()
    if not rows:
        return
    group = [f for f in group_of(db, face) if f != face]
    db.executemany("DELETE FROM face_links WHERE id = ?", [(r[0],) for r in rows])
    chain(db, group, origin)


def group_of(db: sqlite3.Connection, face: int) -> list[int]:
    """Every face must-linked (transitively) to `face`, itself included."""
    groups = must_groups(db)
    root = groups.find(int(face))
    members = {int(face)}
    for a, b in db.execute("SELECT face_a, face_b FROM face_links WHERE kind = 'must'"):
        if groups.find(a) == root:
            members.update((int(a), int(b)))
    return sorted(members)


def violations(db: sqlite3.Connection) -> list[dict]:
    """Every stored constraint the assignment breaks (the library keeps this empty)."""
    person = {
        int(r[0]): (r[1], r[2], r[3])
        for r in db.execute("SELECT id, person_id, rejected, content_hash FROM faces")
    }
    out = []
    for kind, a, b in db.execute("SELECT kind, face_a, face_b FROM face_links"):
        pa, pb = person[a][0], person[b][0]
        if kind == "must" and (pa != pb or person[a][1] or person[b][1]):
            out.append({"kind": "must", "faces": [a, b], "people": [pa, pb]})
        if kind == "cannot" and pa is not None and pa == pb:
            out.append({"kind": "cannot", "faces": [a, b], "people": [pa, pb]})
    for face, (p, rejected, _) in person.items():
        if rejected is not None and p is not None:
            out.append({"kind": "reject", "faces": [face], "people": [p]})
    groups = must_groups(db)
    seen: dict[tuple[str, int], list[int]] = defaultdict(list)
    for face, (p, _, photo) in person.items():
        if p is not None:
            seen[(photo, p)].append(face)
    for (_, p), faces in seen.items():
        for i, a in enumerate(faces):
            for b in faces[i + 1 :]:
                if groups.find(a) != groups.find(b):
                    out.append({"kind": "same_photo", "faces": [a, b], "people": [p, p]})
    return out


def _marks(values) -> str:
    return ",".join("?" * len(values))

"""`Library.recluster`'s database side: read the free faces, seeds and constraints, cluster them
(`recluster.cluster_items`), write the new assignment in one transaction."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from ..gallery.store import Store, now
from . import links
from .assign import JOIN_FACTOR
from .recluster import APART, Items, cluster_items, place_low
from .records import ReclusterReport


def recluster(
    store: Store, threshold: float, low_threshold: float, min_faces: int
) -> ReclusterReport:
    """Re-cluster the unassigned and unnamed-cluster faces (see `recluster.py`)."""
    db = store.db
    rows = db.execute(
        "SELECT f.id, f.person_id, p.name IS NOT NULL, f.low_quality, f.rejected, f.content_hash, "
        "f.embedding, f.assigned_by FROM faces f LEFT JOIN people p ON p.id = f.person_id "
        "ORDER BY f.id"
    ).fetchall()
    groups = links.must_groups(db)
    item_of: dict[int, int] = {}
    members: list[list[int]] = []
    seed_person: list[int] = []
    named_item: dict[int, int] = {}
    vectors: dict[int, np.ndarray] = {}
    low: dict[int, bool] = {}
    old_person: dict[int, int | None] = {}
    root_item: dict[int, int] = {}
    user_placed: set[int] = set()
    for fid, person, named, is_low, rejected, _photo, blob, by in rows:
        if rejected is not None:
            continue
        vectors[fid] = np.frombuffer(blob, np.float32)
        low[fid] = bool(is_low)
        if named:
            key = named_item.setdefault(person, len(members))
            if key == len(members):
                members.append([])
                seed_person.append(person)
        else:
            old_person[fid] = person
            if by == "user" and person is not None:
                user_placed.add(fid)
            key = root_item.setdefault(groups.find(fid), len(members))
            if key == len(members):
                members.append([])
                seed_person.append(-1)
        item_of[fid] = key
        members[key].append(fid)
    items = _items(members, seed_person, vectors, low, item_of, rows, db)
    labels = cluster_items(items, threshold)
    place_low(items, labels, low_threshold, min_faces)
    return _write(store, members, items, labels, old_person, min_faces, user_placed)


def _items(members, seed_person, vectors, low, item_of, rows, db) -> Items:
    dim = len(next(iter(vectors.values()))) if vectors else 1
    sums = np.zeros((len(members), dim), np.float64)
    for k, faces in enumerate(members):
        sums[k] = np.sum([vectors[f] for f in faces], axis=0)
    sizes = np.array([len(m) for m in members], np.float64)
    seed = np.array(seed_person, np.int64)
    fixed = np.array([s >= 0 or len(m) >= 2 for s, m in zip(seed, members, strict=True)], bool)
    seeding = np.array(
        [s >= 0 or any(not low[f] for f in m) for s, m in zip(seed, members, strict=True)], bool
    )
    apart: set[tuple[int, int]] = set()
    for a, b in links.cannot_pairs(db):
        if a in item_of and b in item_of and item_of[a] != item_of[b]:
            apart.add(links.pair(item_of[a], item_of[b]))
    by_photo: dict[str, set[int]] = defaultdict(set)
    for fid, *_, photo, _blob, _by in rows:
        if fid in item_of:
            by_photo[photo].add(item_of[fid])
    for found in by_photo.values():
        found = sorted(found)
        apart.update((a, b) for i, a in enumerate(found) for b in found[i + 1 :])
    return Items(sums, sizes, seeding, seed, apart, fixed, fixed_scale=JOIN_FACTOR)


def _write(
    store: Store, members, items: Items, labels, old_person, min_faces, user_placed
) -> ReclusterReport:
    """Turn labels into people (keeping cluster ids where they overlap) in one transaction. A
    cluster smaller than `min_faces` survives when the user put one of its faces there (a
    face split off on its own stays a cluster)."""
    report = ReclusterReport(faces=len(old_person))
    by_label: dict[int, list[int]] = defaultdict(list)
    for k, label in enumerate(labels):
        if label >= 0:
            by_label[int(label)].append(k)
    target: dict[int, int | None] = {f: None for f in old_person}
    unnamed: list[tuple[list[int], Counter]] = []
    for item_list in by_label.values():
        faces = [f for k in item_list for f in members[k]]
        seeds = [int(items.seed_person[k]) for k in item_list if items.seed_person[k] >= 0]
        if seeds:
            for f in faces:
                if f in target:
                    target[f] = seeds[0]
                    report.joined_named += old_person[f] != seeds[0]
        elif len(faces) >= min_faces or any(f in user_placed for f in faces):
            unnamed.append(
                (faces, Counter(old_person[f] for f in faces if old_person[f] is not None))
            )
    with store.transaction() as db:
        taken: set[int] = set()
        unnamed.sort(key=lambda u: -(u[1].most_common(1)[0][1] if u[1] else 0))
        for faces, overlap in unnamed:
            keep = next((p for p, _ in overlap.most_common() if p not in taken), None)
            if keep is None:
                keep = db.execute(
                    "INSERT INTO people (name, created) VALUES (NULL, ?)", (now(),)
                ).lastrowid
                report.new_clusters += 1
            taken.add(keep)
            for f in faces:
                target[f] = keep
        changed = [(p, f) for f, p in target.items() if p != old_person[f]]
        db.executemany("UPDATE faces SET person_id = ?, assigned_by = 'auto' WHERE id = ?", changed)
        gone = db.execute(
            "SELECT p.id FROM people p WHERE p.name IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM faces f WHERE f.person_id = p.id)"
        ).fetchall()
        db.executemany("DELETE FROM people WHERE id = ?", gone)
        db.execute("UPDATE faces SET pending = 0 WHERE pending = 1")  # placed here instead
    report.clusters = len(unnamed)
    report.removed_clusters = len(gone)
    report.unassigned = sum(1 for p in target.values() if p is None)
    report.changed = len(changed)
    return report


__all__ = ["APART", "recluster"]

"""Incremental assignment: where the new faces of a batch go, without re-clustering the rest.

The new faces are clustered with what is near them, and nothing else moves: the items are the
new faces, the unassigned faces among their nearest neighbours (the gallery's `Index`) that no
correction touches, and, as fixed seeds, the people (named or not) those neighbours belong to,
each as the sum of all their faces. The same constrained average linkage as `recluster`
(`recluster.cluster_items`, distances to people scaled by `JOIN_FACTOR`) then decides: a new
face whose cluster holds a seed joins that person; a cluster of at least `min_faces` faces
without a seed becomes a new cluster (taking the unassigned neighbours in it along); the rest
stay unassigned. Two faces of one photo are
kept apart, two people are never merged, and faces under the quality gate never seed: they
join a standing cluster within `low_threshold`, or nobody.

Why not "nearest person wins" per face (Immich's rule): on the simulated library of
benchmarks/people_library.py (1,347 LFW photos in the first batch) it reached pairwise F1 0.824
and BCubed F1 0.719 against 0.887 and 0.831 for batch clustering: each face decided alone,
early faces chained people together before their own people had formed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .recluster import Items, cluster_items, place_low

#: Neighbours fetched from the index per new face.
NEIGHBOURS = 32
#: Distances from new faces to existing people count this much more: a face joins a person at
#: average squared L2 under threshold / JOIN_FACTOR (0.149 for dlib-resnet), else it waits,
#: unassigned, for faces of its own to cluster with. Chosen on the first 1,200 photos of
#: benchmarks/people_library.py's order (pairwise / BCubed F1 after 5 batches, batch
#: clustering 0.907 / 0.839): factor 1.0 gave 0.885 / 0.775, 1.1 0.911 / 0.807, 1.2 0.918 /
#: 0.814; the full run is in docs/recognition.md.
JOIN_FACTOR = 1.2


@dataclass
class Existing:
    """What assignment needs to know of a stored face found near a new one."""

    person_id: int | None
    low: bool
    free: bool  # unassigned, not rejected, no link: may be placed with the new faces
    photo: str
    vector: np.ndarray


@dataclass
class Decisions:
    """Where faces go: `person[i]` for new face i and `claimed[face id]` for stored unassigned
    faces, each ("p", person id), ("c", new cluster number) or None (stays unassigned)."""

    person: list[tuple[str, int] | None]
    claimed: dict[int, tuple[str, int] | None] = field(default_factory=dict)
    clusters: int = 0
    #: new cluster number -> the machine-made cluster whose id it keeps
    reuse: dict[int, int] = field(default_factory=dict)
    free: list[int] = field(default_factory=list)


def assign_batch(
    vectors: np.ndarray,
    low: np.ndarray,
    photos: list[str],
    existing: dict[int, Existing],
    sums: dict[int, tuple[np.ndarray, int, set[str]]],
    threshold: float,
    low_threshold: float,
    min_faces: int = 2,
) -> Decisions:
    """Decide the new faces' places (see the module doc). `existing`: the stored faces near
    them; `sums`: person id -> (sum of their faces' embeddings, face count, their photos) for
    the people among those."""
    m = len(vectors)
    free = [fid for fid, e in existing.items() if e.free]
    seeds = sorted(sums)
    rows = [np.asarray(v, np.float64) for v in vectors]
    rows += [existing[f].vector.astype(np.float64) for f in free]
    rows += [np.asarray(sums[p][0], np.float64) for p in seeds]
    sizes = [1.0] * (m + len(free)) + [float(sums[p][1]) for p in seeds]
    seeding = [not low[i] for i in range(m)] + [not existing[f].low for f in free]
    photo = list(photos) + [existing[f].photo for f in free]
    by_photo: dict[str, list[int]] = {}
    for k, key in enumerate(photo):
        by_photo.setdefault(key, []).append(k)
    apart = {(a, b) for ks in by_photo.values() for i, a in enumerate(ks) for b in ks[i + 1 :]}
    for s, person in enumerate(seeds, start=len(photo)):  # a person holding a face of the photo
        apart.update((k, s) for p in sums[person][2] for k in by_photo.get(p, ()))
    items = Items(
        sums=np.stack(rows) if rows else np.zeros((0, vectors.shape[1])),
        sizes=np.array(sizes),
        seeding=np.array(seeding + [True] * len(seeds), bool),
        seed_person=np.array([-1] * len(photo) + seeds, np.int64),
        apart=apart,
        fixed_scale=JOIN_FACTOR,
    )
    labels = cluster_items(items, threshold)
    place_low(items, labels, low_threshold, min_faces)
    decisions = Decisions(person=[], free=free)
    return _decide(labels, items, m, [existing[f].person_id for f in free], min_faces, decisions)


def _decide(
    labels: np.ndarray, items: Items, m: int, old: list[int | None], min_faces: int, out: Decisions
) -> Decisions:
    """Labels into decisions: a seed's person, a cluster (numbered; `reuse` keeps the id of the
    machine-made cluster it overlaps most), or None. `old`: each free face's cluster, or None."""
    out.person = [None] * m
    target: dict[int, tuple[str, int]] = {}
    fresh: list[tuple[int, Counter]] = []
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        seeds = [int(items.seed_person[k]) for k in members if items.seed_person[k] >= 0]
        if seeds:
            target[int(label)] = ("p", seeds[0])
        elif len(members) >= min_faces:
            target[int(label)] = ("c", out.clusters)
            overlap = Counter(old[k - m] for k in members if m <= k < m + len(old))
            overlap.pop(None, None)
            fresh.append((out.clusters, overlap))
            out.clusters += 1
    taken: set[int] = set()
    for number, overlap in sorted(fresh, key=lambda f: -max(f[1].values(), default=0)):
        keep = next((p for p, _ in overlap.most_common() if p not in taken), None)
        if keep is not None:
            out.reuse[number] = keep
            taken.add(keep)
    for k, label in enumerate(labels[: m + len(old)]):
        place = target.get(int(label)) if label >= 0 else None
        if k < m:
            out.person[k] = place
        elif place is not None or old[k - m] is not None:
            out.claimed[out.free[k - m]] = place
    return out

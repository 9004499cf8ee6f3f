"""Incremental assignment: where the new faces of a batch go, and the machine's own clusters
near them regrouped with them; what the user made or touched never moves.

The items are the new faces; the faces near them (the gallery's `Index`) that are unassigned
and touched by no correction; every face of the machine-made clusters among those neighbours
(unnamed, no face linked or placed by the user); and, as fixed seeds, the other people those
neighbours belong to (named people and clusters a correction touched), each as the sum of all
their faces. The same constrained average linkage as `recluster` (`recluster.cluster_items`,
distances to fixed seeds scaled by `JOIN_FACTOR`) then decides: a cluster holding a seed joins
that person; one of at least `min_faces` faces without a seed is a cluster (keeping the id of
the machine-made cluster it overlaps most, or a new one); the rest are unassigned. Two faces of
one photo are kept apart, two fixed people are never merged, and faces under the quality gate
never seed: they join a standing cluster within `low_threshold`, or nobody. So in the
neighbourhood of the new faces, `add` does what `recluster` would, and elsewhere nothing moves.

Why regroup the machine-made clusters (before, they were fixed seeds and nothing placed ever
moved): on benchmarks/people_library.py (LFW) that design ended 2.2 BCubed F1 points under a
batch re-clustering (0.840 vs 0.861; 598 clusters vs 451 for 610 people). Its recall was lost
on the small people (4-9 photos: 9.6 of the 14 points lost, against 2.1 in batch), not the big
ones (George W Bush: 524 of 530 in one cluster, 525 in batch): 455 subject faces sat in a
cluster of another person, half of them placed before their own person had a cluster (frozen
since), half later, carried by a group of new faces into a wrong cluster (over the 455, the
median average distance to their own person's cluster was 0.136, to the one they were in
0.160). Merging whole machine-made clusters after each add (at the threshold) fixed fragments
but merged mixed ones (BCubed F1 0.788); a person's seed taken from their faces near the batch
only changed nothing (0.839). Chosen on a CelebA library (the protocol of
benchmarks/people_library.py with --lfw ../shared/data/celeba: the 812 identities with >= 4
photos, 15,227 photos; the variants run as a switch in a scratch copy of this code; BCubed F1
after batch 5, batch re-clustering 0.750): fixed machine clusters 0.722 (2.8 points under);
regrouping only clusters under 10 / 40 faces, the larger ones fixed seeds, 0.704 / 0.712
(worse: a fixed seed holds its faces at threshold / `JOIN_FACTOR` while batch clustering would
not); regrouping every machine-made cluster near the new faces 0.749 (0.1 under), kept. The
cost: faces of unnamed, uncorrected clusters may change cluster on an `add`
(`AddReport.regrouped` counts them); naming or correcting a cluster pins it.

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
#: Distances from new faces to fixed people (named, or a cluster a correction touched) count
#: this much more: a face joins one at average squared L2 under threshold / JOIN_FACTOR (0.149
#: for dlib-resnet), else it waits, unassigned, for faces of its own to cluster with. Chosen
#: when every existing person was a fixed seed, on the first 1,200 photos of LFW in
#: benchmarks/people_library.py's order (pairwise / BCubed F1 after 5 batches, batch
#: clustering 0.907 / 0.839): factor 1.0 gave 0.885 / 0.775, 1.1 0.911 / 0.807, 1.2 0.918 /
#: 0.814; `recluster` uses it for the same seeds.
JOIN_FACTOR = 1.2


@dataclass
class Existing:
    """What assignment needs to know of a stored face found near a new one."""

    person_id: int | None
    low: bool
    #: grouped again with the new faces: unassigned and touched by no correction, or in a
    #: machine-made cluster (then `person_id` is that cluster)
    free: bool
    photo: str
    vector: np.ndarray


@dataclass
class Decisions:
    """Where faces go: `person[i]` for new face i and `claimed[face id]` for the stored free
    faces that were unassigned and found a place or were in a machine-made cluster, each ("p",
    person id), ("c", cluster number) or None (unassigned). `free`: the free faces' ids."""

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

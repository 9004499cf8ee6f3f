"""Constrained re-clustering of the faces nobody has named: average linkage with must-links,
cannot-links and named people as fixed seeds.

Items are must-link groups (a face without must-links is a group of one) of the free faces
(unassigned or in an unnamed cluster, not rejected), plus one seed per named person (all its
faces). Average linkage between two items is the mean squared L2 over their face pairs, which
for unit vectors is `2 - 2 * mean_a . mean_b`, so an item needs only its faces' sum. Pairs that
must stay apart (a cannot-link between their faces, two faces of one photo, two named people)
are at `APART`, a distance no average can bring under the threshold. Average linkage stays
reducible with such distances, so `facenet.clustering.average_linkage` (nearest-neighbour
chain) runs on them unchanged, one connected component of the threshold graph at a time (a
merge below the threshold needs a pair below it), which keeps the memory to the largest
component's square.

Must-link groups of two faces or more (what merges, splits and moves leave behind: clusters the
user has confirmed) are fixed like named people: they take free faces but never merge with
another fixed item, so a re-clustering cannot undo a correction by joining two corrected
clusters; as in `add`, a face joins a fixed item only within threshold / `JOIN_FACTOR`. A
cluster holding a seed joins that named person; other clusters of at least `min_faces` faces
become unnamed clusters (keeping the id of the old cluster they overlap most); the rest are
unassigned. Items whose faces all failed the quality gate never seed:
afterwards they join the nearest standing cluster within `low_threshold`, or stay unassigned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..clustering import average_linkage

#: The distance of pairs that must stay apart (far above any squared-L2 threshold <= 4).
APART = 1e6


@dataclass
class Items:
    """What is clustered: per item its faces' embedding sum, face count, whether it may seed
    (holds a face that passed the gate), the named person it is fixed to (or -1), and whether
    it is fixed (default: when it has a person): fixed items never merge with each other."""

    sums: np.ndarray
    sizes: np.ndarray
    seeding: np.ndarray
    seed_person: np.ndarray
    apart: set[tuple[int, int]]
    fixed: np.ndarray | None = None
    #: Distances between a fixed item and another are multiplied by this (>= 1: a face joins a
    #: person only when clearly closer; `assign.py`).
    fixed_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.fixed is None:
            self.fixed = self.seed_person >= 0

    def means(self) -> np.ndarray:
        """Each item's mean embedding."""
        return self.sums / self.sizes[:, None]

    def apart_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The apart pairs as two index arrays (made once)."""
        if getattr(self, "_apart", None) is None:
            pairs = np.array(sorted(self.apart), np.int64).reshape(-1, 2)
            self._apart = (pairs[:, 0], pairs[:, 1])
        return self._apart


def cluster_items(items: Items, threshold: float, block: int = 4096) -> np.ndarray:
    """A cluster label per item (items that cannot seed get -1)."""
    n = len(items.sizes)
    labels = np.full(n, -1, np.int64)
    active = np.flatnonzero(items.seeding)
    means = items.means().astype(np.float32)
    sub = means[active]
    # threshold graph between seeding items, then its connected components
    edges = []
    for start in range(0, len(active), block):
        sims = sub[start : start + block] @ sub.T
        rows, cols = np.nonzero(sims > 1.0 - threshold / 2.0)  # squared L2 < threshold
        keep = rows + start < cols
        edges.append((rows[keep] + start, cols[keep]))
    roots = components(len(active), edges)
    order = np.argsort(roots, kind="stable")
    bounds = np.flatnonzero(np.diff(roots[order])) + 1
    next_label = 0
    for component in np.split(order, bounds):
        members = active[component]
        if len(members) == 1:
            labels[members[0]] = next_label
            next_label += 1
            continue
        raw = _linkage(items, members, means[members], threshold)
        for value in np.unique(raw):
            labels[members[raw == value]] = next_label
            next_label += 1
    return labels


def place_low(items: Items, labels: np.ndarray, low_threshold: float, min_faces: int) -> None:
    """Items that may not seed join the nearest cluster within `low_threshold`, if any; only
    a cluster that stands without them (a named person's, or `min_faces` seeding faces)."""
    todo = np.flatnonzero(labels < 0)
    if len(todo) == 0 or labels.max(initial=-1) < 0:
        return
    n_clusters = int(labels.max()) + 1
    sums = np.zeros((n_clusters, items.sums.shape[1]))
    sizes = np.zeros(n_clusters)
    np.add.at(sums, labels[labels >= 0], items.sums[labels >= 0])
    np.add.at(sizes, labels[labels >= 0], items.sizes[labels >= 0])
    means = sums / sizes[:, None]
    standing = sizes >= min_faces
    standing[labels[(labels >= 0) & items.fixed]] = True
    cluster_items_of: dict[int, list[int]] = defaultdict(list)
    for k in np.flatnonzero(labels >= 0):
        cluster_items_of[int(labels[k])].append(int(k))
    item_means = items.means()
    for k in todo:
        d = 2.0 - 2.0 * (means @ item_means[k])
        for c in np.argsort(d):
            if d[c] > low_threshold:
                break
            if standing[c] and not any(
                _pair(k, o) in items.apart for o in cluster_items_of[int(c)]
            ):
                labels[k] = c
                break


def _linkage(items: Items, members: np.ndarray, means: np.ndarray, threshold: float):
    """Average linkage of one component's items, apart pairs at `APART`."""
    m = means.astype(np.float32)
    d = (m @ m.T).astype(np.float64)  # then in place: a real library's largest component is
    d *= -2.0  # thousands of items wide
    d += 2.0
    np.clip(d, 0.0, 4.0, out=d)
    a, b = items.apart_arrays()
    position = np.full(len(items.sizes), -1, np.int64)
    position[members] = np.arange(len(members))
    inside = (position[a] >= 0) & (position[b] >= 0)
    pa, pb = position[a[inside]], position[b[inside]]
    seeds = np.flatnonzero(items.fixed[members])
    d[seeds, :] *= items.fixed_scale
    d[:, seeds] *= items.fixed_scale
    d[pa, pb] = d[pb, pa] = APART
    d[np.ix_(seeds, seeds)] = APART
    np.fill_diagonal(d, 0.0)
    return average_linkage(d, threshold, sizes=items.sizes[members], overwrite=True)


def components(n: int, edges: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Connected components of a graph on n nodes: each node's smallest member (vectorised
    label propagation with pointer jumping; a Python union-find took seconds on real faces)."""
    label = np.arange(n)
    if not edges:
        return label
    a = np.concatenate([e[0] for e in edges]).astype(np.int64)
    b = np.concatenate([e[1] for e in edges]).astype(np.int64)
    while True:
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]  # pointer jumping
        if np.array_equal(label, before):
            return label


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)

"""Grouping faces by identity without labels, and scoring a grouping against labels.

`cluster(embeddings, threshold, method)` returns one label per face (-1 = noise), with
clusters numbered by size (0 = largest). Distances are squared L2 between unit embeddings, and
the threshold is the model's verification threshold (`model.info.verification_threshold`; the
default model's when neither a threshold nor a model is given): two faces closer than it are
taken as the same person.

- "agglomerative": average-linkage hierarchical clustering, cut at the threshold (the
  nearest-neighbour chain algorithm in NumPy, as scikit-learn's `AgglomerativeClustering(
  linkage="average", distance_threshold=...)` computes it; O(n^2) memory: up to a few tens of
  thousands of faces).
- "dbscan": density-based (scikit-learn's DBSCAN, in NumPy); a face with fewer than `min_size`
  neighbours within the threshold (itself included) that no cluster reaches is noise.
- "chinese_whispers": graph clustering (Biemann 2006, as in dlib): faces are nodes, pairs within
  the threshold are edges weighted by cosine similarity; each node repeatedly takes the label
  with the largest total weight among its neighbours, in a seeded random order. Implemented
  here with NumPy; the number of clusters is found, not given.

No method needs scikit-learn or SciPy: clustering is part of the light install.

`min_size` turns clusters smaller than it into noise (-1) for every method.
`pairwise_scores(true, predicted)` gives pairwise precision/recall/F1 and cluster counts;
`facenet.clustering.photos.cluster_photos(model, photos, out)` is the `facenet cluster`
command's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ArgumentError
from ..metadata import as_float, as_integer, check_choice
from ..types import Face

METHODS = ("agglomerative", "dbscan", "chinese_whispers")
NOISE = -1


def cluster(
    embeddings: np.ndarray | Sequence[Face],
    threshold: float | None = None,
    method: str = "agglomerative",
    min_size: int = 1,
    *,
    model=None,
    seed: int = 0,
    iterations: int = 30,
) -> np.ndarray:
    """Cluster unit embeddings (n x d, or Faces carrying embeddings) into identities.

    Args:
        embeddings: unit vectors, one per face.
        threshold: squared-L2 distance under which two faces are the same person; None takes
            `model`'s verification threshold, or without a model the default bundled model's
            (distance scales differ between models: pass the model that made the embeddings).
        method: "agglomerative", "dbscan" or "chinese_whispers".
        min_size: clusters with fewer faces become noise (label -1).
        seed, iterations: Chinese whispers' node order and maximum number of sweeps.

    Returns:
        int array of n labels: 0 is the largest cluster, -1 is noise.

    Raises:
        ArgumentError (a ValueError): for a bad option, or rows that are not face vectors
            (NaN, infinite, all zeros); rows of any non-zero length are normalised.
    """
    check_choice("method", method, METHODS)
    x = _as_matrix(embeddings)
    threshold = _threshold(threshold, model)
    _check_counts(min_size=min_size, iterations=iterations, seed=seed)
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        labels = np.zeros(1, dtype=np.int64)
    elif method == "agglomerative":
        labels = average_linkage(_squared_distances(x), threshold)
    elif method == "dbscan":
        labels = dbscan(x, threshold, min_size)
    else:
        labels = chinese_whispers(x, threshold, seed=seed, iterations=iterations)
    return _renumber(np.asarray(labels, dtype=np.int64), min_size)


def chinese_whispers(
    embeddings: np.ndarray, threshold: float, *, seed: int = 0, iterations: int = 30
) -> np.ndarray:
    """Chinese whispers on the graph of pairs within `threshold` (squared L2); raw labels."""
    x = _as_matrix(embeddings)
    neighbours, weights = _threshold_graph(x, threshold)
    n = len(x)
    labels = np.arange(n)
    rng = np.random.default_rng(seed)
    for _ in range(iterations):
        changed = 0
        for node in rng.permutation(n):
            near = neighbours[node]
            if len(near) == 0:
                continue
            candidates, inverse = np.unique(labels[near], return_inverse=True)
            totals = np.bincount(inverse, weights=weights[node])
            best = candidates[np.argmax(totals)]  # ties: the smallest label, deterministic
            if best != labels[node]:
                labels[node] = best
                changed += 1
        if changed == 0:
            break
    return labels


def _threshold(threshold: float | None, model) -> float:
    """The threshold given, else `model`'s, else the default model's: in (0, 4], or an
    ArgumentError (a string failed inside float(), a model name had no `info`)."""
    if threshold is not None:
        value = as_float(threshold)
    elif model is not None:
        if not hasattr(model, "info"):
            raise ArgumentError(
                f"model must be the FaceNet that made the embeddings; got {type(model).__name__}"
            )
        value = float(model.info.verification_threshold)
    else:
        from ..catalog import default_model_info

        value = float(default_model_info().verification_threshold)
    if not 0 < value <= 4:  # NaN too
        shown = str(threshold if threshold is not None else value)[:40]
        raise ArgumentError(f"threshold must be a squared-L2 distance in (0, 4]; got {shown}")
    return value


def _check_counts(**counts) -> None:
    """ArgumentError unless each count is an integer (seed at least 0, the others at least 1):
    a NaN min_size made everything noise, 0 sweeps left every face alone, "2" or None failed
    inside a comparison."""
    for option, value in counts.items():
        low = 0 if option == "seed" else 1
        number = as_integer(value)
        if number is None or number < low:
            raise ArgumentError(f"{option} must be an integer of at least {low}; got {value!r:.40}")


def average_linkage(
    distances: np.ndarray,
    threshold: float,
    sizes: np.ndarray | None = None,
    *,
    overwrite: bool = False,
) -> np.ndarray:
    """Average-linkage clusters of a distance matrix, cut where the linkage distance reaches
    `threshold`: raw labels. Nearest-neighbour chain (O(n^2) time): merge reciprocal nearest
    neighbours, updating distances by Lance-Williams; average linkage is reducible, so this
    builds the same tree as merging the globally closest pair each time. `sizes`: how many
    faces each row already stands for (the people library clusters must-link groups), so that
    merged distances stay averages over faces. `overwrite`: use (and spoil) a float64
    `distances` instead of copying it."""
    d = np.asarray(distances, dtype=np.float64) if overwrite else np.array(distances, np.float64)
    n = len(d)
    np.fill_diagonal(d, np.inf)
    size = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64).copy()
    parent = np.arange(n)
    chain: list[int] = []
    for _ in range(n - 1):
        while True:
            if not chain:
                chain.append(int(np.flatnonzero(size > 0)[0]))
            a = chain[-1]
            b = int(np.argmin(d[a]))
            if len(chain) > 1 and d[a, chain[-2]] <= d[a, b]:
                b = chain[-2]
            if len(chain) > 1 and b == chain[-2]:
                break
            chain.append(b)
        chain = chain[:-2]
        if d[a, b] < threshold:
            parent[_root(parent, b)] = _root(parent, a)
        merged = (size[a] * d[a] + size[b] * d[b]) / (size[a] + size[b])
        d[a], d[:, a] = merged, merged
        d[b], d[:, b] = np.inf, np.inf
        d[a, a] = np.inf
        size[a], size[b] = size[a] + size[b], 0
    return np.array([_root(parent, i) for i in range(n)])


def _root(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return int(i)


def dbscan(embeddings: np.ndarray, threshold: float, min_samples: int) -> np.ndarray:
    """DBSCAN with eps = the threshold (squared L2): raw labels, -1 = noise. A core face has
    at least `min_samples` faces within the threshold (itself included); clusters grow from
    core faces in index order, as scikit-learn's DBSCAN does."""
    x = _as_matrix(embeddings)
    neighbours, _ = _threshold_graph(x, threshold * (1 + 2e-6))
    core = np.array([len(near) + 1 >= min_samples for near in neighbours], dtype=bool)
    labels = np.full(len(x), NOISE, dtype=np.int64)
    current = 0
    for start in range(len(x)):
        if labels[start] != NOISE or not core[start]:
            continue
        labels[start] = current
        stack = [start]
        while stack:
            for near in neighbours[stack.pop()]:
                if labels[near] == NOISE:
                    labels[near] = current
                    if core[near]:
                        stack.append(near)
        current += 1
    return labels


def _threshold_graph(x: np.ndarray, threshold: float, block: int = 2048):
    """Per node: neighbour indices and edge weights (cosine similarity) within the threshold."""
    n = len(x)
    neighbours: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for start in range(0, n, block):
        sims = x[start : start + block] @ x.T
        for row, sim in enumerate(sims):
            node = start + row
            keep = np.flatnonzero(2.0 - 2.0 * sim <= threshold)
            keep = keep[keep != node]
            neighbours.append(keep)
            weights.append(np.maximum(sim[keep], 1e-6).astype(np.float64))
    return neighbours, weights


def _as_matrix(embeddings) -> np.ndarray:
    if isinstance(embeddings, np.ndarray):
        x = embeddings
    else:
        try:
            items = list(embeddings)
        except TypeError:  # None, a number
            raise ArgumentError(
                f"embeddings must be an n x d array; got {type(embeddings).__name__}"
            ) from None
        if any(isinstance(f, Face) for f in items):
            if not all(isinstance(f, Face) and f.embedding is not None for f in items):
                raise ArgumentError("every Face must carry an embedding (use model.represent)")
            items = [f.embedding for f in items]
        x = items
    try:
        x = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError) as exc:  # ragged rows, strings
        raise ArgumentError(f"embeddings must be an n x d array of numbers ({exc})") from None
    if x.ndim != 2:
        if x.size == 0:
            return np.zeros((0, 1), np.float32)
        raise ArgumentError(f"embeddings must be an n x d array; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ArgumentError("embeddings contain NaN or infinite values")
    if len(x) and x.shape[1] == 0:
        raise ArgumentError(f"embeddings must have at least one dimension; got shape {x.shape}")
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)  # no over/underflow
    if np.any(norms == 0):  # no direction: it would sit at distance 2 from everything
        raise ArgumentError(f"embedding {int(np.argmin(norms))} is all zeros (not a face vector)")
    return (x / norms).astype(np.float32)


def _squared_distances(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    d = np.clip(2.0 - 2.0 * (x @ x.T), 0.0, 4.0)
    np.fill_diagonal(d, 0.0)
    return d


def _renumber(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters numbered by size (largest 0; ties by first appearance); small ones -> -1."""
    out = np.full(len(labels), NOISE, dtype=np.int64)
    valid = labels != NOISE
    if not valid.any():
        return out
    values, first, counts = np.unique(labels[valid], return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    mapping = {}
    for rank, i in enumerate(j for j in order if counts[j] >= min_size):
        mapping[values[i]] = rank
    for i in np.flatnonzero(valid):
        out[i] = mapping.get(labels[i], NOISE)
    return out


# -- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseScores:
    """Pairwise clustering quality: of the face pairs put together, the share that are the same
    person (precision); of the same-person pairs, the share put together (recall). Noise faces
    count as singletons."""

    precision: float
    recall: float
    f1: float
    clusters: int
    people: int
    noise: int

    def to_dict(self) -> dict:
        return asdict(self)


def pairwise_scores(true_labels: Sequence, predicted: Sequence[int]) -> PairwiseScores:
    """Pairwise precision, recall and F1 of `predicted` (-1 = noise) against `true_labels`,
    with the number of clusters found (noise excluded) and of people."""
    true = np.asarray(true_labels)
    pred = np.asarray(predicted, dtype=np.int64)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(f"label arrays differ in shape: {true.shape} vs {pred.shape}")
    noise = pred == NOISE
    # every noise face gets its own cluster id
    pred = pred.copy()
    pred[noise] = pred.max(initial=0) + 1 + np.arange(int(noise.sum()))
    _, t = np.unique(true, return_inverse=True)
    _, p = np.unique(pred, return_inverse=True)

    def pairs(counts: np.ndarray) -> float:
        counts = counts.astype(np.float64)
        return float((counts * (counts - 1) / 2).sum())

    together = pairs(np.unique(t * (p.max(initial=0) + 1) + p, return_counts=True)[1])
    predicted_pairs = pairs(np.bincount(p))
    true_pairs = pairs(np.bincount(t))
    precision = together / predicted_pairs if predicted_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    clusters = len(np.unique(np.asarray(predicted)[~noise]))
    return PairwiseScores(precision, recall, f1, clusters, len(np.unique(true)), int(noise.sum()))

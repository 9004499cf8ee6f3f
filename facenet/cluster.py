"""Grouping faces by identity without labels, and scoring a grouping against labels.

`cluster(embeddings, threshold, method)` returns one label per face (-1 = noise), with
clusters numbered by size (0 = largest). Distances are squared L2 between unit embeddings, and
the threshold is the model's verification threshold (`model.info.verification_threshold`):
two faces closer than it are taken as the same person.

- "agglomerative": average-linkage hierarchical clustering, cut at the threshold (scikit-learn,
  O(n^2) memory: up to a few tens of thousands of faces).
- "dbscan": density-based; a face with fewer than `min_size` neighbours within the threshold
  (itself included) that no cluster reaches is noise.
- "chinese_whispers": graph clustering (Biemann 2006, as in dlib): faces are nodes, pairs within
  the threshold are edges weighted by cosine similarity; each node repeatedly takes the label
  with the largest total weight among its neighbours, in a seeded random order. Implemented
  here with NumPy; the number of clusters is found, not given.

`min_size` turns clusters smaller than it into noise (-1) for every method.
`pairwise_scores(true, predicted)` gives pairwise precision/recall/F1 and cluster counts;
`cluster_photos(model, photos, out)` is the `facenet cluster` command's work.
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import FaceNetError, ImageError
from .images import ImageInput, load_image
from .metadata import DEFAULT_THRESHOLD, check_choice
from .types import Face

log = logging.getLogger(__name__)

METHODS = ("agglomerative", "dbscan", "chinese_whispers")
NOISE = -1


def cluster(
    embeddings: np.ndarray | Sequence[Face],
    threshold: float | None = None,
    method: str = "agglomerative",
    min_size: int = 1,
    *,
    seed: int = 0,
    iterations: int = 30,
) -> np.ndarray:
    """Cluster unit embeddings (n x d, or Faces carrying embeddings) into identities.

    Args:
        embeddings: unit vectors, one per face.
        threshold: squared-L2 distance under which two faces are the same person; None uses
            facenet's default (1.1); pass `model.info.verification_threshold`.
        method: "agglomerative", "dbscan" or "chinese_whispers".
        min_size: clusters with fewer faces become noise (label -1).
        seed, iterations: Chinese whispers' node order and maximum number of sweeps.

    Returns:
        int array of n labels: 0 is the largest cluster, -1 is noise.
    """
    check_choice("method", method, METHODS)
    x = _as_matrix(embeddings)
    threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not 0 < threshold <= 4:
        raise ValueError(f"threshold must be a squared-L2 distance in (0, 4]; got {threshold}")
    if min_size < 1:
        raise ValueError(f"min_size must be at least 1; got {min_size}")
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1:
        labels = np.zeros(1, dtype=np.int64)
    elif method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        distances = _squared_distances(x)
        labels = AgglomerativeClustering(
            n_clusters=None, metric="precomputed", linkage="average", distance_threshold=threshold
        ).fit_predict(distances)
    elif method == "dbscan":
        from sklearn.cluster import DBSCAN

        # euclidean eps = sqrt(squared threshold); a hair above so "<= threshold" holds
        labels = DBSCAN(eps=np.sqrt(threshold) * (1 + 1e-6), min_samples=min_size).fit_predict(x)
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
        items = list(embeddings)
        if items and isinstance(items[0], Face):
            if any(f.embedding is None for f in items):
                raise ValueError("every Face must carry an embedding (use model.represent)")
            items = [f.embedding for f in items]
        x = np.asarray(items, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        if x.size == 0:
            return np.zeros((0, 1), np.float32)
        raise ValueError(f"embeddings must be an n x d array; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


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


# -- photos to folders --------------------------------------------------------------------------


@dataclass
class ClusterReport:
    out: Path
    clusters: int
    faces: int
    noise: int
    photos: int
    no_face: list[str]
    unreadable: list[str]

    def summary(self) -> str:
        return (
            f"{self.faces} faces from {self.photos} photos -> {self.clusters} clusters "
            f"({self.noise} unclustered); {len(self.no_face)} photos without a face, "
            f"{len(self.unreadable)} unreadable; wrote {self.out / 'index.html'}"
        )


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def find_photos(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, and the images inside directories (recursively, sorted)."""
    photos: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            photos.extend(
                sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        else:
            photos.append(path)
    return photos


def cluster_photos(
    model,
    photos: Sequence[ImageInput],
    out: str | os.PathLike,
    *,
    method: str = "agglomerative",
    threshold: float | None = None,
    min_size: int = 1,
    crop_size: int = 160,
    progress: bool = False,
) -> ClusterReport:
    """Embed every face of every photo, cluster them, and write `out/`: one folder of face
    crops per cluster (`cluster_000`, ... largest first; `noise/`), `clusters.json` and an
    `index.html` contact sheet (relative paths: the folder can be moved or zipped)."""
    check_choice("method", method, METHODS)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FaceNetError(f"{out}: output folder exists and is not empty")
    threshold = model.info.verification_threshold if threshold is None else threshold
    records, no_face, unreadable = [], [], []
    iterator = photos
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(photos, unit="photo", desc="embedding")
    for source in iterator:
        name = str(source)
        try:
            image = load_image(source)
            faces = model.represent(image)
        except ImageError as exc:
            unreadable.append(name)
            log.warning("%s", exc)
            continue
        if not faces:
            no_face.append(name)
        for number, face in enumerate(faces):
            records.append((name, number, face, _crop(image, face.box, crop_size)))
    labels = cluster(
        np.stack([r[2].embedding for r in records]) if records else np.zeros((0, 1)),
        threshold=threshold,
        method=method,
        min_size=min_size,
    )
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[int, list[dict]] = {}
    for (name, number, face, crop), label in zip(records, labels, strict=True):
        folder = "noise" if label == NOISE else f"cluster_{label:03d}"
        (out / folder).mkdir(exist_ok=True)
        crop_name = f"{folder}/{len(groups.get(int(label), [])):04d}_{_slug(name)}_{number}.jpg"
        from PIL import Image

        Image.fromarray(crop).save(out / crop_name, quality=90)
        groups.setdefault(int(label), []).append(
            {"photo": name, "face": number, "box": [round(float(v), 1) for v in face.box],
             "crop": crop_name}
        )  # fmt: skip
    summary = {
        "method": method,
        "threshold": threshold,
        "min_size": min_size,
        "model": {"name": getattr(model.info, "name", ""), "id": getattr(model, "model_id", "")},
        "clusters": [
            {"label": label, "size": len(items), "faces": items}
            for label, items in sorted(groups.items())
            if label != NOISE
        ],
        "noise": groups.get(NOISE, []),
        "no_face": no_face,
        "unreadable": unreadable,
    }
    (out / "clusters.json").write_text(json.dumps(summary, indent=1))
    (out / "index.html").write_text(_contact_sheet(summary))
    return ClusterReport(
        out=out,
        clusters=len(summary["clusters"]),
        faces=len(records),
        noise=len(summary["noise"]),
        photos=len(photos),
        no_face=no_face,
        unreadable=unreadable,
    )


def _crop(image: np.ndarray, box, size: int, margin: float = 0.2) -> np.ndarray:
    """The face box grown by `margin` on each side, made square, clipped, resized to <= size."""
    from PIL import Image

    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half = max(x2 - x1, y2 - y1) * (0.5 + margin)
    h, w = image.shape[:2]
    left, top = int(max(0, cx - half)), int(max(0, cy - half))
    right, bottom = int(min(w, cx + half)), int(min(h, cy + half))
    if right <= left or bottom <= top:
        left, top, right, bottom = 0, 0, w, h
    crop = Image.fromarray(image[top:bottom, left:right])
    crop.thumbnail((size, size))
    return np.asarray(crop)


def _slug(name: str) -> str:
    stem = Path(name).stem
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40] or "photo"


def _contact_sheet(summary: dict) -> str:
    def figure(item: dict) -> str:
        title = html.escape(f"{item['photo']} (face {item['face']})", quote=True)
        src = html.escape(item["crop"], quote=True)
        return f'<a href="{src}"><img src="{src}" title="{title}" alt="{title}" loading="lazy"></a>'

    sections = []
    for c in summary["clusters"]:
        figures = "".join(figure(i) for i in c["faces"])
        title = f"cluster {c['label']} <small>({c['size']} faces)</small>"
        sections.append(f"<h2>{title}</h2>\n<div>{figures}</div>")
    if summary["noise"]:
        figures = "".join(figure(i) for i in summary["noise"])
        title = f"unclustered <small>({len(summary['noise'])} faces)</small>"
        sections.append(f"<h2>{title}</h2>\n<div>{figures}</div>")
    if summary["no_face"]:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in summary["no_face"])
        sections.append(f"<h2>photos without a face</h2><ul>{items}</ul>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facenet clusters</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
img {{ width: 96px; height: 96px; object-fit: cover; margin: 2px; border-radius: 4px; }}
h2 small {{ color: #666; font-weight: normal; }}
</style></head><body>
<h1>{len(summary["clusters"])} clusters</h1>
<p>method {html.escape(summary["method"])}, threshold {summary["threshold"]:.3f},
model {html.escape(str(summary["model"]["name"]))}</p>
{chr(10).join(sections)}
</body></html>
"""

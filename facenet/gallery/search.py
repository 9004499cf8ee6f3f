"""Identification: who is in a photo, and the nearest people to ready embeddings (a mixin of
`Gallery`). Only the `Index` protocol is used, so any backend serves."""

from __future__ import annotations

import numpy as np

from ..errors import GalleryError
from ..images import ImageInput
from ..metadata import DEFAULT_K, check_k, check_threshold
from .results import UNKNOWN, IdentifiedFace, Match


class SearchMixin:
    """`identify` (photos) and `search` (embeddings)."""

    def identify(
        self, image: ImageInput, k: int = DEFAULT_K, threshold: float | None = None
    ) -> list[IdentifiedFace]:
        """Every face in the photo with its `k` nearest people (distinct, nearest face each) and
        a decision: the best match's name if its distance <= threshold, else "unknown"."""
        threshold = check_threshold(threshold, self.threshold)
        k = check_k(k)
        model = self._require_model()
        faces = model.represent(image)
        if not faces:
            return []
        matches = self.search(np.stack([f.embedding for f in faces]), k)
        out = []
        for face, found in zip(faces, matches, strict=True):
            best = found[0] if found else None
            known = best is not None and best.distance <= threshold
            out.append(
                IdentifiedFace(
                    face=face,
                    name=best.name if known else UNKNOWN,
                    distance=None if best is None else best.distance,
                    threshold=threshold,
                    matches=found,
                )
            )
        return out

    def search(
        self, embeddings: np.ndarray, k: int = DEFAULT_K, *, per_person: bool = True
    ) -> list[list[Match]]:
        """Nearest gallery matches of each embedding (one vector, or n x d), nearest first.

        per_person: k distinct people, each with their nearest face (default); else the k
        nearest faces, whoever they belong to.
        """
        k = check_k(k)
        try:
            queries = np.asarray(embeddings, dtype=np.float32)
        except (TypeError, ValueError):  # strings, ragged rows
            queries = np.zeros((0, 0), np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.embedding_size:
            raise GalleryError(
                f"embeddings of shape {tuple(np.shape(embeddings))} do not fit this gallery "
                f"({self.embedding_size}-d, model {self.model_name!r})"
            )
        if not np.all(np.isfinite(queries)):
            raise GalleryError("embeddings contain NaN or infinite values")
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        with self._lock:
            index = self.index
            total = len(index)
            fetch = k if not per_person else min(total, 4 * k + 16)
            while True:
                distances, ids = index.search(queries, fetch)
                names = self._store.names_for(sorted({int(i) for i in ids.ravel() if i >= 0}))
                results = [
                    _collect(d, i, names, k, per_person)
                    for d, i in zip(distances, ids, strict=True)
                ]
                short = any(len(r) < k for r in results)
                if not per_person or not short or fetch >= total:
                    return results
                fetch = min(total, fetch * 4)


def _collect(distances, ids, names, k: int, per_person: bool) -> list[Match]:
    out: list[Match] = []
    people: set[int] = set()
    for d, i in zip(distances, ids, strict=True):
        if i < 0 or int(i) not in names:
            continue  # faiss padding, or a face removed by another process
        person_id, name = names[int(i)]
        if per_person and person_id in people:
            continue
        people.add(person_id)
        out.append(Match(name, float(d), int(i), person_id))
        if len(out) == k:
            break
    return out

"""The gallery's FAISS index: a cache of the database's embeddings, keyed by face id.

Exact inner-product search (`IndexFlatIP`) up to `APPROXIMATE_ABOVE` faces, IVF-Flat above it
(inner product, nlist ~ sqrt(n), `NPROBE` lists probed). Both take face ids directly and
support removal, so the index follows the database without rebuilds; it is nonetheless only a
cache, rebuilt from SQLite whenever it is missing or disagrees with it (see `gallery.py`).

The size threshold and the IVF settings come from `benchmarks/gallery_search.py` (table in
docs/recognition.md; 128-d, one query at a time, one thread): exact search costs 0.07 ms at 10k
faces, 1.7 ms at 100k and 18 ms at 1M; IVF 0.4 ms at 100k and 4.3 ms at 1M with recall@1
0.99-1.0 against exact. Below ~200k faces exact search is a few milliseconds, far under the
cost of detecting and embedding the query photo, so the gallery stays exact and loses no recall.
Distances are squared L2 between unit vectors (0..4), computed as 2 - 2 * inner product.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

#: Galleries with more faces than this get an approximate (IVF) index; measured, see module doc.
APPROXIMATE_ABOVE = 200_000
#: IVF lists visited per query: at least NPROBE, and a fifth of the lists (recall@1 ~0.99 measured).
NPROBE = 16
PROBE_FRACTION = 5
#: An IVF index is retrained (rebuilt) once the gallery has grown this many times its training size.
RETRAIN_GROWTH = 4.0
KINDS = ("flat", "ivf", "hnsw")


def choose_kind(n: int) -> str:
    return "ivf" if n > APPROXIMATE_ABOVE else "flat"


def build_index(vectors: np.ndarray, ids: np.ndarray, kind: str | None = None) -> faiss.Index:
    """A FAISS index over unit `vectors` (n, d) float32 with int64 `ids`."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n, dim = vectors.shape
    kind = kind or choose_kind(n)
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    elif kind == "ivf":
        nlist = max(1, min(int(math.sqrt(max(n, 1))), n))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors
        if n > 64 * nlist:
            rng = np.random.default_rng(0)
            sample = vectors[np.sort(rng.choice(n, 64 * nlist, replace=False))]
        index.cp.min_points_per_centroid = 1  # small galleries: no warning, still valid
        index.train(sample)
        index.nprobe = min(nlist, max(NPROBE, nlist // PROBE_FRACTION))
    elif kind == "hnsw":  # benchmark comparison only: no removal, so the gallery does not use it
        index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT))
        faiss.downcast_index(index.index).hnsw.efSearch = 64
    else:
        raise ValueError(f"index kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if n:
        index.add_with_ids(vectors, ids)
    return index


def index_kind(index: faiss.Index) -> str:
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexIDMap2) or isinstance(inner, faiss.IndexIDMap):
        inner = faiss.downcast_index(inner.index)
    return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"


@dataclass
class IndexState:
    """What the index file reflects, written beside it and compared with the database on open."""

    model_id: str
    count: int
    id_sum: int
    max_id: int
    kind: str
    trained_on: int = 0

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> IndexState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


class FaceIndex:
    """A FAISS index of unit embeddings by face id, with squared-L2 search."""

    def __init__(self, index: faiss.Index, trained_on: int = 0):
        self.index = index
        self.trained_on = trained_on

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, dim: int) -> FaceIndex:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
        return cls(build_index(vectors, ids), trained_on=len(vectors))

    @property
    def kind(self) -> str:
        return index_kind(self.index)

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def needs_rebuild(self) -> bool:
        """True when the gallery has outgrown this kind of index (or an IVF's training)."""
        n = len(self)
        if self.kind != choose_kind(n):
            # hysteresis: an IVF gallery that shrank a little stays IVF
            return not (self.kind == "ivf" and n > APPROXIMATE_ABOVE // 2)
        return self.kind == "ivf" and n > RETRAIN_GROWTH * max(self.trained_on, 1)

    def add(self, vectors: np.ndarray, ids) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
            self.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids) -> None:
        if len(ids):
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids), each (nq, k'): squared L2, ascending; k' = min(k, len(self))."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k = min(k, len(self))
        if k <= 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        sims, ids = self.index.search(queries, k)
        return np.clip(2.0 - 2.0 * sims, 0.0, 4.0), ids

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, trained_on: int = 0) -> FaceIndex:
        return cls(faiss.read_index(str(path)), trained_on=trained_on)

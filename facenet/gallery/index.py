"""The gallery's search index: the `Index` protocol, its registry, and the FAISS backend.

An index is a cache of the database's embeddings, keyed by face id, that owns its persistence:
`sync` loads what it saved and checks it against the store (repairing or rebuilding it), `save`
writes it back. A new backend (e.g. Milvus) is one module with a class that satisfies `Index`
plus one line in `BACKENDS`; `Gallery.create(path, model, index="name")` then uses it.

The FAISS backend:

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

import importlib
import inspect
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import faiss
import numpy as np

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

#: Galleries with more faces than this get an approximate (IVF) index; measured, see module doc.
APPROXIMATE_ABOVE = 200_000
#: IVF lists visited per query: at least NPROBE, and a fifth of the lists (recall@1 ~0.99 measured).
NPROBE = 16
PROBE_FRACTION = 5
#: An IVF index is retrained (rebuilt) once the gallery has grown this many times its training size.
RETRAIN_GROWTH = 4.0
KINDS = ("flat", "ivf", "hnsw")


@runtime_checkable
class Index(Protocol):
    """What the gallery needs from a search index over unit embeddings keyed by face id.

    Why a protocol: the gallery (enrol, search, edit) never sees FAISS, so another backend is
    a drop-in. Distances are squared L2 between unit vectors (0..4), nearest first; ids < 0 pad
    rows with fewer than k hits. The store (`gallery.store.Store`) is the truth; the index is
    rebuilt from it whenever they disagree.
    """

    kind: str

    def __len__(self) -> int: ...

    def add(self, vectors: np.ndarray, ids) -> None:
        """Add unit vectors (n, d) under face ids (n,)."""

    def remove(self, ids) -> None:
        """Forget the given face ids (unknown ids are ignored)."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distances, ids), each (nq, min(k, len)), ascending distance."""

    def sync(self, store: Store, model_id: str) -> str:
        """Load the persisted index and verify it against `store` (faces of `model_id`),
        repairing or rebuilding it; return what was done ("loaded", "repaired (...)",
        "rebuilt (...)")."""

    def rebuild(self, store: Store, model_id: str) -> None:
        """Rebuild from every face of `model_id` in `store`."""

    def save(self, store: Store, model_id: str) -> None:
        """Persist the index (a no-op for an in-memory one), recording what it reflects."""


#: Index backends by name: a class (or factory) called with (gallery path, embedding size), or
#: "module:attribute" to import it only when used (a backend with a heavy client library).
BACKENDS: dict[str, Callable[[Path, int], Index] | str] = {
    "faiss": "facenet.gallery.index:FaissIndex",
    "milvus": "facenet.gallery.milvus_index:MilvusIndex",
}
DEFAULT_BACKEND = "faiss"


def open_index(backend: str, gallery_path: Path, dim: int, uri: str | None = None) -> Index:
    """The index named `backend` for the gallery at `gallery_path` (not yet synced); `uri`
    points a backend that has a server (Milvus) at it."""
    from ..errors import GalleryError

    factory = BACKENDS.get(backend)
    if factory is None:
        raise GalleryError(
            f"unknown index backend {backend!r}; choose one of {', '.join(sorted(BACKENDS))}"
        )
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attribute)
        except ImportError as exc:
            raise GalleryError(
                f"index backend {backend!r} needs {exc.name}: "
                f"pip install 'facenet-keras[{backend}]'"
            ) from None
    if not uri:
        return factory(Path(gallery_path), int(dim))
    if "uri" not in inspect.signature(factory).parameters:
        raise GalleryError(f"index backend {backend!r} takes no URI")
    return factory(Path(gallery_path), int(dim), uri=uri)


def stored_vectors(store: Store, model_id: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, dim) float32, ids (n,) int64) of every face of `model_id`, in id order: what
    a backend rebuilds from."""
    count = store.aggregate(model_id=model_id)[0]
    vectors = np.empty((count, dim), np.float32)
    ids = np.empty(count, np.int64)
    filled = 0
    for chunk_ids, chunk in store.embeddings(model_id=model_id):
        n = min(len(chunk_ids), count - filled)  # a concurrent writer may have added rows
        ids[filled : filled + n], vectors[filled : filled + n] = chunk_ids[:n], chunk[:n]
        filled += n
    return vectors[:filled], ids[:filled]


def choose_kind(n: int) -> str:
    """The FAISS index kind for a gallery of `n` faces (exact below `APPROXIMATE_ABOVE`)."""
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
    """Which kind of FAISS index `index` is: "flat", "ivf" or "hnsw"."""
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
        """Write the record atomically (a crash leaves the old one or the new one)."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> IndexState | None:
        """The record at `path`, or None when it is missing or unreadable."""
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
        """An index of the kind `choose_kind` picks for these vectors."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(-1, dim)
        return cls(build_index(vectors, ids), trained_on=len(vectors))

    @property
    def kind(self) -> str:
        """The FAISS kind: "flat", "ivf" or "hnsw"."""
        return index_kind(self.index)

    @property
    def dim(self) -> int:
        """The embedding size."""
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
        """Add unit vectors under face ids."""
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
            self.index.add_with_ids(vectors, np.asarray(ids, dtype=np.int64))

    def remove(self, ids) -> None:
        """Forget the given face ids."""
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
        """Write the FAISS file atomically."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, trained_on: int = 0) -> FaceIndex:
        """Read a FAISS file written by `save`."""
        return cls(faiss.read_index(str(path)), trained_on=trained_on)


class FaissIndex:
    """The default `Index`: a `FaceIndex` saved beside the gallery (`<gallery>.faiss`) with an
    `IndexState` record (`<gallery>.faiss.json`) of the faces it holds (count, sum and maximum
    of their ids), so that on open an index that is missing or disagrees with the database is
    repaired (faces added since it was saved) or rebuilt."""

    def __init__(self, gallery_path: Path, dim: int):
        self.path = gallery_path.with_name(gallery_path.name + ".faiss")
        self.state_path = gallery_path.with_name(gallery_path.name + ".faiss.json")
        self.dim = dim
        self.faces = FaceIndex.build(np.empty((0, dim), np.float32), np.empty(0, np.int64), dim)

    @property
    def kind(self) -> str:
        """The FAISS kind in use ("flat" or "ivf")."""
        return self.faces.kind

    def __len__(self) -> int:
        return len(self.faces)

    def add(self, vectors: np.ndarray, ids) -> None:
        """Add unit vectors under face ids."""
        self.faces.add(vectors, ids)

    def remove(self, ids) -> None:
        """Forget the given face ids."""
        self.faces.remove(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(squared-L2 distances, ids), nearest first."""
        return self.faces.search(queries, k)

    def sync(self, store: Store, model_id: str) -> str:
        """Load the saved index, repair or rebuild it against the store, save it if changed."""
        index, status = self._load_checked(store, model_id)
        if index is not None and len(index) != store.aggregate(model_id=model_id)[0]:
            index, status = None, "rebuilt (face count differs)"
        if index is not None and index.needs_rebuild():
            index, status = None, f"rebuilt ({len(index)} faces: index kind changes)"
        if index is None:
            self.rebuild(store, model_id)
        else:
            self.faces = index
        if status != "loaded":
            self.save(store, model_id)
        return status

    def _load_checked(self, store: Store, model_id: str) -> tuple[FaceIndex | None, str]:
        """The saved index if its record matches the store (plus faces added since), and why
        not otherwise."""
        state = IndexState.load(self.state_path)
        if state is None or not self.path.is_file():
            return None, "rebuilt (no index file)"
        if state.model_id != model_id:
            return None, "rebuilt (index of another model)"
        if (state.count, state.id_sum) != store.aggregate(up_to=state.max_id, model_id=model_id)[
            :2
        ]:
            return None, "rebuilt (stale index)"
        try:
            index = FaceIndex.load(self.path, trained_on=state.trained_on)
        except Exception as exc:  # a corrupt or truncated file is only a lost cache
            log.warning("%s: unreadable index (%s); rebuilding", self.path, exc)
            return None, "rebuilt (unreadable index)"
        if len(index) != state.count or index.dim != self.dim:
            return None, "rebuilt (index does not match its record)"
        added = 0
        for ids, vectors in store.embeddings(after=state.max_id, model_id=model_id):
            index.add(vectors, ids)
            added += len(ids)
        return index, "loaded" if added == 0 else f"repaired (+{added} faces)"

    def rebuild(self, store: Store, model_id: str) -> None:
        """Rebuild from the store (in memory; `save` writes it)."""
        vectors, ids = stored_vectors(store, model_id, self.dim)
        self.faces = FaceIndex.build(vectors, ids, self.dim)

    def save(self, store: Store, model_id: str) -> None:
        """Write the index and its record; rebuild first if it outgrew its kind or another
        process changed the gallery meanwhile."""
        if self.faces.needs_rebuild():
            self.rebuild(store, model_id)
        count, id_sum, max_id = store.aggregate(model_id=model_id)
        if len(self.faces) != count:
            self.rebuild(store, model_id)
            count, id_sum, max_id = store.aggregate(model_id=model_id)
        self.faces.save(self.path)
        state = IndexState(model_id, count, id_sum, max_id, self.kind, self.faces.trained_on)
        state.save(self.state_path)

"""The Milvus index backend: the gallery's embeddings in a Milvus collection (`pymilvus`).

Why Milvus: a gallery of millions of faces shared by several servers needs a search service,
not a file per process. The same class runs embedded (Milvus Lite, `milvus-lite`: a local
database beside the gallery, `<gallery>.milvus.db`, no server) and against a Milvus server or
cluster (`uri="http://host:19530"`; a `uri` ending in `.db` is another Milvus Lite
database), where the collection is named after the gallery file.

SQLite stays the source of truth: the collection is a cache keyed by face id, checked on open
against a record of what it held when last saved (`<gallery>.milvus.json`, the same
`IndexState` as FAISS) and repaired (faces added since) or rebuilt from the store otherwise.
Vectors are unit embeddings searched by inner product; distances are returned as the
gallery's squared L2 (2 - 2 * inner product).

Index type: on Milvus Lite the FAISS backend's size rule, so both answer alike: FLAT (exact) up
to `index.APPROXIMATE_ABOVE` (200k) faces, IVF_FLAT above (nlist 1024 per segment, a fifth of
the lists probed: recall@1 0.995 at 100k in benchmarks/gallery_search.py), the collection
rebuilt from SQLite when a gallery crosses the line. On a server, `SERVER_INDEX` (HNSW) at any
size: a server indexes sealed segments itself and searches small and unsealed ones by brute
force or its interim IVF index (`queryNode.segcore.interimIndex`).
`index_type=` fixes a type instead. Searches use Session consistency: this process sees its
own inserts at once and a server never waits for a newer time tick (Strong would); another
process's writes show up within the server's staleness bound. Milvus 2.3 servers return no
timestamp for a delete, so the search after a delete is Strong (one time tick, ~0.2 s).
Milvus Lite 3 (pure Python, an in-process gRPC server per database) builds FLAT itself
(NumPy) and HNSW, HNSW_SQ, IVF_FLAT and IVF_SQ8 through faiss-cpu, per segment, in a
background thread after each flush; its search latency grows with the collection (~0.7 ms per
thousand rows here: docs/deploy.md), so a large gallery wants a server
(`milvus_embedded.py` starts one on this machine for tests and benchmarks).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from ..errors import GalleryError
from . import index as faiss_rules  # the size rule, shared (and patched by tests) at run time
from .index import IndexState, stored_vectors

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

#: Rows per insert request (keeps each gRPC message well under Milvus's 64 MB limit).
INSERT_BATCH = 10_000
#: (build, search) parameters by index type, in Milvus's names. IVF: lists per segment
#: (Milvus Lite 3 segments hold up to 200k rows) and lists probed per search, a fifth as in
#: the FAISS backend (recall@1 >= 0.99 measured, benchmarks/gallery_search.py); HNSW: graph
#: degree, build beam and search beam. M 32 because a server ends up with one graph per ~1M
#: faces (its own compaction merges smaller segments; milvus_embedded.SERVER_CONFIG seals
#: them at that size at once): there M 16 found the nearest face for 0.890 of queries at
#: ef 256 (0.973 at ef 512), M 32 for 0.993 at ef 256, p50 3.2 ms (docs/deploy.md).
#: SCANN (a fixed `index_type` only): one query alone is not faster than HNSW on a server
#: (docs/deploy.md), batches are. Other types get the server's defaults.
INDEX_PARAMS: dict[str, tuple[dict, dict]] = {
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 205}),
    "HNSW": ({"M": 32, "efConstruction": 200}, {"ef": 256}),
    "SCANN": ({"nlist": 1024, "with_raw_data": True}, {"nprobe": 205, "reorder_k": 50}),
}


#: A server's index at any gallery size: HNSW searches 1M faces in a few milliseconds at
#: recall@1 >= 0.99 (benchmarks/gallery_search.py, docs/deploy.md) and, unlike IVF, needs no
#: retraining as the gallery grows; a small collection's segments are searched exactly anyway
#: (a server indexes only sealed segments of 1024 rows or more).
SERVER_INDEX = "HNSW"


def index_params(index_type: str) -> tuple[dict, dict]:
    """(build, search) parameters for a Milvus index type (none for FLAT)."""
    build, search = INDEX_PARAMS.get(index_type.upper(), ({}, {}))
    return dict(build), dict(search)


def collection_name(gallery_path: Path, server: bool = False) -> str:
    """A Milvus collection name for the gallery at `gallery_path` (letters, digits, _). On a
    server, shared by many galleries, a digest of the gallery's absolute path keeps two
    `faces.db` apart (a Milvus Lite database belongs to one gallery: the stem alone)."""
    name = "facenet_" + re.sub(r"\W", "_", gallery_path.stem)
    if server:
        name += "_" + hashlib.sha1(str(gallery_path.resolve()).encode()).hexdigest()[:10]
    return name


class MilvusIndex:
    """An `Index` in a Milvus collection: Milvus Lite in `<gallery>.milvus.db` by default, or
    the server at `uri`. Writes go straight to Milvus; `save` records what it reflects."""

    def __init__(
        self, gallery_path: Path, dim: int, uri: str | None = None, index_type: str | None = None
    ):
        #: Milvus Lite (a local `.db` database) rather than a server.
        self.local = not uri or uri.endswith(".db")
        self.uri = uri or str(gallery_path.with_name(gallery_path.name + ".milvus.db"))
        #: The Milvus Lite database (a folder), or None for a server.
        self.path: Path | None = Path(self.uri) if self.local else None
        self.state_path = gallery_path.with_name(gallery_path.name + ".milvus.json")
        self.collection = collection_name(gallery_path, server=not self.local)
        self.dim = dim
        #: A fixed Milvus index type, or None for the size rule (`choose_index_type`).
        self.index_type = index_type.upper() if index_type else None
        #: The collection's index type, lower case ("flat", "ivf_flat", ...).
        self.kind = (self.index_type or "FLAT").lower()
        self.build_params, self.search_params = index_params(self.kind)
        self._client: MilvusClient | None = None
        #: Whether the collection exists, as last seen (saves a round trip per call).
        self._present: bool | None = None
        #: A delete not yet seen by a search: Milvus 2.3 servers return no timestamp for a
        #: delete, so Session consistency cannot wait for it; the next search is Strong.
        self._unseen_delete = False

    @property
    def client(self) -> MilvusClient:
        """The connection (Milvus Lite starts its local server on first use)."""
        if self._client is None:
            try:
                self._client = MilvusClient(self.uri)
            except MilvusException as exc:  # a server down or a wrong URI: one line, no trace
                raise GalleryError(f"{self.uri}: cannot reach Milvus ({exc.message})") from None
        return self._client

    def close(self) -> None:
        """Release the connection, and stop Milvus Lite's in-process server for this database
        (it outlives its clients otherwise) so the folder can be copied, moved or removed."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._present = None
            if self.local:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)

    @property
    def present(self) -> bool:
        """Whether the collection exists (asked once per connection, then tracked)."""
        if self._present is None:
            self._present = bool(self.client.has_collection(self.collection))
        return self._present

    def __len__(self) -> int:
        if not self.present:
            return 0
        rows = self.client.query(
            self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        return int(rows[0]["count(*)"])

    def add(self, vectors: np.ndarray, ids) -> None:
        """Insert unit vectors under face ids."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        if not self.present:
            self._create(len(ids))
        for start in range(0, len(ids), INSERT_BATCH):
            end = start + INSERT_BATCH
            rows = [
                {"id": int(i), "vector": v}
                for i, v in zip(ids[start:end], vectors[start:end], strict=True)
            ]
            self.client.insert(self.collection, rows)

    def remove(self, ids) -> None:
        """Delete the given face ids (unknown ids are ignored)."""
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        if ids and self.present:
            self.client.delete(self.collection, ids=ids)
            self._unseen_delete = not self.local

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(squared-L2 distances, ids), each (nq, min(k, len)), nearest first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        hits = []
        if k > 0 and len(queries) and self.present:
            params = dict(self.search_params)
            if "ef" in params:
                params["ef"] = max(params["ef"], k)  # HNSW refuses a beam narrower than k
            hits = self.client.search(
                self.collection,
                data=list(queries),
                limit=k,
                output_fields=[],
                search_params={"metric_type": "IP", "params": params},
                # Session: sees this process's writes and waits for no other's
                consistency_level="Strong" if self._unseen_delete else "Session",
            )
            self._unseen_delete = False
        width = max((len(row) for row in hits), default=0)  # min(k, len) without counting
        distances = np.full((len(queries), width), 4.0, np.float32)
        found = np.full((len(queries), width), -1, np.int64)
        for row, row_hits in enumerate(hits):
            for col, hit in enumerate(row_hits):
                distances[row, col] = 2.0 - 2.0 * float(hit["distance"])
                found[row, col] = int(hit["id"])
        return np.clip(distances, 0.0, 4.0), found

    def sync(self, store: Store, model_id: str) -> str:
        """Check the collection against its record and the store; repair or rebuild it."""
        status = self._check(store, model_id)
        if status.startswith("rebuilt"):
            self.rebuild(store, model_id)
        if status != "loaded":
            self.save(store, model_id)
        return status

    def _check(self, store: Store, model_id: str) -> str:
        """Add faces stored since the last save; say why the collection must be rebuilt when
        it disagrees with its record or the store."""
        state = IndexState.load(self.state_path)
        try:
            present = self.present
        except Exception as exc:  # a damaged Milvus Lite folder is only a lost cache
            if not self.local:
                raise  # a server unreachable: the caller's error, nothing to rebuild
            log.warning("%s: unreadable index (%s); rebuilding", self.uri, exc)
            self._discard_local()
            return "rebuilt (unreadable index)"
        if state is None or not present:
            return "rebuilt (no index file)"
        self.client.load_collection(self.collection)  # a reopened database starts released
        self._set_kind(state.kind)
        if state.model_id != model_id:
            return "rebuilt (index of another model)"
        if (state.count, state.id_sum) != store.aggregate(up_to=state.max_id, model_id=model_id)[
            :2
        ]:
            return "rebuilt (stale index)"
        if len(self) != state.count:
            return "rebuilt (index does not match its record)"
        added = 0
        for ids, vectors in store.embeddings(after=state.max_id, model_id=model_id):
            self.add(vectors, ids)
            added += len(ids)
        count = store.aggregate(model_id=model_id)[0]
        if len(self) != count:
            return "rebuilt (face count differs)"
        if self.needs_rebuild(count):
            return f"rebuilt ({count} faces: index kind changes)"
        return "loaded" if added == 0 else f"repaired (+{added} faces)"

    def _discard_local(self) -> None:
        """Remove an unreadable Milvus Lite database (never anything on a server)."""
        self.close()
        if self.local and self.path is not None:
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink(missing_ok=True)

    def choose_index_type(self, n: int) -> str:
        """The index type for `n` faces: the fixed one; on a server `SERVER_INDEX` (HNSW) at
        any size; on Milvus Lite the FAISS backend's size rule (exact FLAT up to
        `APPROXIMATE_ABOVE` faces, IVF_FLAT above)."""
        if self.index_type:
            return self.index_type
        if not self.local:
            return SERVER_INDEX
        return {"flat": "FLAT", "ivf": "IVF_FLAT"}[faiss_rules.choose_kind(n)]

    def needs_rebuild(self, n: int) -> bool:
        """True when a gallery of `n` faces has outgrown (or shrunk well below) its index type;
        IVF galleries stay IVF down to half the threshold, as in the FAISS backend."""
        wanted = self.choose_index_type(n).lower()
        if wanted == self.kind:
            return False
        return not (self.kind == "ivf_flat" and n > faiss_rules.APPROXIMATE_ABOVE // 2)

    def _set_kind(self, kind: str) -> None:
        self.kind = kind.lower()
        self.build_params, self.search_params = index_params(self.kind)

    def _create(self, n: int) -> None:
        """Create the collection for about `n` faces: int64 face id, float vector, an
        inner-product index of the type `choose_index_type(n)`."""
        self._set_kind(self.choose_index_type(n))
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        params = self.client.prepare_index_params()
        # nested under "params": Milvus Lite 3 reads only that key, a server reads both forms
        params.add_index(
            "vector", index_type=self.kind.upper(), metric_type="IP",
            params={"params": self.build_params} if self.build_params else {},
        )  # fmt: skip
        self.client.create_collection(self.collection, schema=schema, index_params=params)
        self._present = True

    def rebuild(self, store: Store, model_id: str) -> None:
        """Drop the collection and insert every face of `model_id` from the store."""
        if self.present:
            self.client.drop_collection(self.collection)
            self._present = False
        vectors, ids = stored_vectors(store, model_id, self.dim)
        self._create(len(ids))
        if len(ids):
            self.add(vectors, ids)
        self._flush()
        if not self.local and len(ids):  # seal the bulk load: the server indexes it now
            self.client.flush(self.collection)

    def _flush(self) -> None:
        """Flush Milvus Lite (unflushed rows are searched ~10x slower there). A server is not
        flushed: its log already holds every write, and it seals and indexes segments itself
        (by size, or after `dataCoord.segment.maxIdleTime`); a flush per save would cost
        seconds and leave many small segments. Only `rebuild` flushes a server, once: rows
        left unsealed would be searched without their HNSW index until the segment idles
        out (10 minutes), and with segments sealed at 1M faces (milvus_embedded.SERVER_CONFIG)
        a whole rebuilt gallery would be."""
        if self.local and self.present:
            self.client.flush(self.collection)

    def save(self, store: Store, model_id: str) -> None:
        """Flush Milvus Lite and record what the collection holds; rebuild first if another
        process changed the gallery meanwhile."""
        count, id_sum, max_id = store.aggregate(model_id=model_id)
        if len(self) != count or self.needs_rebuild(count):
            self.rebuild(store, model_id)
            count, id_sum, max_id = store.aggregate(model_id=model_id)
        elif self.present:
            self._flush()
        IndexState(model_id, count, id_sum, max_id, self.kind).save(self.state_path)

"""The Milvus index backend on its own (Milvus Lite): the index type rule, index parameters
reaching Milvus, and a process seeing its own writes at once under Session consistency.
The gallery behaviour on both backends is in test_gallery.py (parametrised)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the milvus backend needs facenet[milvus]")

from facenet.gallery import index as index_module  # noqa: E402
from facenet.gallery.milvus_index import MilvusIndex  # noqa: E402


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def milvus(tmp_path):
    index = MilvusIndex(tmp_path / "g.db", 16, index_type="IVF_FLAT")
    yield index
    index.close()


def test_index_type_follows_gallery_size_unless_fixed(tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "APPROXIMATE_ABOVE", 100)
    auto = MilvusIndex(tmp_path / "a.db", 16)
    assert auto.choose_index_type(100) == "FLAT" and auto.choose_index_type(101) == "IVF_FLAT"
    assert auto.kind == "flat" and not auto.needs_rebuild(100) and auto.needs_rebuild(101)
    auto._set_kind("ivf_flat")  # an IVF collection stays IVF down to half the threshold
    assert not auto.needs_rebuild(51) and auto.needs_rebuild(50)
    fixed = MilvusIndex(tmp_path / "f.db", 16, index_type="hnsw")
    assert fixed.choose_index_type(10) == fixed.choose_index_type(10**6) == "HNSW"
    assert fixed.search_params == {"ef": 64} and not fixed.needs_rebuild(10**6)


def test_ivf_parameters_reach_milvus(milvus):
    vectors = unit_vectors(300, 16, seed=0)
    milvus.add(vectors, np.arange(1, 301))
    described = milvus.client.describe_index(milvus.collection, "vector")
    build = described.get("params", described)  # Lite 3 nests them, Milvus 2.x flattens them
    assert described["index_type"] == "IVF_FLAT" and str(build["nlist"]) == "1024"
    milvus.client.flush(milvus.collection)
    _, ids = milvus.search(vectors, 1)  # nlist is cut to the rows, nprobe covers them: exact
    assert ids[:, 0].tolist() == list(range(1, 301))


def test_reads_its_own_writes_and_deletes_at_once(milvus):
    """Session consistency: no flush and no wait between a write and the search that must
    see it (a server would otherwise answer from before the write, or wait for a time tick)."""
    vectors = unit_vectors(40, 16, seed=1)
    milvus.add(vectors[:20], np.arange(20))
    milvus.client.flush(milvus.collection)
    for i in range(20, 40):
        milvus.add(vectors[i : i + 1], [i])
        assert milvus.search(vectors[i : i + 1], 1)[1][0, 0] == i
    milvus.remove([25, 30])
    _, ids = milvus.search(vectors[[25, 30]], 3)
    assert not {25, 30} & set(ids.ravel().tolist())
    assert len(milvus) == 38

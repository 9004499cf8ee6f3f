"""The Milvus index backend on its own, on Milvus Lite and on a Milvus server (the session's,
tests/conftest.py): the index type rule, index parameters reaching Milvus, and a process
seeing its own writes and deletes at once. The gallery behaviour on every backend is in
test_gallery.py (parametrised)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the milvus backend needs facenet-keras[milvus]")

from facenet.gallery import index as index_module  # noqa: E402
from facenet.gallery import milvus_index  # noqa: E402
from facenet.gallery.milvus_index import INDEX_PARAMS, MilvusIndex  # noqa: E402


def unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=["lite", "server"])
def uri(request) -> str | None:
    """None for Milvus Lite, else the session's server."""
    return request.getfixturevalue("milvus_server_uri") if request.param == "server" else None


@pytest.fixture
def milvus(tmp_path, uri):
    index = MilvusIndex(tmp_path / "g.db", 16, uri=uri, index_type="IVF_FLAT")
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
    assert fixed.search_params == {"ef": 256} and not fixed.needs_rebuild(10**6)
    server = MilvusIndex(tmp_path / "s.db", 16, uri="http://localhost:19530")
    assert server.choose_index_type(10) == server.choose_index_type(10**6) == "HNSW"


def test_server_collections_are_one_per_gallery(tmp_path):
    """Galleries of one file name in two folders share a server, not a collection; Milvus
    Lite keeps the plain name (one database per gallery)."""
    a, b = tmp_path / "a" / "faces.db", tmp_path / "b" / "faces.db"
    names = [MilvusIndex(p, 16, uri="http://localhost:19530").collection for p in (a, b)]
    assert names[0] != names[1] and all(n.startswith("facenet_faces_") for n in names)
    assert MilvusIndex(a, 16).collection == "facenet_faces"


def test_server_default_is_hnsw_and_searches_exactly_small(tmp_path, milvus_server_uri):
    """The default index on a server is HNSW with the module's parameters; a small gallery
    (unsealed, unindexed rows) is searched exactly, the beam widened to k when k > ef."""
    index = MilvusIndex(tmp_path / "h.db", 16, uri=milvus_server_uri)
    vectors = unit_vectors(200, 16, seed=2)
    index.add(vectors, np.arange(200))
    described = index.client.describe_index(index.collection, "vector")
    build = described.get("params", described)
    assert described["index_type"] == "HNSW" and index.kind == "hnsw"
    expected = INDEX_PARAMS["HNSW"][0]
    for key in ("M", "efConstruction"):
        assert str(build[key]) == str(expected[key])
    _, ids = index.search(vectors, 1)
    assert ids[:, 0].tolist() == list(range(200))
    _, wide = index.search(vectors[:2], 300)  # k above ef
    assert wide.shape == (2, 200) and (wide >= 0).all()
    index.client.drop_collection(index.collection)
    index.close()


def test_server_rebuild_seals_its_rows(tmp_path, milvus_server_uri, monkeypatch):
    """A rebuild on a server flushes once, so the server seals and indexes the bulk load now
    rather than searching it unindexed until the segment idles out (10 minutes)."""
    vectors = unit_vectors(2000, 16, seed=3)
    monkeypatch.setattr(milvus_index, "stored_vectors", lambda *_: (vectors, np.arange(2000)))
    index = MilvusIndex(tmp_path / "r.db", 16, uri=milvus_server_uri)
    index.rebuild(store=None, model_id="m")
    handler = index.client._get_connection()
    segments = handler.get_persistent_segment_infos(index.collection)
    assert sum(s.num_rows for s in segments) == 2000
    assert {s.state for s in segments} <= {3, 4, 5}  # Sealed, Flushed, Flushing: none Growing
    index.client.drop_collection(index.collection)
    index.close()


def test_embedded_server_settings(tmp_path):
    """Every embedded server gets SERVER_CONFIG in its milvus.yaml; a caller's settings win."""
    pytest.importorskip("milvus", reason="needs facenet-keras[milvus-server]")
    from facenet.gallery.milvus_embedded import SERVER_CONFIG, EmbeddedMilvus

    server = EmbeddedMilvus(tmp_path, **{"dataCoord.segment.sealProportion": 0.3})
    server._server.config.write_config()  # what start() writes, without starting
    text = (tmp_path / "configs" / "milvus.yaml").read_text()
    segment = text[text.index("\ndataCoord:") :].split("\n  segment:", 1)[1]
    assert f"maxSize: {SERVER_CONFIG['dataCoord.segment.maxSize']}" in segment.split("\n")[1]
    assert "sealProportion: 0.3" in segment
    assert server.env == {"QUERYNODE_GCHELPER_MAXIMUMGOGC": "1000"}  # the GC tuner's ceiling


def test_embedded_server_settings_outside_the_template_go_to_its_environment(tmp_path):
    """The package rewrites only the milvus.yaml keys its template has; any other setting
    reaches the server as its environment variable, not silently nowhere."""
    pytest.importorskip("milvus", reason="needs facenet-keras[milvus-server]")
    from facenet.gallery.milvus_embedded import EmbeddedMilvus

    settings = {"queryNode.gchelper.maximumGoGC": 400, "proxy.timeTickInterval": 50}
    server = EmbeddedMilvus(tmp_path, env={"GOMEMLIMIT": "1GiB"}, **settings)
    assert server.env == {"QUERYNODE_GCHELPER_MAXIMUMGOGC": "400", "GOMEMLIMIT": "1GiB"}
    server._server.config.write_config()
    text = (tmp_path / "configs" / "milvus.yaml").read_text()
    assert "timeTickInterval: 50" in text and "gchelper" not in text


def test_embedded_server_starts_on_its_cpus_with_its_environment(tmp_path, monkeypatch):
    """The server process inherits `cpus` and `env` at its fork; this process keeps its own."""
    pytest.importorskip("milvus", reason="needs facenet-keras[milvus-server]")
    from facenet.gallery.milvus_embedded import EmbeddedMilvus

    mine, cpu = os.sched_getaffinity(0), min(os.sched_getaffinity(0))
    server = EmbeddedMilvus(tmp_path, cpus={cpu}, env={"FACENET_TEST_VAR": "1"})
    seen = {}
    monkeypatch.setattr(server._server, "start", lambda: seen.update(
        cpus=os.sched_getaffinity(0), var=os.environ.get("FACENET_TEST_VAR")))  # fmt: skip
    server._launch()
    assert seen == {"cpus": {cpu}, "var": "1"}
    assert os.sched_getaffinity(0) == mine and "FACENET_TEST_VAR" not in os.environ


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


def test_embedded_server_command_usage():
    from facenet.gallery.milvus_embedded import main

    assert main([]) == 2 and main(["a", "b"]) == 2 and main(["--data"]) == 2
    assert main(["--help"]) == 0 and main(["-h"]) == 0  # the usage, no server in `--help/`

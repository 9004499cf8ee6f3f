"""The seams a newcomer extends in one file (issue 16): a toy index backend and a toy backbone,
each added through its registry only, then used end to end: embed -> enroll -> identify."""

from __future__ import annotations

import numpy as np
import pytest

from facenet.gallery import Gallery
from facenet.gallery import index as index_module

from .conftest import lfw_image


class MemoryIndex:
    """An exact in-memory index (a dict of face id -> vector): the whole `Index` protocol."""

    kind = "memory"

    def __init__(self, gallery_path, dim: int):
        self.dim = dim
        self.vectors: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.vectors)

    def add(self, vectors, ids) -> None:
        for i, v in zip(
            ids, np.asarray(vectors, np.float32).reshape(len(ids), self.dim), strict=True
        ):
            self.vectors[int(i)] = v

    def remove(self, ids) -> None:
        for i in ids:
            self.vectors.pop(int(i), None)

    def search(self, queries, k):
        ids = np.array(sorted(self.vectors), np.int64)
        k = min(k, len(ids))
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        if k == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        table = np.stack([self.vectors[int(i)] for i in ids])
        distances = ((queries[:, None, :] - table[None]) ** 2).sum(-1)
        order = np.argsort(distances, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(distances, order, 1), ids[order]

    def sync(self, store, model_id) -> str:
        self.rebuild(store, model_id)
        return "rebuilt (in memory)"

    def rebuild(self, store, model_id) -> None:
        vectors, ids = index_module.stored_vectors(store, model_id, self.dim)
        self.vectors = {}
        self.add(vectors, ids)

    def save(self, store, model_id) -> None:
        pass


PEOPLE = [("Aaron_Eckhart", 1), ("AJ_Cook", 1), ("Abdullah_Gul", 1)]


def enrol_and_identify(model, tmp_path, **gallery_options):
    photos = {name: lfw_image(name, i) for name, i in PEOPLE}
    with Gallery.create(tmp_path / "g.db", model, **gallery_options) as gallery:
        for name, photo in photos.items():
            assert gallery.enroll(name, [photo]).summary().startswith("enrolled 1 face")
        for name, photo in photos.items():
            found = gallery.identify(photo)
            assert found and found[0].name == name, (name, found)
        return gallery.index


def test_toy_index_backend_through_the_registry(tmp_path, small_model, monkeypatch):
    monkeypatch.setitem(index_module.BACKENDS, "memory", MemoryIndex)
    index = enrol_and_identify(small_model, tmp_path, index="memory")
    assert isinstance(index, MemoryIndex) and isinstance(index, index_module.Index)
    assert len(index) == len(PEOPLE)
    with Gallery.open(tmp_path / "g.db", small_model) as gallery:  # the gallery records it
        assert gallery.index_backend == "memory" and gallery.index_status == "rebuilt (in memory)"
        assert gallery.identify(lfw_image(*PEOPLE[1]))[0].name == PEOPLE[1][0]


def test_unknown_index_backend_is_a_gallery_error(tmp_path, small_model):
    from facenet.errors import GalleryError

    with pytest.raises(GalleryError, match="unknown index backend 'nope'"):
        Gallery.create(tmp_path / "g.db", small_model, index="nope")

"""Gallery: enrolment, identification, editing, persistence; a fake model where faces don't matter.

The fake model "detects" vertical stripes of one non-black colour as faces (box = the stripe)
and embeds a stripe from its colour: red = person, green = photo variant. Two photos of one
person are ~0.1 apart, two people ~2: a deterministic stand-in for a trained network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet.errors import GalleryError
from facenet.gallery import UNKNOWN, Gallery
from facenet.images import load_image
from facenet.metadata import ModelInfo
from facenet.types import Face

DIM = 32


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def fake_embedding(person: int, variant: int, dim: int = DIM) -> np.ndarray:
    base = np.random.default_rng(1000 + person).standard_normal(dim)
    noise = np.random.default_rng(10_000 + 97 * person + variant).standard_normal(dim)
    return _unit(_unit(base) + 0.2 * _unit(noise))


class FakeModel:
    """Same surface as facenet.FaceNet for the gallery: info, model_id, represent."""

    def __init__(self, name: str = "fake", dim: int = DIM, delay: float = 0.0):
        self.info = ModelInfo(embedding_size=dim, name=name, threshold=0.8)
        self.model_id = hashlib.sha256(f"{name}-{dim}".encode()).hexdigest()[:16]
        self.source = None
        self.name = None  # FaceNet.name: the catalog name it was loaded by
        self.delay = delay
        self.calls = 0

    def represent(self, image) -> list[Face]:
        if self.delay:
            import time

            time.sleep(self.delay)
        self.calls += 1
        rgb = load_image(image)
        row = rgb[rgb.shape[0] // 2].astype(int)
        faces, x = [], 0
        while x < len(row):
            end = x
            while end < len(row) and (row[end] == row[x]).all():
                end += 1
            if row[x].any() and end - x >= 4:
                person, variant = int(row[x][0]) // 10, int(row[x][1]) // 10
                faces.append(
                    Face(
                        box=(float(x), 0.0, float(end), float(rgb.shape[0])),
                        score=0.99,
                        landmarks=None,
                        embedding=fake_embedding(person, variant, self.info.embedding_size),
                    )
                )
            x = end
        return faces

    def embed(self, images, **_) -> np.ndarray:
        return np.stack([self.represent(i)[0].embedding for i in images])


def photo(*stripes: tuple[int, int, int], height: int = 48) -> np.ndarray:
    """A photo of faces: each stripe is (person, variant, width); gaps are black."""
    parts = []
    for person, variant, width in stripes:
        parts.append(np.zeros((height, 6, 3), np.uint8))
        parts.append(np.full((height, width, 3), (person * 10, variant * 10, 200), np.uint8))
    parts.append(np.zeros((height, 6, 3), np.uint8))
    return np.concatenate(parts, axis=1)


def save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)  # PNG: lossless, so colours (identities) survive
    return path


def make_tree(root: Path, people: int, photos: int) -> Path:
    for p in range(1, people + 1):
        for v in range(photos):
            save(root / f"person_{p:02d}" / f"{v:03d}.png", photo((p, v, 30)))
    return root


@pytest.fixture
def model():
    return FakeModel()


@pytest.fixture(params=["faiss", "milvus", "milvus-server"])
def backend(request) -> dict:
    """`Gallery.create` keywords for the index backend: each gallery test runs on FAISS, on
    Milvus Lite and on a Milvus server (one per session, each gallery its own collection)."""
    if request.param == "faiss":
        return {"index": "faiss"}
    pytest.importorskip("pymilvus", reason="the milvus backend needs facenet-keras[milvus]")
    if request.param == "milvus":
        return {"index": "milvus"}
    return {"index": "milvus", "uri": request.getfixturevalue("milvus_server_uri")}


def on_server(backend: dict) -> bool:
    return "uri" in backend


@pytest.fixture
def gallery(tmp_path, model, backend):
    with Gallery.create(tmp_path / "g.db", model, **backend) as g:
        yield g


def snapshot(path: Path) -> Path:
    """A copy of an index file (FAISS) or folder (Milvus Lite) beside it."""
    copy = path.with_name(path.name + ".copy")
    shutil.rmtree(copy, ignore_errors=True)
    (shutil.copytree if path.is_dir() else shutil.copyfile)(path, copy)
    return copy


def restore(copy: Path, path: Path) -> None:
    """Put a `snapshot` back in place of the index."""
    discard(path)
    (shutil.copytree if copy.is_dir() else shutil.copyfile)(copy, path)


def discard(path: Path) -> None:
    """Delete an index file or folder."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def assert_index_matches_db(g: Gallery) -> None:
    records = g.faces()
    assert len(g.index) == len(records) == len(g)
    if records:
        found = g.search(np.stack([r.embedding for r in records]), k=1, per_person=False)
        assert [m[0].face_id for m in found] == [r.id for r in records]


# -- enrolment and identification -------------------------------------------------------


def test_enroll_and_identify_known_and_unknown(gallery, tmp_path):
    report = gallery.enroll("Ada", [photo((1, 0, 30)), photo((1, 1, 30))], metadata={"team": "x"})
    assert report.summary() == "enrolled 2 faces of 1 person; skipped 0 photos"
    gallery.enroll("Bob", save(tmp_path / "bob.png", photo((2, 0, 30))))
    assert [(p.name, p.faces, p.metadata) for p in gallery.people()] == [
        ("Ada", 2, {"team": "x"}),
        ("Bob", 1, {}),
    ]
    assert len(gallery) == 3

    (ada,) = gallery.identify(photo((1, 5, 30)))
    assert ada.name == "Ada" and ada.known and ada.distance < 0.3
    assert [m.name for m in ada.matches] == ["Ada", "Bob"]  # distinct people, nearest first
    assert ada.matches[1].distance > gallery.threshold

    (stranger,) = gallery.identify(photo((9, 0, 30)))
    assert stranger.name == UNKNOWN and not stranger.known
    assert stranger.matches[0].distance > gallery.threshold
    assert json.dumps(stranger.to_dict())

    # every face of a group photo, left to right
    names = [f.name for f in gallery.identify(photo((2, 3, 20), (9, 0, 20), (1, 2, 20)))]
    assert names == ["Bob", UNKNOWN, "Ada"]
    assert gallery.identify(np.zeros((40, 40, 3), np.uint8)) == []


def test_identify_k_and_search_per_face(gallery):
    for person in range(1, 5):
        gallery.enroll(f"p{person}", [photo((person, v, 30)) for v in range(3)])
    (face,) = gallery.identify(photo((3, 7, 30)), k=2)
    assert face.matches[0].name == "p3" and len(face.matches) == 2
    raw = gallery.search(fake_embedding(3, 7), k=3, per_person=False)[0]
    assert [m.name for m in raw] == ["p3", "p3", "p3"]
    with pytest.raises(GalleryError, match="do not fit"):
        gallery.search(np.ones(DIM + 1), k=1)


def test_identify_on_empty_gallery_is_unknown(gallery):
    (face,) = gallery.identify(photo((1, 0, 30)))
    assert face.name == UNKNOWN and face.distance is None and face.matches == []


def test_duplicates_no_face_and_unreadable_are_skipped(gallery, tmp_path):
    first = save(tmp_path / "a.png", photo((1, 0, 30)))
    copy = tmp_path / "copy.png"
    copy.write_bytes(first.read_bytes())
    blank = save(tmp_path / "blank.png", np.zeros((30, 30, 3), np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    report = gallery.enroll("Ada", [first, copy, blank, broken, tmp_path / "missing.png"])
    assert [e.source for e in report.enrolled] == [str(first)]
    reasons = {Path(s.source).name: s.reason for s in report.skipped}
    assert reasons["copy.png"].startswith("duplicate")
    assert reasons["blank.png"] == "no face found"
    assert reasons["broken.jpg"].startswith("unreadable")
    assert reasons["missing.png"].startswith("unreadable")
    again = gallery.enroll("Someone else", [first])
    assert again.enrolled == [] and "as Ada" in again.skipped[0].reason
    assert [p.name for p in gallery.people()] == ["Ada"]  # nobody created for nothing


def test_photo_with_several_faces_enrols_the_most_prominent(gallery):
    report = gallery.enroll("Ada", [photo((2, 0, 12), (1, 0, 40), (3, 0, 12))])
    (enrolled,) = report.enrolled
    assert enrolled.faces_in_photo == 3
    assert report.notes == ["array #0: 3 faces found; enrolled the most prominent one"]
    (record,) = gallery.faces("Ada")
    assert record.box[2] - record.box[0] == 40
    np.testing.assert_allclose(record.embedding, fake_embedding(1, 0), atol=1e-6)


def test_enroll_folder_resumes_and_skips_known_files(tmp_path, model, backend):
    root = make_tree(tmp_path / "people", people=3, photos=4)
    save(root / "person_01" / "empty.png", np.zeros((20, 20, 3), np.uint8))
    (root / "person_01" / "notes.txt").write_text("ignored: not an image")
    (root / "loose.png").write_bytes((root / "person_02" / "000.png").read_bytes())
    with Gallery.create(tmp_path / "g.db", model, **backend) as g:
        report = g.enroll_folder(root, progress=False, batch_size=5)
        assert len(report.enrolled) == 12
        assert [(Path(s.source).name, s.reason[:30]) for s in report.skipped] == [
            ("empty.png", "no face found"),
            ("loose.png", "directly in the root folder: o"),  # no one's: reported, not enrolled
        ]
        assert {p.name: p.faces for p in g.people()} == {f"person_0{i}": 4 for i in (1, 2, 3)}
        calls = model.calls
        again = g.enroll_folder(root, progress=False)
        assert again.enrolled == [] and len(again.skipped) == 14
        assert model.calls == calls + 1  # only the face-less file is looked at again
    with pytest.raises(GalleryError, match="not a directory"):
        Gallery.open(tmp_path / "g.db", model).enroll_folder(tmp_path / "nowhere")


# -- editing ------------------------------------------------------------------------------


def test_rename_merge_and_remove(gallery):
    gallery.enroll("Ada", [photo((1, v, 30)) for v in range(2)], metadata={"a": 1, "k": "ada"})
    gallery.enroll("Ada L.", [photo((1, 5, 30))], metadata={"k": "lovelace"})
    gallery.enroll("Bob", [photo((2, v, 30)) for v in range(3)])
    gallery.add_person("Carol", {"note": "no photo yet"})
    with pytest.raises(GalleryError, match="already exists"):
        gallery.add_person("Carol")

    assert gallery.rename("Bob", "Robert").faces == 3
    with pytest.raises(GalleryError, match="use merge"):
        gallery.rename("Ada", "Robert")
    with pytest.raises(GalleryError, match="no person named 'Bob'"):
        gallery.rename("Bob", "X")
    assert gallery.identify(photo((2, 9, 30)))[0].name == "Robert"

    merged = gallery.merge("Ada L.", "Ada")
    assert merged.faces == 3 and merged.metadata == {"a": 1, "k": "ada"}
    assert "Ada L." not in [p.name for p in gallery.people()]
    assert gallery.identify(photo((1, 5, 30)))[0].name == "Ada"

    assert gallery.remove_person("Robert") == 3
    assert gallery.identify(photo((2, 9, 30)))[0].name == UNKNOWN
    face_id = gallery.faces("Ada")[0].id
    assert gallery.remove_face(face_id).id == face_id
    with pytest.raises(GalleryError, match="no face with id"):
        gallery.remove_face(face_id)
    assert [(p.name, p.faces) for p in gallery.people()] == [("Ada", 2), ("Carol", 0)]
    assert_index_matches_db(gallery)


def test_renaming_a_person_to_their_own_name_changes_nothing(gallery):
    gallery.enroll("Ada", [photo((1, 0, 30))])
    assert gallery.rename("Ada", "Ada").name == "Ada"
    assert [(p.name, p.faces) for p in gallery.people()] == [("Ada", 1)]


def test_reserved_and_bad_names(gallery):
    for bad in ("", "  ", "Unknown", "a\nb", "Zoe\u200b"):
        with pytest.raises(GalleryError):
            gallery.add_person(bad)
    gallery.add_person("Zoe\u0308")  # NFD, as a folder made on macOS names it
    assert [p.name for p in gallery.people()] == ["Zo\u00eb"]  # stored as typed elsewhere: NFC
    with pytest.raises(GalleryError, match="JSON"):
        gallery.add_person("x", {"f": object()})


# -- persistence, model checks, index repair ---------------------------------------------


def test_reopen_persists_and_model_mismatch_is_refused(tmp_path, model, backend):
    path = tmp_path / "g.db"
    with Gallery.create(path, model, **backend) as g:
        g.enroll("Ada", [photo((1, v, 30)) for v in range(3)])
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(path, model)
    with Gallery.open(path, FakeModel()) as g:
        assert g.index_status == "loaded" and len(g) == 3
        assert g.identify(photo((1, 8, 30)))[0].name == "Ada"
    with pytest.raises(GalleryError, match="holds embeddings of model 'fake'"):
        Gallery.open(path, FakeModel(name="other"))
    with pytest.raises(GalleryError, match="32-d"):
        Gallery.open(path, FakeModel(dim=16))
    with Gallery.open(path) as g:  # no model: browsing and editing still work
        assert [p.name for p in g.people()] == ["Ada"]
        with pytest.raises(GalleryError, match="open the gallery with its model"):
            g.identify(photo((1, 0, 30)))
        assert g.search(fake_embedding(1, 4), k=1)[0][0].name == "Ada"
    with pytest.raises(GalleryError, match="no such gallery"):
        Gallery.open(tmp_path / "missing.db")
    (tmp_path / "junk.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(GalleryError):
        Gallery.open(tmp_path / "junk.db")


def test_index_is_rebuilt_or_repaired_from_the_database(tmp_path, model, backend):
    path = tmp_path / "g.db"
    if on_server(backend):
        return server_collection_is_rebuilt_or_repaired(path, model, backend["uri"])
    with Gallery.create(path, model, **backend) as g:
        g.enroll("Ada", [photo((1, v, 30)) for v in range(3)])
        index_file, state_file = g.index.path, g.index.state_path
    discard(index_file)
    with Gallery.open(path, model) as g:
        assert g.index_status == "rebuilt (no index file)"
        assert_index_matches_db(g)
    saved = snapshot(index_file), state_file.read_text()

    with Gallery.open(path, model) as g:  # faces added after the index was saved
        g.enroll("Bob", [photo((2, v, 30)) for v in range(2)])
    restore(saved[0], index_file)
    state_file.write_text(saved[1])
    with Gallery.open(path, model) as g:
        assert g.index_status == "repaired (+2 faces)"
        assert_index_matches_db(g)
        assert g.identify(photo((2, 7, 30)))[0].name == "Bob"

    with Gallery.open(path, model) as g:  # faces removed after the index was saved
        g.remove_person("Ada")
    restore(saved[0], index_file)
    state_file.write_text(saved[1])
    with Gallery.open(path, model) as g:
        assert g.index_status.startswith("rebuilt")
        assert_index_matches_db(g)

    discard(index_file)
    index_file.write_bytes(b"garbage")
    with Gallery.open(path, model) as g:
        assert g.index_status.startswith("rebuilt")
        assert_index_matches_db(g)


def test_another_process_changes_reach_a_long_lived_gallery(tmp_path, model, backend):
    """A server keeps its gallery open while the CLI enrols and removes (another connection):
    its searches see those changes, and the index it saves on close holds what its record says
    (one face added and one removed leave the count equal: the case a count alone misses)."""
    if backend == {"index": "milvus"}:
        pytest.skip("Milvus Lite serves its file to one process at a time (docs/recognition.md)")
    path = tmp_path / "g.db"
    with Gallery.create(path, model, **backend) as served:
        served.enroll("Ada", [photo((1, 0, 30))])
        assert served.identify(photo((1, 1, 30)))[0].name == "Ada"
        with Gallery.open(path, model) as cli:
            cli.enroll("Bob", [photo((2, 0, 30))])
            cli.remove_face(cli.faces("Ada")[0].id)
        (bob,) = served.identify(photo((2, 1, 30)))
        assert bob.name == "Bob"
        assert [m.name for m in bob.matches] == ["Bob"]  # Ada's removed face is gone
    with Gallery.open(path, model) as reopened:
        assert reopened.identify(photo((2, 1, 30)))[0].name == "Bob"
        assert_index_matches_db(reopened)


def test_thresholds_outside_the_distance_range_are_refused(gallery, model):
    """NaN compares false with every distance (it would call everyone unknown), and a
    squared-L2 distance between unit vectors lies in [0, 4]: both APIs refuse the rest."""
    gallery.enroll("Ada", [photo((1, 0, 30))])
    for bad in (float("nan"), -0.1, 4.5, float("inf")):
        with pytest.raises(ValueError, match="threshold must be"):
            gallery.identify(photo((1, 1, 30)), threshold=bad)
    assert gallery.identify(photo((1, 1, 30)), threshold=4.0)[0].name == "Ada"


def test_a_closed_gallery_says_so(tmp_path, model):
    """After close (or a `with` block), calls fail with a GalleryError naming the state, not
    sqlite3's ProgrammingError; repr still works."""
    with Gallery.create(tmp_path / "g.db", model) as g:
        g.enroll("Ada", [photo((1, 0, 30))])
    assert "closed" in repr(g)
    for call in (lambda: len(g), g.people, lambda: g.identify(photo((1, 1, 30)))):
        with pytest.raises(GalleryError, match="the gallery is closed"):
            call()
    g.close()  # closing again does nothing


def server_collection_is_rebuilt_or_repaired(path: Path, model, uri: str) -> None:
    """The server variant (no index file to delete or restore: the collection is changed
    behind the gallery's back through another connection)."""
    from facenet.gallery.milvus_index import MilvusIndex

    with Gallery.create(path, model, index="milvus", uri=uri) as g:
        g.enroll("Ada", [photo((1, v, 30)) for v in range(3)])
        state_file = g.index.state_path
    other = MilvusIndex(path, DIM, uri=uri)
    other.client.drop_collection(other.collection)  # lost by the server
    with Gallery.open(path, model) as g:
        assert g.index_status == "rebuilt (no index file)"
        assert_index_matches_db(g)
    saved = state_file.read_text()
    with Gallery.open(path, model) as g:  # faces added, then lost by the server
        added = [e.face_id for e in g.enroll("Bob", [photo((2, v, 30)) for v in range(2)]).enrolled]
    other.client.delete(other.collection, ids=added)
    state_file.write_text(saved)
    with Gallery.open(path, model) as g:
        assert g.index_status == "repaired (+2 faces)"
        assert_index_matches_db(g)
        assert g.identify(photo((2, 7, 30)))[0].name == "Bob"
        ada = g.faces("Ada")[0].id
    other.client.delete(other.collection, ids=[ada])  # a row lost, the record unchanged
    with Gallery.open(path, model) as g:
        assert g.index_status == "rebuilt (index does not match its record)"
        assert_index_matches_db(g)
    other.close()


def test_schema_is_versioned_with_migrations(gallery):
    db = gallery._store.db
    from facenet.gallery.store import MIGRATIONS

    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert [r[0] for r in db.execute("SELECT name FROM _migrations")] == [n for n, _ in MIGRATIONS]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_index_switches_to_approximate_above_the_threshold(tmp_path, model, backend, monkeypatch):
    """FAISS and Milvus Lite: exact up to APPROXIMATE_ABOVE faces, IVF above (Milvus:
    IVF_FLAT); a Milvus server: HNSW at any size, never rebuilt for it."""
    from facenet.gallery import index as index_module

    monkeypatch.setattr(index_module, "APPROXIMATE_ABOVE", 20)
    flat, ivf = ("hnsw", "hnsw") if on_server(backend) else ("flat", {"faiss": "ivf"}.get(
        backend["index"], "ivf_flat"))  # fmt: skip
    with Gallery.create(tmp_path / "g.db", model, **backend) as g:
        g.enroll_folder(make_tree(tmp_path / "p", people=5, photos=3), progress=False)
        assert g.index.kind == flat
        g.enroll_folder(make_tree(tmp_path / "q", people=9, photos=3), progress=False)
        assert len(g) == 27 and g.index.kind == ivf
        assert_index_matches_db(g)
    with Gallery.open(tmp_path / "g.db", model) as g:
        assert g.index_status == "loaded" and g.index.kind == ivf
        assert g.identify(photo((4, 9, 30)))[0].name == "person_04"


# -- real faces ------------------------------------------------------------------------------


def test_real_faces_group_photo_and_blank(tmp_path, small_model, lfw_dir):
    """With MTCNN and a real (untrained) network: a two-face photo enrols its larger face; a
    blank photo is skipped; the enrolled photo identifies as its person."""
    big = Image.open(lfw_dir / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg").convert("RGB")
    small = Image.open(lfw_dir / "AJ_Cook" / "AJ_Cook_0001.jpg").convert("RGB").resize((150, 150))
    group = Image.new("RGB", (420, 260), (128, 128, 128))
    group.paste(big, (0, 5))
    group.paste(small, (265, 55))
    group_file = tmp_path / "group.jpg"
    group.save(group_file, quality=95)
    blank = save(tmp_path / "blank.png", np.full((200, 200, 3), 128, np.uint8))
    with Gallery.create(tmp_path / "g.db", small_model) as g:
        report = g.enroll("Aaron", [group_file, blank])
        (enrolled,) = report.enrolled
        assert enrolled.faces_in_photo == 2
        assert [s.reason for s in report.skipped] == ["no face found"]
        (record,) = g.faces("Aaron")
        assert record.box[2] < 260  # the left, larger face
        faces = g.identify(group_file)
        assert len(faces) == 2
        left = min(faces, key=lambda f: f.face.box[0])
        assert left.name == "Aaron" and left.distance < 1e-4


def test_identified_face_to_dict_is_json(gallery):
    gallery.enroll("Ada", [photo((1, 0, 30))])
    out = [dataclasses.asdict(m) for m in gallery.identify(photo((1, 1, 30)))[0].matches]
    assert out[0]["name"] == "Ada"


def test_add_embeddings(gallery):
    ids = gallery.add_embeddings(
        "Ada", np.stack([fake_embedding(1, v) for v in range(3)]), ["a", "b", "c"]
    )
    assert len(ids) == 3 and [f.source for f in gallery.faces("Ada")] == ["a", "b", "c"]
    assert gallery.identify(photo((1, 7, 30)))[0].name == "Ada"
    with pytest.raises(GalleryError, match="do not fit"):
        gallery.add_embeddings("Ada", np.ones((2, 5)))
    assert_index_matches_db(gallery)


def test_index_backend_choice_uri_and_switch(tmp_path, model, monkeypatch):
    from facenet.gallery import index as index_module

    pytest.importorskip("pymilvus", reason="the milvus backend needs facenet-keras[milvus]")
    path, shared = tmp_path / "g.db", tmp_path / "shared.db"
    with Gallery.create(path, model, index="milvus", uri=str(shared)) as g:
        g.enroll("Ada", [photo((1, v, 30)) for v in range(2)])
    with Gallery.open(path, model) as g:  # the backend and its URI are recorded
        assert (g.index_backend, g.index_uri, g.index_status) == ("milvus", str(shared), "loaded")
    with Gallery.open(path, model, index="faiss") as g:  # another backend: rebuilt from SQLite
        assert g.index_status == "rebuilt (no index file)"
        assert_index_matches_db(g)
    with pytest.raises(GalleryError, match="takes no URI"):
        Gallery.create(tmp_path / "f.db", model, uri="http://localhost:19530")
    monkeypatch.setitem(index_module.BACKENDS, "absent", "facenet_absent_module:Index")
    with pytest.raises(GalleryError, match=r"needs facenet_absent_module: pip install"):
        Gallery.create(tmp_path / "a.db", model, index="absent")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.db", "g.db.faiss", "g.db.faiss.json",
        "g.db.milvus.json", "shared.db"]  # fmt: skip


def test_a_missing_index_backend_names_this_packages_extra(tmp_path, monkeypatch):
    """The hint said `pip install 'facenet[milvus]'`: another project's name on PyPI."""
    from facenet.gallery import index as index_module

    monkeypatch.setitem(index_module.BACKENDS, "absent", "facenet_absent_module:Index")
    with pytest.raises(GalleryError) as caught:
        index_module.open_index("absent", tmp_path / "g.db", 128)
    assert str(caught.value).endswith("needs facenet_absent_module: pip install "
                                      "'facenet-keras[absent]'")  # fmt: skip


def test_enroll_of_no_photos_at_all_is_one_image_error(tmp_path, model):
    """`enroll("Ada", None)` failed inside iteration with a TypeError; now an ImageError, and
    no person is created. A 4-D array is its photos, as for `FaceNet.embed`."""
    from facenet.errors import ImageError

    with Gallery.create(tmp_path / "g.db", model) as g:
        for bad in (None, 7, b"\xff\xd8"):
            with pytest.raises(ImageError):
                g.enroll("Ada", bad)
        assert g.people() == []
        batch = np.stack([photo((1, v, 30)) for v in range(2)])
        assert len(g.enroll("Ada", batch).enrolled) == 2


def test_k_that_is_no_positive_integer_is_one_argument_error(tmp_path, model):
    """k=2.5 listed every person found (the count never equalled it), "3" or None failed
    inside a comparison with a TypeError, 0 was a plain ValueError; embeddings that are no
    numbers failed inside NumPy."""
    from facenet.errors import ArgumentError

    with Gallery.create(tmp_path / "g.db", model) as g:
        for person in (1, 2, 3):
            g.enroll(f"P{person}", [photo((person, 0, 30))])
        probe = photo((1, 1, 30))
        assert len(g.identify(probe, k=2)[0].matches) == 2
        assert len(g.identify(probe, k=np.int64(2))[0].matches) == 2
        for bad in (2.5, "3", None, 0, -1, True):
            with pytest.raises(ArgumentError, match="^k must be an integer of at least 1"):
                g.identify(probe, k=bad)
            with pytest.raises(ArgumentError, match="^k must be an integer of at least 1"):
                g.search(np.ones(DIM), k=bad, per_person=False)
        with pytest.raises(GalleryError, match="do not fit this gallery"):
            g.search("abc")


def test_add_embeddings_of_nan_or_zeros_says_so_and_stores_nothing(tmp_path, model):
    """A NaN row was reported as "the model returned an embedding of shape (128,); expected
    (128,)" and a zero row as "the model returned a zero embedding": the caller gave them."""
    with Gallery.create(tmp_path / "g.db", model) as g:
        good = fake_embedding(1, 0)
        with pytest.raises(GalleryError, match="^embeddings contain NaN or infinite values$"):
            g.add_embeddings("Ada", np.stack([good, np.full(DIM, np.nan)]))
        with pytest.raises(GalleryError, match=r"^embedding 1 is all zeros \(not a face vector\)$"):
            g.add_embeddings("Ada", np.stack([good, np.zeros(DIM)]))
        assert g.people() == [] and len(g) == 0


def test_thumbnail_size_and_calibration_rate_that_are_no_numbers(tmp_path, model):
    """`thumbnail(id, "x")` failed inside int(), 2.5 was taken as 2 px and 0 was a plain
    ValueError; `calibrate(far="x")` failed inside a comparison with a TypeError."""
    from facenet.errors import ArgumentError

    with Gallery.create(tmp_path / "g.db", model) as g:
        (face,) = g.enroll("Ada", [photo((1, 0, 30))]).enrolled
        assert g.thumbnail(face.face_id, np.int64(32)).startswith(b"\xff\xd8")
        for bad in ("x", 2.5, 0, 5000, True, None):
            with pytest.raises(ArgumentError, match="^thumbnail size must be an integer of 1-4096"):
                g.thumbnail(face.face_id, bad)
        for bad in ("x", None, float("nan"), 0, 1):
            with pytest.raises(GalleryError, match="^the false-accept rate must be in"):
                g.calibrate(far=bad)

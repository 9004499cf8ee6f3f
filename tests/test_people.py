"""The people library on real LFW faces with the default model: schema, add, quality gate,
corrections, suggestions, thumbnails."""

from __future__ import annotations

import io
import sqlite3

import pytest
from PIL import Image

from facenet.errors import LibraryError
from facenet.people import Library

from .people_support import blurred, members, memo_model, photos


@pytest.fixture
def lib(tmp_path):
    with Library.open(tmp_path / "lib.db", memo_model()) as library:
        yield library


def test_an_older_gallery_is_migrated_in_place(tmp_path, monkeypatch):
    """A gallery made before the library (migrations 1-2) keeps its people, faces and ids; a
    face may then belong to nobody and a person need no name."""
    from facenet.gallery import Gallery, store

    from .test_gallery import FakeModel, make_tree

    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:2])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    path = tmp_path / "old.db"
    with Gallery.create(path, FakeModel()) as g:
        g.enroll_folder(make_tree(tmp_path / "p", people=2, photos=3), progress=False)
        g.remove_face(6)  # the highest id: it must not be reused after the migration
        before = [(p.id, p.name, p.faces) for p in g.people()]
    monkeypatch.undo()
    with Gallery.open(path, FakeModel()) as g:
        assert [(p.id, p.name, p.faces) for p in g.people()] == before
        assert g.index_status == "loaded"
    with Library.open(path, create=False) as library:
        assert [(p.id, p.name, p.face_count) for p in library.people()] == before
        library.move(1, None)
        assert library.face(1).state == "unassigned"
        assert library.name(1, None).name is None
        new = library._store.db.execute(
            "INSERT INTO faces (content_hash, embedding, model_id, created) VALUES "
            "('x', x'00', 'm', 'now')"
        ).lastrowid
        assert new == 7
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_add_groups_people_and_skips_what_it_has(lib, tmp_path):
    colin, tony = photos("Colin_Powell", 4), photos("Tony_Blair", 4)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    report = lib.add([*colin, *tony, broken])
    assert report.photos == 8 and report.failed[0][0].endswith("broken.jpg")
    assert report.faces == len(lib.faces()) >= 8
    groups = members(lib)
    assert {"Colin_Powell"} in groups.values() and {"Tony_Blair"} in groups.values()
    assert all(len(g) == 1 for g in groups.values())  # nobody mixed
    again = lib.add(colin[:2])
    assert (again.photos, len(again.duplicates)) == (0, 2)
    more = lib.add(photos("Colin_Powell", 2, start=5))
    colin_id = next(p for p, g in members(lib).items() if g == {"Colin_Powell"})
    assert more.assigned >= 1 and len(lib.faces(colin_id)) >= 5  # joined, no new cluster
    assert lib.violations() == []


def test_low_quality_faces_are_kept_but_never_seed_a_cluster(lib):
    """Blurred copies of two photos of one person: stored, searchable, low quality; alone they
    make no cluster (the sharp photos would), and once the person exists they may join it."""
    a, b = photos("Vladimir_Putin", 2)
    report = lib.add([blurred(a, 8), blurred(b, 8)])
    faces = lib.faces()
    assert report.faces == 2 and all(f.low_quality for f in faces)
    assert all("blur" in f.quality and f.quality["blur"] < lib.gate["min_blur"] for f in faces)
    assert report.new_clusters == 0 and lib.people() == []
    lib.recluster()
    assert lib.people() == []  # not even a batch re-clustering seeds from them
    lib.add([a, b])
    assert len(lib.people()) == 1


def test_two_faces_of_one_photo_are_never_put_together(lib):
    """LFW photos with a background face next to the subject: the two never share a person,
    even when a must-link path is absent and they are close."""
    lib.add(photos("Colin_Powell", 8) + photos("Tony_Blair", 8))
    lib.recluster()
    by_photo: dict[str, set] = {}
    for f in lib.faces():
        if f.person_id is not None:
            assert f.person_id not in by_photo.setdefault(f.photo, set())
            by_photo[f.photo].add(f.person_id)
    assert lib.violations() == []


def test_corrections_stick_through_add_and_recluster(lib):
    lib.add(photos("Serena_Williams", 5) + photos("Jiang_Zemin", 5))
    serena, jiang = (
        next(p for p, g in members(lib).items() if g == {name})
        for name in ("Serena_Williams", "Jiang_Zemin")
    )
    lib.name(serena, "Serena")
    with pytest.raises(LibraryError, match="already"):
        lib.name(jiang, "Serena")
    survivor = lib.merge([jiang, serena])  # a wrong merge, on purpose
    assert survivor == serena and lib.person(serena).name == "Serena"
    jiang_faces = [f.id for f in lib.faces(serena) if "Jiang" in f.photo]
    new = lib.split(serena, jiang_faces)
    lib.recluster()
    lib.add(photos("Jiang_Zemin", 3, start=6) + photos("Serena_Williams", 3, start=6))
    lib.recluster()
    assert {f.id for f in lib.faces(new)} >= set(jiang_faces)
    assert not {f.id for f in lib.faces(serena)} & set(jiang_faces)
    moved = jiang_faces[0]
    lib.move(moved, None)
    lib.recluster()
    assert lib.face(moved).person_id != new  # cannot-linked to the faces it left
    lib.reject(jiang_faces[1], "ignore")
    lib.recluster()
    assert lib.face(jiang_faces[1]).state == "rejected"
    kinds = {c.kind for c in lib.constraints()}
    assert {"must", "cannot", "reject", "name"} <= kinds
    assert lib.violations() == []


def test_suggestions_accept_and_decline(tmp_path):
    path = tmp_path / "lib.db"
    with Library.open(path, memo_model()) as lib:
        lib.add(photos("Tony_Blair", 3))
        tony = lib.people()[0].id
        lib.name(tony, "Tony Blair")
    with Library.open(path, memo_model(), threshold=0.01) as strict:  # places nothing
        strict.add(photos("Tony_Blair", 4, start=4) + photos("Colin_Powell", 2))
    with Library.open(path, create=False) as lib:
        found = lib.suggestions(tony)
        assert [s.face_id for s in found] == [s.face_id for s in lib.suggestions(tony, k=50)][:10]
        assert found == sorted(found, key=lambda s: s.distance)
        assert all(s.distance <= 1.5 * lib.threshold for s in found)
        suggested = [lib.face(s.face_id).photo.split("/")[-2] for s in found]
        assert suggested[:4] == ["Tony_Blair"] * 4  # his four new photos rank first
        accepted, declined = found[0].face_id, found[-1].face_id
        assert accepted != declined
        lib.accept(tony, accepted)
        assert lib.face(accepted).person_id == tony
        lib.decline(tony, declined)
        assert declined not in {s.face_id for s in lib.suggestions(tony)}
        lib.recluster()
        assert lib.face(declined).person_id != tony
        assert lib.face(accepted).person_id == tony
        assert lib.violations() == []


def test_thumbnail_is_a_jpeg_of_the_face(lib):
    lib.add(photos("Colin_Powell", 1))
    data = lib.thumbnail(lib.faces()[0].id, size=64)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and max(image.size) == 64
    with pytest.raises(LibraryError, match="no face"):
        lib.thumbnail(999)


def test_refusals_are_one_line_errors(lib):
    lib.add(photos("Colin_Powell", 3))
    person = lib.people()[0].id
    faces = [f.id for f in lib.faces(person)]
    for call in (
        lambda: lib.merge([person]),
        lambda: lib.split(person, faces),
        lambda: lib.split(person, [999]),
        lambda: lib.move(999, person),
        lambda: lib.reject(faces[0], "bad"),
        lambda: lib.name(12345, "x"),
    ):
        with pytest.raises(LibraryError) as caught:
            call()
        assert "\n" not in str(caught.value)
    lib.must_link(faces[0], faces[1])
    with pytest.raises(LibraryError, match="must-linked"):
        lib.cannot_link(faces[0], faces[1])


def test_thumbnail_size_is_checked(lib):
    report = lib.add(photos("Colin_Powell", 1))
    for size in (0, -5, 10**6):
        with pytest.raises(ValueError, match="thumbnail size"):
            lib.thumbnail(report.face_ids[0], size)


def test_bad_settings_refused_before_a_file_is_made(tmp_path):
    for settings in ({"threshold": 5.0}, {"threshold": float("nan")}, {"min_faces": 1}):
        with pytest.raises(LibraryError, match="must be (in|an integer)"):
            Library.open(tmp_path / "lib.db", memo_model(), **settings)
        assert list(tmp_path.iterdir()) == []  # no empty gallery left behind


def test_placement_keeps_one_photos_faces_apart_from_a_person():
    """An unassigned face never joins a person who has another face of its photo, however
    close (the algorithm alone, on made-up vectors)."""
    import numpy as np

    from facenet.people.assign import Existing, assign_batch

    rng = np.random.default_rng(0)
    centre = rng.normal(size=128)
    near = [centre + rng.normal(scale=0.01, size=128) for _ in range(4)]
    near = [v / np.linalg.norm(v) for v in near]
    existing = {10: Existing(None, False, True, "photo-x", near[1].astype(np.float32))}
    sums = {7: (near[2] + near[3], 2, {"photo-x", "photo-y"})}  # person 7 has a face of photo-x
    decisions = assign_batch(
        np.stack([near[0]]).astype(np.float32), np.array([False]), ["photo-new"], existing,
        sums, threshold=0.18, low_threshold=0.135,
    )  # fmt: skip
    # face 10 cannot be person 7; the new face, closer to face 10 than to 7, goes with it
    assert decisions.claimed.get(10) != ("p", 7) and decisions.person != [("p", 7)]
    free_sums = {7: (near[2] + near[3], 2, {"photo-y"})}
    decisions = assign_batch(
        np.stack([near[0]]).astype(np.float32), np.array([False]), ["photo-new"], existing,
        free_sums, threshold=0.18, low_threshold=0.135,
    )  # fmt: skip
    assert decisions.claimed == {10: ("p", 7)}  # without the shared photo: all three together
    assert decisions.person == [("p", 7)]

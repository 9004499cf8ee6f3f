"""Defects found while integrating the people library with the gallery and the server (each
test failed before its fix), on real LFW faces with the default model:

1. `Gallery.remove_face` of a face of nobody (or of an unnamed cluster) removes it;
2. a photo whose faces were all deleted is forgotten, so adding it again detects it anew;
3. `Library.from_gallery` refuses a bad recorded threshold without closing the gallery;
4. the gallery's listings (API and `facenet gallery list`) show named people only;
5. an unnamed cluster emptied by a correction is deleted in the correction's transaction;
6. an unknown id raises `LibraryNotFoundError` (its kind says face or person);
7. `add` detects and embeds outside the library's lock (a server's other requests are answered
   meanwhile), so it checks again under the lock: a photo another call stored meanwhile is a
   duplicate, and a gallery moved to another model meanwhile refuses the batch; a correction
   made between its storing and its placing (the lock is free then) is kept.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main
from facenet.errors import GalleryError, LibraryError, LibraryNotFoundError
from facenet.images import load_image
from facenet.people import Library

from .people_support import lock_free_while_reading, memo_model, photos


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def lib(tmp_path):
    """A library of 5 Colin Powell and 3 Tony Blair photos (unnamed clusters)."""
    with Library.open(tmp_path / "lib.db", memo_model()) as library:
        library.add(photos("Colin_Powell", 5) + photos("Tony_Blair", 3))
        yield library


def biggest(lib):
    """The largest unnamed cluster and its face ids."""
    person = max(lib.people(named=False), key=lambda p: p.face_count)
    return person, [f.id for f in lib.faces(person.id)]


def test_gallery_removes_a_face_of_nobody_and_of_a_cluster(lib):
    g = lib.gallery
    person, faces = biggest(lib)
    lib.move(faces[0], None)
    record = g.remove_face(faces[0])  # raised StopIteration
    assert record.id == faces[0] and record.person is None
    with pytest.raises(LibraryNotFoundError):
        lib.face(faces[0])
    with pytest.raises(GalleryError, match=f"no face with id {faces[0]}"):
        g.remove_face(faces[0])
    single = lib.split(person.id, [faces[1]])
    assert g.remove_face(faces[1]).person is None
    assert single not in [p.id for p in lib.people()]  # the cluster went with its last face
    assert len(g.index) == len(g) == len(lib.faces())
    assert lib.violations() == []


def test_gallery_cli_removes_a_face_of_nobody(tmp_path):
    path = tmp_path / "lib.db"
    with Library.open(path, memo_model()) as library:
        face = library.add(photos("Tony_Blair", 1)).face_ids[0]
        library.move(face, None)
    result = run("gallery", "remove", path, "--face", face)
    assert result.exit_code == 0, result.output
    assert f"removed face #{face} of nobody named" in result.stdout
    result = run("gallery", "remove", path, "--face", face)
    assert result.exit_code == 2 and f"no face with id {face}" in result.stderr
    assert len(result.output.splitlines()) == 1


def side_by_side(*paths) -> np.ndarray:
    """One photo of several LFW photos next to each other: a photo with several faces."""
    return np.hstack([load_image(p) for p in paths])


def test_a_photo_whose_faces_are_all_deleted_is_added_again(lib):
    g = lib.gallery
    two = side_by_side(*photos("Serena_Williams", 1), *photos("Vladimir_Putin", 1))
    first = lib.add(two)
    assert first.faces == 2, first.summary()
    g.remove_face(first.face_ids[0])
    again = lib.add(two)  # a face is left: still the same photo, the deleted face stays gone
    assert again.duplicates and again.faces == 0
    g.remove_face(first.face_ids[1])
    again = lib.add(two)  # no face left: forgotten, detected anew
    assert again.duplicates == [] and again.faces == 2
    # the same through remove_person, for a named person's photos
    person, faces = biggest(lib)
    lib.name(person.id, "Colin")
    everyone = lib.faces()
    emptied = {f.photo for f in everyone} - {f.photo for f in everyone if f.id not in faces}
    assert emptied and g.remove_person("Colin") == len(faces)
    back = lib.add(photos("Colin_Powell", 5) + photos("Tony_Blair", 3))
    assert back.photos == len(emptied) and len(back.duplicates) == 8 - len(emptied)
    # a photo in which nothing was detected stays recorded (nothing was deleted)
    blank = np.full((200, 200, 3), 128, np.uint8)
    assert lib.add(blank).faces == 0 and lib.add(blank).duplicates
    assert lib.violations() == []


def test_from_gallery_refuses_a_bad_threshold_and_leaves_the_gallery_open(tmp_path):
    from facenet.gallery import Gallery

    path = tmp_path / "lib.db"
    Library.open(path, memo_model()).close()
    for bad in ("9", "abc"):
        with sqlite3.connect(path) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = 'people_threshold'", (bad,))
        db.close()
        with Gallery.open(path) as g:
            with pytest.raises(LibraryError, match="threshold must be in") as caught:
                Library.from_gallery(g)  # closed the gallery (or raised ValueError for "abc")
            assert "\n" not in str(caught.value)
            assert g.people() == [] and len(g) == 0  # still open
            with pytest.raises(LibraryError, match="min_faces"):
                Library.from_gallery(g, threshold=1.0, min_faces=1)
            assert Library.from_gallery(g, threshold=1.0, min_faces=2).threshold == 1.0
        with pytest.raises(LibraryError, match="threshold must be in"):
            Library.open(path, create=False)


def test_gallery_listings_show_named_people_only(lib):
    g = lib.gallery
    person, faces = biggest(lib)
    lib.name(person.id, "Colin")
    assert lib.people(named=False)  # unnamed clusters remain: the library lists them
    assert [(p.name, p.faces) for p in g.people()] == [("Colin", len(faces))]
    assert [f.id for f in g.faces()] == faces and {f.person for f in g.faces()} == {"Colin"}
    lib.close()
    result = run("gallery", "list", lib.path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"Colin\t{len(faces)} faces"]
    assert "None" not in result.output
    assert "1 person, " in result.stderr and "in the people library" in result.stderr
    listed = run("gallery", "list", lib.path, "--json")
    assert [json.loads(line)["name"] for line in listed.stdout.splitlines()] == ["Colin"]


def test_a_cluster_emptied_by_a_correction_is_deleted_in_it(lib):
    person, faces = biggest(lib)
    assert len(faces) >= 4
    corrections = [
        lambda new, face: lib.move(face, None),
        lambda new, face: lib.reject(face, "ignore"),
        lambda new, face: lib.decline(new, face),
        lambda new, face: lib.move(face, person.id),
    ]
    for correct, face in zip(corrections, faces[1:], strict=False):
        new = lib.split(person.id, [face])
        correct(new, face)
        assert new not in [p.id for p in lib.people()]
        with pytest.raises(LibraryNotFoundError):
            lib.person(new)
    # a named person stays, even with no face left
    lib.name(person.id, "Colin")
    for face in [f.id for f in lib.faces(person.id)]:
        lib.move(face, None)
    assert lib.person(person.id).face_count == 0
    assert lib.violations() == []


def test_unknown_ids_raise_library_not_found(lib):
    person, faces = biggest(lib)
    calls = {
        "face": [
            lambda: lib.face(999_999), lambda: lib.move(999_999, None),
            lambda: lib.thumbnail(999_999), lambda: lib.reject(999_999),
        ],
        "person": [
            lambda: lib.person(999_999), lambda: lib.faces(999_999),
            lambda: lib.merge([person.id, 999_999]), lambda: lib.move(faces[0], 999_999),
            lambda: lib.suggestions(999_999),
        ],
    }  # fmt: skip
    for kind, functions in calls.items():
        for function in functions:
            with pytest.raises(LibraryNotFoundError) as caught:
                function()
            assert caught.value.kind == kind and isinstance(caught.value, LibraryError)
    with pytest.raises(LibraryError) as caught:  # a refusal that is not a not-found
        lib.split(person.id, faces)
    assert not isinstance(caught.value, LibraryNotFoundError)


def test_add_reads_photos_outside_the_lock(lib, monkeypatch):
    def add():
        return lib.add(photos("Tony_Blair", 1, 4))

    report = lock_free_while_reading(monkeypatch, lib.gallery.model, lib._lock, add)
    assert report.photos == 1 and report.faces >= 1


def test_a_photo_stored_meanwhile_is_a_duplicate_and_stored_once(lib, monkeypatch):
    model = lib.gallery.model
    original = model.represent
    (photo,) = photos("Tony_Blair", 1, 4)
    inner = {}

    def racing(rgb):  # another call adds the same photo while this one reads it
        monkeypatch.setattr(model, "represent", original)
        inner["report"] = lib.add([photo])
        return original(rgb)

    monkeypatch.setattr(model, "represent", racing)
    outer = lib.add([photo])
    assert inner["report"].photos == 1 and inner["report"].faces >= 1
    assert outer.photos == 0 and outer.faces == 0 and outer.duplicates == [str(photo)]
    stored = [f for f in lib.faces() if f.photo == str(photo.resolve())]
    assert len(stored) == inner["report"].faces


def test_a_gallery_moved_to_another_model_meanwhile_refuses_the_batch(lib, monkeypatch):
    model = lib.gallery.model
    original = model.represent
    before = len(lib.faces())

    def migrating(rgb):  # a server's migration swaps the gallery's model during the read
        monkeypatch.setattr(lib.gallery, "model", object())
        return original(rgb)

    monkeypatch.setattr(model, "represent", migrating)
    with pytest.raises(GalleryError, match="another model while photos were being read"):
        lib.add(photos("Tony_Blair", 1, 4))
    monkeypatch.setattr(lib.gallery, "model", model)
    assert len(lib.faces()) == before


def test_a_correction_made_between_storing_and_placing_is_kept(lib, monkeypatch):
    smallest = min(lib.people(named=False), key=lambda p: p.face_count)  # Tony Blair's
    place = lib.place_pending
    touched = {}

    def correct_then_place(report=None):  # the user, while the add has not placed its faces
        pending = lib._store.db.execute("SELECT id FROM faces WHERE pending = 1 ORDER BY id")
        moved, rejected, linked = (int(r[0]) for r in pending.fetchall()[:3])
        lib.move(moved, smallest.id)
        lib.reject(rejected)
        lib.cannot_link(linked, moved)
        touched.update(moved=moved, rejected=rejected, linked=linked)
        return place(report)

    monkeypatch.setattr(lib, "place_pending", correct_then_place)
    report = lib.add(photos("Colin_Powell", 3, 6))
    assert report.photos == 3 and len(touched) == 3
    moved = lib.face(touched["moved"])
    assert moved.person_id == smallest.id and moved.assigned_by == "user"
    assert lib.face(touched["rejected"]).state == "rejected"
    assert lib.face(touched["linked"]).person_id != smallest.id
    assert lib.violations() == []
    pending = lib._store.db.execute("SELECT COUNT(*) FROM faces WHERE pending = 1").fetchone()
    assert pending[0] == 0


def test_add_of_no_photos_at_all_is_one_image_error(tmp_path):
    """`Library.add(None)` failed inside list() with a TypeError; now an ImageError, nothing
    stored."""
    from facenet.errors import ImageError

    with Library.open(tmp_path / "lib.db", memo_model()) as library:
        for bad in (None, 3, b"\xff\xd8"):
            with pytest.raises(ImageError):
                library.add(bad)
        assert library.faces() == []


def test_ids_that_are_no_integers_are_refused_not_truncated(lib):
    """int() turned 2.7 into 2 and True into 1, so a correction silently hit another face;
    "x" or None failed inside int(), and an id past SQLite's integers inside SQLite. Now an
    ArgumentError, or not found, and nothing changes."""
    from facenet.errors import ArgumentError

    person, faces = biggest(lib)
    before = [(f.id, f.person_id) for f in lib.faces()]
    calls = [
        (lib.face, lambda x: (x,)),
        (lib.move, lambda x: (x, None)),
        (lib.reject, lambda x: (x,)),
        (lib.must_link, lambda x: (faces[1], x)),
        (lib.name, lambda x: (x, "Ada")),
        (lib.person, lambda x: (x,)),
        (lib.merge, lambda x: ([person.id, x],)),
        (lib.split, lambda x: (person.id, [x])),
        (lib.gallery.remove_faces, lambda x: ([x],)),
    ]
    for bad in (faces[0] + 0.5, True, "x", None):
        for call, args in calls:
            with pytest.raises(ArgumentError, match=r"^a (face|person) id must be an integer"):
                call(*args(bad))
    with pytest.raises(ArgumentError, match="^person ids must be a list of integers"):
        lib.merge(None)
    for call in (
        lambda: lib.face(2**70),
        lambda: lib.move(2**70, None),
        lambda: lib.name(2**70, "A"),
    ):
        with pytest.raises(LibraryNotFoundError):
            call()
    assert lib.gallery.thumbnail(2**70) is None and not lib.gallery.has_face(2**70)
    assert [(f.id, f.person_id) for f in lib.faces()] == before
    assert lib.face(np.int64(faces[0])).id == faces[0]  # a NumPy integer is an integer


def test_a_bad_setting_is_named_alone(tmp_path):
    """`configure(min_faces=1)` said "threshold must be in (0, 4] and min_faces an integer of
    at least 2 (got 1.0 and 1)": a threshold of 1.0 the user never gave; `configure(threshold=
    "x")` blamed a min_faces of 2 too. Each message now names only the bad value."""
    path = tmp_path / "lib.db"
    with Library.open(path, memo_model()) as library:
        before = library.settings()
        with pytest.raises(
            LibraryError, match=r"min_faces must be an integer of at least 2 \(got 1\)$"
        ):
            library.configure(min_faces=1)
        with pytest.raises(
            LibraryError, match=r"people threshold must be in \(0, 4\] \(got 'x'\)$"
        ):
            library.configure(threshold="x")
        with pytest.raises(LibraryError, match=r"and min_faces an .* \(got 5 and 1\)$"):
            library.configure(threshold=5, min_faces=1)
        assert library.settings() == before
    with pytest.raises(
        LibraryError, match=r"min_faces must be an integer of at least 2 \(got 0\)$"
    ):
        Library.open(tmp_path / "new.db", memo_model(), min_faces=0)
    assert not (tmp_path / "new.db").exists()


def test_suggestions_with_a_limit_or_count_that_is_no_number(lib):
    """`suggestions(p, max_distance=float("nan"))` silently suggested nothing, "x" failed
    inside float(), and k=2.5 or "x" inside int(); now an ArgumentError each."""
    from facenet.errors import ArgumentError

    person, _ = biggest(lib)
    assert len(lib.suggestions(person.id, np.int64(1), max_distance=4)) <= 1
    for bad in (float("nan"), "x", -0.1, 5):
        with pytest.raises(ArgumentError, match="^max_distance must be a squared-L2 distance"):
            lib.suggestions(person.id, max_distance=bad)
    for bad in (2.5, "x", 0, None):
        with pytest.raises(ArgumentError, match="^k must be an integer of at least 1"):
            lib.suggestions(person.id, bad)

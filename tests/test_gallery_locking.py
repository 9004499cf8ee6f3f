"""Enrolment reads photos outside the gallery's lock (issue: a server's reads waited for every
upload's inference), so it checks again under the lock before storing: a photo another call
enrolled meanwhile is skipped as a duplicate, and a gallery closed or moved to another model
meanwhile refuses the batch (`GalleryChangedError`) with nothing stored. `Gallery.use_lock`
puts the gallery under its owner's lock (a server's)."""

from __future__ import annotations

import threading

import pytest

from facenet.errors import GalleryChangedError
from facenet.gallery import Gallery

from .people_support import hold_reads, lock_free_while_reading
from .test_gallery import FakeModel, photo


@pytest.fixture
def gallery(tmp_path):
    with Gallery.create(tmp_path / "g.db", FakeModel()) as gallery:
        yield gallery


def test_enrolment_reads_outside_the_lock(gallery, monkeypatch):
    def enrol():
        return gallery.enroll("Ann", [photo((1, 0, 30))])

    report = lock_free_while_reading(monkeypatch, gallery.model, gallery._lock, enrol)
    assert len(report.enrolled) == 1 and gallery.people()[0].faces == 1


def test_a_photo_enrolled_meanwhile_is_skipped_as_a_duplicate(gallery, monkeypatch):
    image = photo((1, 0, 30))
    original = gallery.model.represent
    inner = {}

    def racing(rgb):  # another call enrols the same photo while this one reads it
        monkeypatch.setattr(gallery.model, "represent", original)
        inner["report"] = gallery.enroll("Ann", [image])
        return original(rgb)

    monkeypatch.setattr(gallery.model, "represent", racing)
    outer = gallery.enroll("Bob", [image])
    assert len(inner["report"].enrolled) == 1
    assert outer.enrolled == [] and "duplicate" in outer.skipped[0].reason
    assert [(p.name, p.faces) for p in gallery.people()] == [("Ann", 1)]


def test_a_gallery_moved_to_another_model_meanwhile_refuses_the_batch(gallery, monkeypatch):
    model = gallery.model
    original = model.represent

    def migrating(rgb):  # a server's migration swaps the gallery's model during the read
        monkeypatch.setattr(gallery, "model", FakeModel())
        return original(rgb)

    monkeypatch.setattr(model, "represent", migrating)
    with pytest.raises(
        GalleryChangedError, match="another model while photos were being read"
    ) as e:
        gallery.enroll("Ann", [photo((1, 0, 30))])
    assert gallery.people() == []
    assert str(e.value).startswith(f"{gallery.path}: ")  # the command line names the file
    assert e.value.reason == str(e.value).removeprefix(f"{gallery.path}: ")  # a server: not


def test_use_lock_puts_the_gallery_under_its_owners_lock(gallery, monkeypatch):
    owner = threading.RLock()
    gallery.use_lock(owner)
    reading, release = hold_reads(monkeypatch, gallery.model)
    enrolment = threading.Thread(target=gallery.enroll, args=("Ann", [photo((1, 0, 30))]))
    enrolment.start()
    assert reading.wait(60)
    with owner:  # the owner takes its lock while the photo is read: the photo is not stored
        release.set()
        enrolment.join(1.0)
        assert enrolment.is_alive()
        assert gallery._store.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0
    enrolment.join(60)
    assert [(p.name, p.faces) for p in gallery.people()] == [("Ann", 1)]


def test_a_switch_by_another_connection_refuses_the_stale_gallerys_writes(tmp_path):
    """A migration in another connection (a CLI process, or a server's job before the server
    reopens its gallery) switches the database: the still-open gallery must not store faces
    with the old model's embeddings, which no search would match."""
    from facenet.gallery import migrate as m

    from .test_gallery import fake_embedding
    from .test_gallery_migrate import other_model

    path = tmp_path / "g.db"
    with Gallery.create(path, FakeModel()) as stale:
        stale.enroll("Ann", [photo((1, 0, 30))])
        m.migrate(path, m.Target.of(other_model()))
        with pytest.raises(GalleryChangedError, match="moved to another model"):
            stale.enroll("Bob", [photo((2, 0, 30))])
        with pytest.raises(GalleryChangedError, match="moved to another model"):
            stale.add_embeddings("Bob", fake_embedding(2, 0)[None])
    with Gallery.open(path, other_model()) as g:
        assert [(p.name, p.faces) for p in g.people()] == [("Ann", 1)]
        assert g.index_status.startswith("rebuilt") and len(g.index) == 1


def test_a_library_switched_by_another_connection_refuses_the_batch(tmp_path):
    import sqlite3

    from facenet.people import Library

    from .people_support import memo_model, photos

    path = tmp_path / "lib.db"
    with Library.open(path, memo_model()) as library:
        library.add(photos("Colin_Powell", 1))
        with sqlite3.connect(path) as db:  # what a migration's switch does to the meta
            db.execute("UPDATE meta SET value = 'another' WHERE key = 'model_id'")
        with pytest.raises(GalleryChangedError, match="moved to another model"):
            library.add(photos("Tony_Blair", 1))
        count = library.gallery._store.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        assert count == 1

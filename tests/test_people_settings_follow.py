"""A long-lived people library (a server's) takes its settings changed by another process
(`facenet library settings`) at its next use, as the gallery takes its threshold: one `PRAGMA
data_version` per use, the meta table only when it moved; an invalid value written elsewhere is
the one-line error naming the repair, never used. Fake models; the server's in
test_server_people.py."""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from facenet.cli import main
from facenet.errors import LibraryError
from facenet.people import Library
from facenet.people import adding as adding_module
from facenet.people import library as library_module

from .test_gallery import FakeModel, photo
from .test_gallery_migrate import build


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def library(tmp_path):
    """A gallery file with people, used as a library first with its model (threshold 0.8)."""
    path = build(tmp_path)
    Library.open(path, FakeModel()).close()
    return path


@pytest.fixture
def decided(monkeypatch) -> list[tuple]:
    """(threshold, low_threshold, min_faces) of each recluster and add placement, in order."""
    seen: list[tuple] = []

    def spy_recluster(store, threshold, low_threshold, min_faces):
        seen.append((threshold, round(low_threshold, 6), min_faces))
        return library_module.ReclusterReport()

    def spy_assign(vectors, low, photos, existing, sums, threshold, low_threshold, min_faces):
        seen.append((threshold, round(low_threshold, 6), min_faces))
        return assign(vectors, low, photos, existing, sums, threshold, low_threshold, min_faces)

    assign = adding_module.assign_batch
    monkeypatch.setattr(library_module, "recluster", spy_recluster)
    monkeypatch.setattr(adding_module, "assign_batch", spy_assign)
    return seen


def test_an_open_library_takes_settings_set_by_another_process(library, decided, monkeypatch):
    import facenet.cli.gallery

    with Library.open(library, FakeModel(), create=False) as lib:
        lib.recluster()
        reads, meta = [], lib._store.meta
        monkeypatch.setattr(lib._store, "meta", lambda: reads.append(1) or meta())
        assert all(lib.threshold == 0.8 for _ in range(100)) and reads == []  # nothing moved
        run("library", "settings", library, "--threshold", "0.3", "--min-faces", "4")
        assert (lib.threshold, lib.threshold_source, lib.min_faces) == (0.3, "set", 4)
        assert len(reads) <= 2  # once for the gallery's threshold, once for the library's
        assert lib.min_faces == 4 and len(reads) <= 2
        lib.recluster()
        lib.add(photo((7, 1, 30)))
        found = lib.settings()
        assert (found.threshold, found.source, found.min_faces) == (0.3, "set", 4)
        run("gallery", "set-threshold", library, "0.6")  # set: kept, but now it would follow 0.6
        assert (lib.threshold, lib.settings().follows) == (0.3, 0.6)
        monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: FakeModel())
        run("library", "settings", library, "--from-model")  # followed again: the gallery's own
        lib.recluster()
    assert decided == [(0.8, 0.6, 2), (0.3, 0.225, 4), (0.3, 0.225, 4), (0.6, 0.45, 4)]


def test_a_session_value_holds_over_the_files(library, decided):
    with Library.open(library, create=False, threshold=0.01) as lib:
        run("library", "settings", library, "--threshold", "0.3", "--min-faces", "5")
        lib.recluster()
        assert lib.threshold_source == "session"
        lib.configure(min_faces=3)  # recorded: the file's settings from now on
        lib.recluster()
    assert decided == [(0.01, 0.0075, 5), (0.3, 0.225, 3)]


@pytest.mark.parametrize(
    "key, bad, repair",
    [("people_min_faces", "0", "--min-faces N"), ("people_threshold", "-1", "--threshold T")],
)
def test_an_invalid_value_written_elsewhere_is_refused_not_used(library, decided, key, bad, repair):
    with Library.open(library, FakeModel(), create=False) as lib:
        faces = len(lib.faces())
        with sqlite3.connect(library) as db:
            db.execute("UPDATE meta SET value = ? WHERE key = ?", (bad, key))
        db.close()
        for use in (lib.recluster, lib.settings, lambda: lib.add(photo((7, 1, 30)))):
            with pytest.raises(LibraryError, match="recorded people") as raised:
                use()
            message = str(raised.value)
            assert f"facenet library settings {library} {repair}" in message
            assert "\n" not in message
        assert len(lib.faces()) == faces and decided == []  # nothing read, stored or decided
        run("library", "settings", library, "--threshold", "0.5", "--min-faces", "3")
        lib.recluster()
    assert decided == [(0.5, 0.375, 3)]

"""The people library's settings (`facenet.people.settings`): the threshold follows the gallery
(its own threshold, else its model's) across migrations unless one is set; a set one is put aside
by a switch to another model and restored by a rollback; `Library.configure` and `facenet library
settings` show and change them; files written before the source was recorded. Fake models."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from facenet.cli import main
from facenet.errors import LibraryError
from facenet.gallery import Gallery
from facenet.gallery import migrate as m
from facenet.people import Library
from facenet.people import library as library_module

from .test_gallery import FakeModel
from .test_gallery_migrate import build


def other_model(threshold: float = 0.5) -> FakeModel:
    """Another model (24-d, other vectors) whose distances have another scale: threshold 0.5
    where the gallery's model (`FakeModel`) has 0.8."""
    model = FakeModel(name="other", dim=24)
    model.info = dataclasses.replace(model.info, threshold=threshold)
    return model


def used_threshold(path: Path, monkeypatch) -> float:
    """The threshold `recluster` runs at, on the library opened without a model."""
    seen = []

    def spy(store, threshold, low, min_faces):
        seen.append(threshold)
        return library_module.ReclusterReport()

    monkeypatch.setattr(library_module, "recluster", spy)
    with Library.open(path, create=False) as lib:
        lib.recluster()
    monkeypatch.undo()
    return seen[0]


def settings_of(path: Path, model=None) -> tuple[float, str]:
    with Library.open(path, model, create=False) as lib:
        return lib.threshold, lib.threshold_source


def meta(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, value FROM meta WHERE key LIKE '%people%'").fetchall()
    db.close()
    return dict(rows)


@pytest.fixture
def library(tmp_path) -> Path:
    """A gallery file with people, used as a library first with its model (threshold 0.8)."""
    path = build(tmp_path)
    Library.open(path, FakeModel()).close()
    return path


def test_a_followed_threshold_moves_with_a_migration_and_back(library, monkeypatch):
    assert settings_of(library) == (0.8, "model")
    preview = m.migrate(library, m.Target.of(other_model()), dry_run=True).people_library
    assert (preview["old_threshold"], preview["threshold"]) == (0.8, 0.5)
    report = m.migrate(library, m.Target.of(other_model()))
    assert report.people_library == {**preview}
    assert "people library: threshold 0.8000 -> 0.5000" in "\n".join(report.lines())
    assert "facenet library recluster" in report.people_library["note"]
    assert report.to_dict()["people_library"]["threshold"] == 0.5
    assert settings_of(library) == (0.5, "model")  # the new model's scale, not the old 0.8
    assert settings_of(library, other_model()) == (0.5, "model")
    assert used_threshold(library, monkeypatch) == 0.5
    m.rollback(library)
    assert settings_of(library) == (0.8, "model")
    assert used_threshold(library, monkeypatch) == 0.8


def test_a_set_threshold_is_put_aside_by_a_migration_and_restored_by_a_rollback(library):
    with Library.open(library, create=False) as lib:
        lib.configure(threshold=0.3)
        assert (lib.threshold, lib.threshold_source) == (0.3, "set")
        assert lib.low_threshold == pytest.approx(0.225)
    assert settings_of(library) == (0.3, "set")  # recorded: every later session
    report = m.migrate(library, m.Target.of(other_model()))
    assert "0.3000 was set on the old model's distances; put aside" in report.people_library["note"]
    assert settings_of(library) == (0.5, "model")
    with Library.open(library, create=False) as lib:  # set again on the new model
        lib.configure(threshold=0.4, min_faces=3)
    report = m.rollback(library)
    assert "restored: 0.3000" in report.people_library["note"]
    assert settings_of(library) == (0.3, "set")
    with Library.open(library, create=False) as lib:
        assert lib.min_faces == 3  # min_faces counts faces, whatever the model
        assert lib.configure(from_model=True).threshold == 0.8
    m.migrate(library, m.Target.of(other_model()))  # forward again: its set one is back
    assert settings_of(library) == (0.4, "set")


def test_the_gallerys_own_threshold_is_followed_unless_one_is_set(library):
    with Gallery.open(library) as g:
        g.set_threshold(0.6)
    with Library.open(library, create=False) as lib:
        assert (lib.threshold, lib.threshold_source) == (0.6, "gallery")
        assert lib.settings().follows == 0.6
        lib.configure(threshold=0.3)
    assert settings_of(library) == (0.3, "set")
    with Library.open(library, create=False) as lib:
        assert lib.settings().follows == 0.6
        lib.configure(from_model=True)
    with Gallery.open(library) as g:
        g.set_threshold(None)
    assert settings_of(library) == (0.8, "model")


def test_a_session_threshold_is_not_recorded_and_says_so(library, caplog):
    with caplog.at_level(logging.WARNING, logger="facenet.people.library"):
        with Library.open(library, FakeModel(), threshold=0.01, min_faces=4) as lib:
            assert (lib.threshold, lib.threshold_source, lib.min_faces) == (0.01, "session", 4)
    assert "for this session only" in caplog.text
    with Library.open(library, create=False) as lib:
        assert (lib.threshold, lib.threshold_source, lib.min_faces) == (0.8, "model", 2)


def test_a_threshold_given_on_creation_is_set(tmp_path):
    path = tmp_path / "lib.db"
    Library.open(path, FakeModel(), threshold=0.3, min_faces=3).close()
    assert meta(path)["people_threshold_source"] == "set"
    with Library.open(path, create=False) as lib:
        assert (lib.threshold, lib.threshold_source, lib.min_faces) == (0.3, "set", 3)


def test_configure_refuses_bad_values_and_changes_nothing(library):
    before = meta(library)
    with Library.open(library, create=False) as lib:
        for kwargs in ({"threshold": 0}, {"threshold": 4.5}, {"min_faces": 1}, {"min_faces": 2.5}):
            with pytest.raises(LibraryError, match="must be (in|an integer)"):
                lib.configure(**kwargs)
        with pytest.raises(LibraryError, match="not both"):
            lib.configure(threshold=0.3, from_model=True)
        assert (lib.threshold, lib.min_faces) == (0.8, 2)
    assert meta(library) == before


# -- files written before the threshold's source was recorded ----------------------------------


def old_file(path: Path, threshold: float) -> Path:
    """What facenet wrote before: the threshold recorded, not where it came from (nor the
    model's verification threshold, in a gallery never migrated)."""
    with sqlite3.connect(path) as db:
        db.execute(
            "DELETE FROM meta WHERE key IN ('people_threshold_source', 'verification_threshold')"
        )
        db.execute("UPDATE meta SET value = ? WHERE key = 'people_threshold'", (str(threshold),))
    db.close()
    return path


def test_an_old_file_recording_its_models_threshold_follows_it_from_now_on(library):
    old_file(library, 0.8)
    assert settings_of(library, FakeModel()) == (0.8, "model")  # no change for it
    assert meta(library)["people_threshold_source"] == "derived"  # decided once, recorded
    m.migrate(library, m.Target.of(other_model()))
    assert settings_of(library) == (0.5, "model")


def test_an_old_file_recording_another_threshold_keeps_it_as_set(library):
    old_file(library, 0.3)
    assert settings_of(library) == (0.3, "recorded")  # no model: nothing decided, nothing written
    assert "people_threshold_source" not in meta(library)
    assert settings_of(library, FakeModel()) == (0.3, "set")
    assert meta(library)["people_threshold_source"] == "set"
    m.migrate(library, m.Target.of(other_model()))
    assert settings_of(library) == (0.5, "model")
    m.rollback(library)
    assert settings_of(library) == (0.3, "set")


def test_an_old_file_migrated_before_the_fix_follows_the_new_model(tmp_path):
    """A migration by an older facenet left the old model's threshold behind: it was derived
    (it is the previous model's), so the library now follows the model it is on."""
    path = build(tmp_path)
    m.migrate(path, m.Target.of(other_model()))
    with Gallery.open(path) as g, g._store.transaction() as db:
        g._store.set_meta(db, {"people_threshold": 0.8, "people_min_faces": 2})
    assert settings_of(path) == (0.5, "model")


def test_an_old_file_switching_moves_its_threshold_too(library):
    old_file(library, 0.8)  # switched before any open decided where it came from
    report = m.migrate(library, m.Target.of(other_model()))
    assert report.people_library["threshold"] == 0.5
    assert settings_of(library) == (0.5, "model")


# -- facenet library settings -----------------------------------------------------------------


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_shows_and_changes_the_settings(library, monkeypatch):
    import facenet.cli.gallery

    assert "settings" in run("library", "--help").stdout
    shown = run("library", "settings", library)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == "threshold 0.8000: the model's verification threshold\nmin_faces 2\n"
    assert json.loads(run("library", "settings", library, "--json").stdout) == {
        "threshold": 0.8, "source": "model", "min_faces": 2, "follows": 0.8,
    }  # fmt: skip
    assert meta(library)["people_threshold"] == "0.8"  # showing changes nothing

    changed = run("library", "settings", library, "--threshold", "0.3", "--min-faces", "3")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout.splitlines() == [
        "threshold 0.3000: set for this library (following the gallery it would be 0.8000)",
        "min_faces 3",
    ]
    assert "was threshold 0.8000, min_faces 2" in changed.stderr
    assert f"facenet library recluster {library}` applies them" in changed.stderr
    assert settings_of(library) == (0.3, "set")

    monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: FakeModel())
    back = run("library", "settings", library, "--from-model", "--json")
    assert back.exit_code == 0, back.output
    found = json.loads(back.stdout)
    assert (found["threshold"], found["source"], found["was"]["threshold"]) == (0.8, "model", 0.3)
    assert settings_of(library) == (0.8, "model")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threshold", "0"], "Invalid value for '--threshold'"),
        (["--threshold", "4.5"], "Invalid value for '--threshold'"),
        (["--threshold", "nan"], "Invalid value for '--threshold'"),
        (["--min-faces", "1"], "Invalid value for '--min-faces'"),
        (["--threshold", "0.3", "--from-model"], "give --threshold or --from-model, not both"),
    ],
)
def test_cli_refuses_bad_settings_with_exit_2(library, args, message):
    before = meta(library)
    result = run("library", "settings", library, *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output
    assert meta(library) == before


def test_cli_settings_of_a_missing_library_is_one_line_exit_2(tmp_path):
    for args in ([], ["--from-model"], ["--threshold", "0.3"]):
        result = run("library", "settings", tmp_path / "none.db", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()


def test_cli_migration_prints_the_library_note(library, monkeypatch):
    import facenet.api

    new = other_model()
    monkeypatch.setattr(facenet.api.FaceNet, "load", staticmethod(lambda spec=None: new))
    result = run("gallery", "migrate", library, "--model", "other")
    assert result.exit_code == 0, result.output
    assert "people library: threshold 0.8000 -> 0.5000 (it follows the model)" in result.stdout


# -- an invalid recorded threshold ------------------------------------------------------------


def all_meta(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT key, value FROM meta").fetchall()
    db.close()
    return dict(rows)


def corrupt(path: Path, value) -> dict[str, str]:
    """The threshold as a hand edit or an older facenet may leave it, beside min_faces 3 and
    a put-aside threshold (settings a repair must keep); the whole meta table after."""
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'people_threshold'", (value,))
        db.execute("UPDATE meta SET value = '3' WHERE key = 'people_min_faces'")
        db.execute("INSERT INTO meta VALUES ('previous_people_threshold', '0.6')")
    db.close()
    return all_meta(path)


@pytest.mark.parametrize("bad", ["-0.5", "nan", "abc", "", "4.5", -1.0])
def test_an_invalid_recorded_threshold_says_how_to_repair_it_and_can_be(library, bad):
    """A bad recorded threshold stopped every open with a message naming no way out, and
    `settings --threshold` could not replace it (it opened the library first). Now one line
    naming the repair, which works and keeps every other setting."""
    before = corrupt(library, bad)
    repair = f"facenet library settings {library} --threshold T"
    with pytest.raises(LibraryError, match="recorded people threshold") as raised:
        Library.open(library, create=False)
    assert repair in str(raised.value) and "\n" not in str(raised.value)
    for args in ([], ["--min-faces", "4"]):  # showing, or changing only min_faces: refused
        result = run("library", "settings", library, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.stderr.count("\n") == 1 and repair in result.stderr, result.stderr
    assert all_meta(library) == before

    result = run("library", "settings", library, "--threshold", "0.3", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["threshold"], shown["min_faces"], shown["was"]["threshold"]) == (0.3, 3, None)
    assert "was an invalid threshold, min_faces 3" in result.stderr
    after = all_meta(library)
    assert (after.pop("people_threshold"), after.pop("people_threshold_source")) == ("0.3", "set")
    before.pop("people_threshold"), before.pop("people_threshold_source")
    assert after == before  # min_faces, the put-aside threshold, the gallery's own: kept
    assert settings_of(library) == (0.3, "set")


def test_an_invalid_recorded_threshold_is_repaired_by_following_the_model(library, monkeypatch):
    import facenet.cli.gallery

    corrupt(library, "nan")
    monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: FakeModel())
    result = run("library", "settings", library, "--from-model")
    assert result.exit_code == 0, result.output
    assert settings_of(library) == (0.8, "model") and meta(library)["people_min_faces"] == "3"


# -- an invalid recorded min_faces ------------------------------------------------------------


def corrupt_min_faces(path: Path, value) -> dict[str, str]:
    """A bad min_faces beside settings a repair must keep; the whole meta table after."""
    with Library.open(path, create=False) as lib:
        lib.configure(threshold=0.3)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'people_min_faces'", (value,))
        db.execute("INSERT INTO meta VALUES ('previous_people_threshold', '0.6')")
    db.close()
    return all_meta(path)


@pytest.mark.parametrize("bad", ["0", -3, "2.5", "abc", "", "inf"])
def test_an_invalid_recorded_min_faces_says_how_to_repair_it_and_can_be(library, bad):
    """A bad recorded min_faces stopped every open, `settings --min-faces` included, with a
    message naming no way out. Now one line naming the repair, which keeps every other setting."""
    before = corrupt_min_faces(library, bad)
    repair = f"facenet library settings {library} --min-faces N"
    with pytest.raises(LibraryError, match="recorded people min_faces") as raised:
        Library.open(library, create=False)
    assert repair in str(raised.value) and "\n" not in str(raised.value)
    for args in ([], ["--threshold", "0.4"]):  # showing, or changing only the threshold
        result = run("library", "settings", library, *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert result.stderr.count("\n") == 1 and repair in result.stderr, result.stderr
    assert all_meta(library) == before

    result = run("library", "settings", library, "--min-faces", "4", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["threshold"], shown["min_faces"], shown["was"]["min_faces"]) == (0.3, 4, None)
    assert "was threshold 0.3000, an invalid min_faces" in result.stderr
    after = all_meta(library)
    assert after.pop("people_min_faces") == "4"
    before.pop("people_min_faces")
    assert after == before  # the set threshold, the put-aside one, the gallery's own: kept
    with Library.open(library, create=False) as lib:
        assert (lib.threshold, lib.threshold_source, lib.min_faces) == (0.3, "set", 4)


def test_both_invalid_name_both_repairs_and_a_half_repair_is_refused(library, monkeypatch):
    corrupt_min_faces(library, "1")
    with sqlite3.connect(library) as db:
        db.execute("UPDATE meta SET value = 'nan' WHERE key = 'people_threshold'")
    db.close()
    before = all_meta(library)
    with pytest.raises(LibraryError, match="threshold .* and min_faces '1' are invalid") as raised:
        Library.open(library, create=False)
    assert f"facenet library settings {library} --threshold T --min-faces N" in str(raised.value)
    with Library.open(library, create=False, repair=True) as lib:  # opened to repair, not used
        assert (lib.settings().to_dict()["threshold"], lib.min_faces) == (None, None)
        with pytest.raises(LibraryError, match="--min-faces N"):
            lib.recluster()
        with pytest.raises(LibraryError, match="min_faces '1' is invalid"):
            lib.configure(threshold=0.5)  # would keep the bad min_faces
    assert all_meta(library) == before
    result = run("library", "settings", library, "--threshold", "0.5", "--min-faces", "3")
    assert result.exit_code == 0, result.output
    assert "was an invalid threshold, an invalid min_faces" in result.stderr
    with Library.open(library, create=False) as lib:
        assert (lib.threshold, lib.threshold_source, lib.min_faces) == (0.5, "set", 3)

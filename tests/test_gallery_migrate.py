"""Gallery storage of face sources, and model migration (`facenet.gallery.migrate`) with fake
models: what is kept, the switch, rollback, prune, resumption, flagged faces, a kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facenet.errors import GalleryError
from facenet.gallery import Gallery
from facenet.gallery import migrate as m
from facenet.gallery.crops import StoredCrop
from facenet.gallery.store import MIGRATIONS, Store

from .killing import kill_when
from .test_gallery import FakeModel, assert_index_matches_db, make_tree, photo, save

REPO = Path(__file__).resolve().parents[1]


def other_model(**kwargs) -> FakeModel:
    """A second fake model: other vectors (24-d), other id, the same people."""
    return FakeModel(name="other", dim=24, **kwargs)


def build(tmp_path: Path, people: int = 5, photos: int = 3) -> Path:
    path = tmp_path / "g.db"
    with Gallery.create(path, FakeModel()) as g:
        g.enroll_folder(make_tree(tmp_path / "people", people, photos), progress=False)
        g.rename("person_01", "Ada")
        g.merge("person_02", "person_03")
        g.remove_face(g.faces("person_04")[0].id)
    return path


def snapshot(path: Path) -> list[tuple]:
    """People, names, metadata and face ownership: what a migration must never change."""
    with Gallery.open(path) as g:
        return [(p.name, p.metadata, tuple(f.id for f in g.faces(p.name))) for p in g.people()]


def test_enrolment_keeps_photo_hash_box_and_crop(tmp_path):
    file = save(tmp_path / "ada.png", photo((1, 0, 30)))
    with Gallery.create(tmp_path / "g.db", FakeModel()) as g:
        g.enroll("Ada", [file, photo((1, 1, 30))])
        rows = g._store.db.execute("SELECT * FROM faces ORDER BY id").fetchall()
        assert [f.photo for f in g.faces()] == [str(file.resolve()), None]
        for row in rows:
            stored = g._store.crop(row["id"])
            crop = StoredCrop.from_row(stored["image"], stored["geometry"])
            box = crop.face_in_crop(json.loads(row["box"]), None).box
            image = crop.decode()
            assert 0 <= box[0] < box[2] <= image.shape[1] and 0 <= box[1] < box[3] <= image.shape[0]
            # the face's colour is where the box says, in the crop
            centre = image[int((box[1] + box[3]) / 2), int((box[0] + box[2]) / 2)]
            assert np.abs(centre.astype(int) - [10, 10 * (row["id"] - 1), 200]).max() < 12


def old_gallery(path: Path, monkeypatch, photo_file: Path) -> Path:
    """A gallery file as facenet wrote it before m002: one face of Ada, from `photo_file`."""
    from facenet.gallery import store as store_module
    from facenet.gallery.enrol import _file_hash

    model = FakeModel()
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    store = Store(path)
    store.migrate()
    monkeypatch.undo()
    face = model.represent(photo_file)[0]
    with store.transaction() as db:
        store.set_meta(db, {"model_id": model.model_id, "model_name": "fake",
                            "embedding_size": 32, "threshold": 0.8, "model_path": ""})  # fmt: skip
        person = store.add_person(db, "Ada", None)
        db.execute(
            "INSERT INTO faces (person_id, source, content_hash, box, score, embedding, model_id,"
            " created) VALUES (?, ?, ?, ?, 0.99, ?, ?, 'then')",
            (person, str(photo_file), _file_hash(photo_file, "x"), json.dumps(list(face.box)),
             face.embedding.tobytes(), model.model_id),
        )  # fmt: skip
    store.close()
    return path


def test_an_old_gallery_is_upgraded_in_place_and_migrates(tmp_path, monkeypatch):
    file = save(tmp_path / "ada.png", photo((1, 0, 30)))
    path = old_gallery(tmp_path / "old.db", monkeypatch, file)
    with Gallery.open(path, FakeModel()) as g:
        names = [r[0] for r in g._store.db.execute("SELECT name FROM _migrations")]
        assert names == [n for n, _ in MIGRATIONS]
        assert g.identify(photo((1, 1, 30)))[0].name == "Ada"
        assert g._store.crop(g.faces()[0].id) is None  # nothing to cut a crop from
        g.enroll("Bob", photo((2, 0, 30)))
        assert g._store.crop(g.faces("Bob")[0].id) is not None
    new = other_model()
    report = m.migrate(path, m.Target.of(new))
    assert report.compared == 2 and not report.flagged
    assert [(f["person"], f["note"]) for f in report.from_crop] == [
        ("Bob", "no photo file (enrolled from an image in memory)")
    ]
    with Gallery.open(path, new) as g:
        assert g.identify(photo((1, 3, 30)))[0].name == "Ada"
        assert g._store.crop(g.faces("Ada")[0].id) is not None  # backfilled from the photo


def test_migrate_switches_and_keeps_people_then_rolls_back_exactly(tmp_path):
    path = build(tmp_path)
    before = snapshot(path)
    with Gallery.open(path, FakeModel()) as g:
        old_vectors = {f.id: f.embedding for f in g.faces()}
        old_answer = g.identify(photo((5, 9, 30)))[0]
    new = other_model()
    report = m.migrate(path, m.Target.of(new))
    assert report.compared == len(old_vectors) and not report.flagged
    assert snapshot(path) == before
    with pytest.raises(GalleryError, match="holds embeddings of model 'other'"):
        Gallery.open(path, FakeModel())
    with Gallery.open(path, new) as g:
        assert g.index_status.startswith("rebuilt") and g.embedding_size == 24
        assert_index_matches_db(g)
        assert g.identify(photo((1, 7, 30)))[0].name == "Ada"
        assert g.identify(photo((2, 7, 30)))[0].name == "person_03"  # the merge holds
    with pytest.raises(GalleryError, match="already uses"):
        m.migrate(path, m.Target.of(new))

    m.rollback(path)
    assert snapshot(path) == before
    with Gallery.open(path, FakeModel()) as g:
        assert {f.id: f.embedding.tobytes() for f in g.faces()} == {
            i: v.tobytes() for i, v in old_vectors.items()
        }
        again = g.identify(photo((5, 9, 30)))[0]
        assert (again.name, again.distance) == (old_answer.name, old_answer.distance)


def test_prune_deletes_the_kept_embeddings(tmp_path):
    path = build(tmp_path)
    m.migrate(path, m.Target.of(other_model()))
    assert m.prune(path) == len(snapshot_faces(path))
    with pytest.raises(GalleryError, match="nothing to roll back"):
        m.rollback(path)


def test_migrate_and_rollback_take_batch_sizes_1_to_1024_only(tmp_path):
    """`migrate` checked only >= 1 (10**9 faces per batch were taken). Now 1..1024, as the
    API's other entry points, one line, before anything is embedded."""
    from facenet.errors import FaceNetError

    path = build(tmp_path)
    for size in (0, 1025, 10**9):
        with pytest.raises(FaceNetError, match=rf"^batch_size must be 1\.\.1024; got {size}$"):
            m.migrate(path, m.Target.of(other_model()), batch_size=size)
    with Gallery.open(path) as g:
        assert g._store.db.execute("SELECT COUNT(*) FROM face_embeddings").fetchone()[0] == 0
    m.migrate(path, m.Target.of(other_model()), batch_size=1024)
    with pytest.raises(FaceNetError, match=r"^batch_size must be 1\.\.1024; got 1025$"):
        m.rollback(path, batch_size=1025)
    with Gallery.open(path) as g:
        assert g.model_id == other_model().model_id


def snapshot_faces(path: Path) -> list[int]:
    with Gallery.open(path) as g:
        return [f.id for f in g.faces()]


def test_dry_run_switches_nothing_and_its_work_is_reused(tmp_path):
    path = build(tmp_path)
    new = other_model()
    report = m.migrate(path, m.Target.of(new), dry_run=True)
    assert new.calls == report.faces == len(snapshot_faces(path))
    with Gallery.open(path, FakeModel()) as g:  # still the old model
        assert g.identify(photo((1, 2, 30)))[0].name == "Ada"
    again = other_model()
    m.migrate(path, m.Target.of(again))
    assert again.calls == 0  # every face was embedded by the dry run


def test_faces_enrolled_after_the_switch_need_the_old_model_to_roll_back(tmp_path):
    path = build(tmp_path)
    new = other_model()
    m.migrate(path, m.Target.of(new))
    with Gallery.open(path, new) as g:
        g.enroll("Zed", photo((9, 0, 30)))
    with pytest.raises(GalleryError, match="1 faces need the model"):
        m.rollback(path)
    m.rollback(path, FakeModel())
    with Gallery.open(path, FakeModel()) as g:
        assert g.identify(photo((9, 1, 30)))[0].name == "Zed"
        assert_index_matches_db(g)


def test_a_face_that_cannot_be_reembedded_is_kept_and_flagged(tmp_path):
    path = build(tmp_path)
    with Gallery.open(path, FakeModel()) as g:
        (ready,) = g.add_embeddings("Ready", FakeModel().represent(photo((7, 0, 30)))[0].embedding)
        total = len(g)
    new = other_model()
    report = m.migrate(path, m.Target.of(new))
    assert [f["face_id"] for f in report.flagged] == [ready]
    assert "ready embedding" in report.flagged[0]["note"]
    with Gallery.open(path, new) as g:
        assert len(g) == total and len(g.index) == total - 1  # kept, not searchable
        assert [p.name for p in g.people()].count("Ready") == 1
        assert g.faces("Ready")[0].model_id == FakeModel().model_id
        assert g.unsearched_faces() == 1


def test_a_file_named_upload_colon_is_a_photo_and_an_upload_label_never_a_file(
    tmp_path, monkeypatch
):
    """Which face has a photo is read from what was stored, not from the `upload:` prefix: a
    legacy face (before m002: its path only in `source`) read from the file `upload:ada.png`
    is re-embedded from that file, and its path is recorded; a face enrolled from memory as
    `upload:ada.png` is re-embedded from its crop, though a file of that very name is there."""
    monkeypatch.chdir(tmp_path)
    file = save(Path("upload:ada.png"), photo((1, 0, 30)))
    with pytest.MonkeyPatch.context() as patch:  # its undo() keeps the working directory
        path = old_gallery(tmp_path / "old.db", patch, file)
    with Gallery.open(path, FakeModel()) as g:
        g.enroll("Bob", photo((2, 0, 30)), labels=["ada.png"])
        sources = [r[0] for r in g._store.db.execute("SELECT source FROM faces")]
    assert sources == ["upload:ada.png"] * 2  # one spelling, two kinds
    report = m.migrate(path, m.Target.of(other_model()), dry_run=True)
    assert not report.flagged
    assert [(f["person"], f["note"]) for f in report.from_crop] == [
        ("Bob", "no photo file (enrolled from an image in memory)")
    ]
    with Gallery.open(path) as g:
        origins = dict(g._store.db.execute(
            "SELECT p.name, e.origin FROM face_embeddings e JOIN faces f ON f.id = e.face_id "
            "JOIN people p ON p.id = f.person_id"
        ).fetchall())  # fmt: skip
        photos = dict(g._store.db.execute(
            "SELECT p.name, f.photo FROM faces f JOIN people p ON p.id = f.person_id"
        ).fetchall())  # fmt: skip
    assert origins == {"Ada": "photo", "Bob": "crop"}
    assert photos == {"Ada": str(tmp_path.resolve() / "upload:ada.png"), "Bob": None}


def test_moved_photo_of_a_legacy_face_is_flagged_with_its_reason(tmp_path):
    path = build(tmp_path)
    with Gallery.open(path) as g:
        face = g.faces("Ada")[0]
        g._store.db.execute("DELETE FROM face_crops WHERE face_id = ?", (face.id,))
    Path(face.source).rename(Path(face.source).with_suffix(".moved"))
    report = m.migrate(path, m.Target.of(other_model()), dry_run=True)
    assert [(f["face_id"], f["person"]) for f in report.flagged] == [(face.id, "Ada")]
    assert (
        "is missing" in report.flagged[0]["note"] and "no stored crop" in report.flagged[0]["note"]
    )


def test_report_finds_a_wrong_merge_and_a_duplicate(tmp_path):
    path = tmp_path / "g.db"
    with Gallery.create(path, FakeModel()) as g:
        g.enroll_folder(make_tree(tmp_path / "people", 4, 2), progress=False)
        g.merge("person_01", "person_02")  # a wrong merge
        g.enroll("Copy of 3", photo((3, 5, 30)))  # a duplicate person
    report = m.migrate(path, m.Target.of(other_model()), dry_run=True)
    assert [w["person"] for w in report.wrong_merges] == ["person_02"]
    assert [sorted(d["people"]) for d in report.duplicates] == [["Copy of 3", "person_03"]]
    assert report.nearest_changed == []  # the fake models agree on who is nearest


# -- interruption ------------------------------------------------------------------------------

MIGRATE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from facenet.gallery import migrate as m
    from tests.test_gallery import FakeModel

    m.migrate(sys.argv[1], m.Target.of(FakeModel(name="other", dim=24, delay=0.03)), batch_size=4)
    """
)


def embedded(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT COUNT(*) FROM face_embeddings").fetchone()[0]
    finally:
        db.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_killed_migration_leaves_the_old_model_usable_and_resumes(tmp_path):
    path = build(tmp_path, people=6, photos=10)
    total = len(snapshot_faces(path))
    script = tmp_path / "migrate.py"
    script.write_text(MIGRATE_SCRIPT)
    returncode = kill_when(
        [sys.executable, str(script), str(path), str(REPO)],
        lambda: embedded(path) >= 12,
        "migration",
    )
    assert returncode == -signal.SIGKILL
    done = embedded(path)
    assert 12 <= done < total and done % 4 == 0  # whole batches only
    with Gallery.open(path, FakeModel()) as g:  # the old model still answers
        assert g.identify(photo((1, 9, 30)))[0].name == "Ada"
        assert_index_matches_db(g)
    new = other_model()
    m.migrate(path, m.Target.of(new))
    assert new.calls == total - done  # resumed, not restarted
    with Gallery.open(path, new) as g:
        assert g.identify(photo((1, 9, 30)))[0].name == "Ada"


def test_stop_event_interrupts_between_batches(tmp_path):
    import threading

    path = build(tmp_path)
    stop = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        stop.set()

    with pytest.raises(m.Interrupted):
        m.migrate(path, m.Target.of(other_model()), batch_size=3, progress=progress, stop=stop)
    assert calls == [3] and embedded(path) == 3


def test_a_calibrated_identification_threshold_is_carried_over(tmp_path):
    from facenet.gallery.migrate_report import transfer_threshold

    old, new = np.array([0.5, 1.0, 1.5, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])
    assert transfer_threshold(old, new, 1.0) == pytest.approx(2.5)  # half the strangers in
    assert 0.999 < transfer_threshold(old, new, 0.1) < 1.0  # none let in: under the closest

    path = build(tmp_path)
    report = m.migrate(path, m.Target.of(other_model()), dry_run=True)
    assert report.new_identification_threshold is None  # not calibrated: nothing to carry
    with Gallery.open(path) as g, g._store.transaction() as db:
        g._store.set_meta(db, {"calibrated_threshold": 0.5})
    report = m.migrate(path, m.Target.of(other_model()))
    assert report.new_identification_threshold is not None
    with Gallery.open(path) as g:
        assert g.calibrated_threshold == report.new_identification_threshold
    m.rollback(path)
    with Gallery.open(path) as g:
        assert g.calibrated_threshold == 0.5  # the old model's calibration, exactly


def test_cli_interrupted_migration_exits_130_and_resumes(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import facenet.api
    from facenet.cli import main

    path = build(tmp_path)
    new = other_model()
    monkeypatch.setattr(facenet.api.FaceNet, "load", staticmethod(lambda spec=None: new))
    real_embed = m.reembed_face

    def interrupt_after_one_batch(store, model, row):
        if new.calls >= 4:
            raise KeyboardInterrupt
        return real_embed(store, model, row)

    monkeypatch.setattr(m, "reembed_face", interrupt_after_one_batch)
    args = ["gallery", "migrate", str(path), "--model", "other", "--batch-size", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130 and "run the same command to resume" in result.output
    assert embedded(path) == 4
    monkeypatch.setattr(m, "reembed_face", real_embed)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert new.calls == len(snapshot_faces(path))  # 4 + the rest: resumed, not restarted
    with Gallery.open(path, new) as g:
        assert g.identify(photo((1, 9, 30)))[0].name == "Ada"


def test_a_switch_that_would_flag_every_face_is_refused(tmp_path, monkeypatch):
    """A gallery of ready embeddings only (`enroll --from-parquet`): nothing can be re-embedded,
    so switching would leave the new index empty; the CLI refuses (exit 2), changing nothing."""
    from click.testing import CliRunner

    import facenet.api
    from facenet.cli import main

    path = tmp_path / "g.db"
    old = FakeModel()
    with Gallery.create(path, old) as g:
        for person in (1, 2):
            g.add_embeddings(f"p{person}", old.represent(photo((person, 0, 30)))[0].embedding)
    new = other_model()
    monkeypatch.setattr(facenet.api.FaceNet, "load", staticmethod(lambda spec=None: new))
    args = ["gallery", "migrate", str(path), "--model", "other"]
    result = CliRunner().invoke(main, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "without --dry-run the switch would be refused" in result.stderr
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "not one of the 2 faces" in result.stderr
    with Gallery.open(path, old) as g:  # still the old model, identifying as before
        assert g.identify(photo((2, 1, 30)))[0].name == "p2"
        assert g._store.db.execute("SELECT COUNT(*) FROM face_embeddings").fetchone()[0] == 0


@pytest.mark.parametrize("value", ["--dry-run", "-x"])
def test_cli_model_value_that_looks_like_an_option_is_refused(tmp_path, monkeypatch, value):
    """`--model` was plain text: `migrate g.db --model --dry-run` took `--dry-run` for the
    model (and switched for real, no dry run). Now a path option like every other `--model`:
    one Error line, exit 2, nothing loaded, the gallery byte for byte as it was."""
    from click.testing import CliRunner

    import facenet.api
    from facenet.cli import main

    def loaded(spec=None):
        raise AssertionError(f"a model was loaded: {spec!r}")

    path = build(tmp_path)
    before = path.read_bytes()
    monkeypatch.setattr(facenet.api.FaceNet, "load", staticmethod(loaded))
    result = CliRunner().invoke(main, ["gallery", "migrate", str(path), "--model", value])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "looks like an option, not a path" in errors[0], result.stderr
    assert "'--model'" in errors[0] and "Traceback" not in result.output
    assert path.read_bytes() == before and embedded(path) == 0

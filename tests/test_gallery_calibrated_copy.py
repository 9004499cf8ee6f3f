"""A calibrated copy of a gallery's model (`facenet calibrate`: the same weights in another file,
so another model id) is taken as the gallery's model, through the id it records
(`extra["calibration"]["embeddings_of"]`); any other model is still refused. Fake models: what
is checked is the ids, the records and the thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from facenet.calibrate import Calibration, calibrated_info
from facenet.errors import GalleryError
from facenet.gallery import Gallery
from facenet.gallery import migrate as m
from facenet.people import Library

from .test_gallery import FakeModel, make_tree, photo


def calibrated_copy(model, threshold: float, tag: str = "copy", *, record: bool = True):
    """What `facenet calibrate` makes of `model`: its info with the threshold (and, with
    `record`, the model whose embeddings it makes), under another file's id; same embeddings."""
    copy = FakeModel(name=model.info.name, dim=model.info.embedding_size)
    calibration = Calibration(threshold, 0.9, 10, "dev.tsv", "pairs")
    copy.info = calibrated_info(model.info, calibration, of=model if record else None)
    copy.model_id = f"{model.model_id[:10]}{tag}"[:16]
    return copy


@pytest.fixture
def gallery_path(tmp_path):
    path = tmp_path / "g.db"
    with Gallery.create(path, FakeModel()) as g:
        g.enroll_folder(make_tree(tmp_path / "people", 3, 2), progress=False)
        g.rename("person_01", "Ada")
    return path


def test_a_calibrated_copy_is_the_gallerys_model_and_its_threshold_decides(gallery_path):
    original = FakeModel()
    copy = calibrated_copy(original, 0.3)
    assert copy.info.embeddings_of == original.model_id != copy.model_id
    with Gallery.open(gallery_path, copy) as g:  # refused before: another model id
        assert g.model is copy and g.threshold == 0.3  # the copy's, not the 0.8 recorded
        assert g.identify(photo((1, 5, 30)))[0].name == "Ada"
        report = g.enroll("Bob", [photo((7, 0, 30))])
        assert len(report.enrolled) == 1
        ids = {r[0] for r in g._store.db.execute("SELECT DISTINCT model_id FROM faces")}
        assert ids == {original.model_id}  # recorded under the gallery's model, searched alike
        assert g.identify(photo((7, 1, 30)))[0].name == "Bob"
    with Gallery.open(gallery_path, original) as g:  # the gallery's own model still fits
        assert (g.model_id, g.threshold) == (original.model_id, 0.8)
        assert g.identify(photo((7, 1, 30)))[0].name == "Bob"
        g.set_threshold(0.5)  # the gallery's own wins over any model's
    with Gallery.open(gallery_path, copy) as g:
        assert g.threshold == 0.5


def test_copies_of_copies_and_of_the_model_a_gallery_was_made_with(tmp_path):
    original = FakeModel()
    first = calibrated_copy(original, 0.3, "first")
    second = calibrated_copy(first, 0.4, "second")  # a copy of the copy: still the original's
    assert second.info.embeddings_of == original.model_id
    rechosen = calibrated_copy(original, 0.2, "again")
    path = tmp_path / "g.db"
    Gallery.create(path, first).close()  # made with a copy: the original and siblings fit too
    for model in (first, original, second, rechosen):
        with Gallery.open(path, model) as g:
            assert g.threshold == model.info.open_set_threshold
    assert Gallery.open(path).embeddings_of == original.model_id


@pytest.mark.parametrize(
    "stranger",
    [
        lambda: FakeModel(name="other"),  # another model
        lambda: calibrated_copy(FakeModel(name="other"), 0.3),  # a copy of another model
        lambda: calibrated_copy(FakeModel(), 0.3, record=False),  # a copy recording nothing
        lambda: calibrated_copy(FakeModel(dim=24), 0.3),  # the id, but another size
    ],
)
def test_any_other_model_is_still_refused(gallery_path, stranger):
    model = stranger()
    with pytest.raises(GalleryError, match="holds embeddings of model 'fake'"):
        Gallery.open(gallery_path, model)
    with pytest.raises(GalleryError, match="holds embeddings of model 'fake'"):
        Library.open(gallery_path, model)
    with Gallery.open(gallery_path) as g:
        with pytest.raises(GalleryError, match="nor a calibrated copy|makes 24-d"):
            g.threshold_of(model)
        assert g.calibrated_threshold is None


def test_set_threshold_from_the_copy_and_the_library_opens_with_it(gallery_path):
    copy = calibrated_copy(FakeModel(), 0.3)
    with Gallery.open(gallery_path) as g:
        assert g.threshold_of(copy) == 0.3
    with Library.open(gallery_path, copy) as lib:  # first used with the copy: its threshold
        assert lib.gallery.model is copy and lib.threshold == 0.3
    with Library.open(gallery_path, FakeModel()) as lib:  # recorded then: the library's own
        assert lib.threshold == 0.3


def test_a_migration_records_the_new_models_origin_and_a_rollback_the_old(gallery_path):
    original, other = FakeModel(), FakeModel(name="other")  # same size, other embeddings
    m.migrate(gallery_path, m.Target.of(other))
    with pytest.raises(GalleryError, match="holds embeddings of model 'other'"):
        Gallery.open(gallery_path, calibrated_copy(original, 0.3))
    with Gallery.open(gallery_path, calibrated_copy(other, 0.3)) as g:
        assert g.embeddings_of == g.model_id == other.model_id
    m.rollback(gallery_path)
    with Gallery.open(gallery_path, calibrated_copy(original, 0.3)) as g:
        assert g.model_id == original.model_id


@pytest.mark.parametrize("dry_run", [False, True])
def test_migrating_to_a_calibrated_copy_is_refused_in_one_line(gallery_path, monkeypatch, dry_run):
    """A copy makes the gallery's embeddings: migrating to it would re-embed every face into the
    same vectors. Refused (exit 2, nothing embedded, nothing switched), pointing to
    set-threshold; the gallery opens with the copy as it is."""
    from click.testing import CliRunner

    import facenet.api
    from facenet.cli import main

    copy = calibrated_copy(FakeModel(), 0.3)
    monkeypatch.setattr(facenet.api.FaceNet, "load", staticmethod(lambda spec=None: copy))
    args = ["gallery", "migrate", str(gallery_path), "--model", "copy.keras"]
    result = CliRunner().invoke(main, [*args, "--dry-run"] if dry_run else args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "same embeddings" in result.output
    pointer = f"facenet gallery set-threshold {gallery_path} --from-model "
    assert pointer in result.output and result.output.rstrip().endswith("copy.keras")
    with Gallery.open(gallery_path) as g:
        assert g.model_id == FakeModel().model_id and "previous_model_id" not in g._store.meta()
        assert g._store.db.execute("SELECT COUNT(*) FROM face_embeddings").fetchone()[0] == 0
    with Gallery.open(gallery_path, copy) as g:
        assert g.threshold == 0.3


def test_a_gallery_made_with_a_copy_refuses_migrating_to_its_model(tmp_path):
    original = FakeModel()
    copy = calibrated_copy(original, 0.3)
    path = tmp_path / "g.db"
    Gallery.create(path, copy).close()
    for model in (original, calibrated_copy(original, 0.2, "sibling")):
        with pytest.raises(GalleryError, match="same embeddings"):
            m.migrate(path, m.Target.of(model))


def test_a_rollback_takes_a_calibrated_copy_of_the_previous_model(gallery_path):
    """The model a rollback needs (for faces enrolled since the switch) may be a calibrated copy
    of the previous model: it makes that model's embeddings. It was refused (another id); a
    model that makes other embeddings still is, naming the previous model."""
    original, other = FakeModel(), FakeModel(name="other")
    m.migrate(gallery_path, m.Target.of(other))
    with Gallery.open(gallery_path, other) as g:
        g.enroll("Bob", [photo((7, 0, 30))])  # not embedded by the previous model yet
    for stranger in (FakeModel(name="third"), calibrated_copy(other, 0.3)):
        with pytest.raises(GalleryError, match="the previous model is 'fake'"):
            m.rollback(gallery_path, stranger)
    m.rollback(gallery_path, calibrated_copy(original, 0.3))
    with Gallery.open(gallery_path, original) as g:
        assert g.model_id == original.model_id  # the previous model's record, not the copy's
        assert {r[0] for r in g._store.db.execute("SELECT model_id FROM faces")} == {
            original.model_id
        }
        assert g.identify(photo((7, 1, 30)))[0].name == "Bob"


def test_retrying_flagged_faces_is_not_taken_for_a_calibrated_copy(tmp_path):
    """Faces flagged by a switch (their photo was away) are retried by migrating to the same
    model again once the photo is back; the copy rule refused that as "the same embeddings"."""
    path = tmp_path / "g.db"
    with Gallery.create(path, FakeModel()) as g:
        g.enroll_folder(make_tree(tmp_path / "people", 2, 2), progress=False)
        face = g.faces()[0]
        g._store.db.execute("DELETE FROM face_crops WHERE face_id = ?", (face.id,))
    moved = Path(face.source).rename(Path(face.source).with_suffix(".away"))
    other = FakeModel(name="other")
    assert [f["face_id"] for f in m.migrate(path, m.Target.of(other)).flagged] == [face.id]
    moved.rename(face.source)
    report = m.migrate(path, m.Target.of(other))  # the retry
    assert not report.flagged
    with Gallery.open(path, other) as g:
        assert {f.model_id for f in g.faces()} == {other.model_id}

"""The closed-set classifier: train, save, load, predict; model checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.classify import ClassifierError, FaceClassifier, predict_photo, train
from facenet.cli import main

from .test_cluster import blobs
from .test_gallery import FakeModel, fake_embedding, make_tree, photo, save


@pytest.mark.parametrize("kind", ["svm", "knn"])
def test_fit_save_load_predict_round_trip(tmp_path, kind):
    x, y = blobs(people=4, per_person=6, seed=1)
    names = np.array(["ada", "bob", "cy", "di"])[y]
    classifier = FaceClassifier.fit(x[:20], names[:20], kind=kind, model_id="m1", model_name="t")
    path = classifier.save(tmp_path / "c.joblib")
    loaded = FaceClassifier.load(path)
    assert loaded.classes == ["ada", "bob", "cy", "di"] and loaded.kind == kind
    predictions = loaded.predict(x[20:])
    assert [p.label for p in predictions] == list(names[20:])
    assert all(0.5 < p.probability <= 1.0 for p in predictions)
    assert [p.label for p in loaded.predict(x[20:], min_probability=1.01)] == ["unknown"] * 4
    with pytest.raises(ClassifierError, match="expects 64-d"):
        loaded.predict(np.ones((1, 8)))


def test_training_errors(tmp_path):
    x, y = blobs(people=2, per_person=3)
    with pytest.raises(ClassifierError, match="two people"):
        FaceClassifier.fit(x[:3], ["a"] * 3)
    with pytest.raises(ClassifierError, match="at least 2 photos per person"):
        FaceClassifier.fit(x[:3], ["a", "a", "b"])
    assert FaceClassifier.fit(x[:3], ["a", "a", "b"], kind="knn").classes == ["a", "b"]
    with pytest.raises(ValueError, match="kind must be one of"):
        FaceClassifier.fit(x, y, kind="forest")
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(ClassifierError, match="not a facenet classifier"):
        FaceClassifier.load(tmp_path / "junk")


def test_train_on_folder_and_predict_photos(tmp_path):
    model = FakeModel()
    root = make_tree(tmp_path / "people", people=3, photos=3)
    save(root / "person_01" / "blank.png", np.zeros((20, 20, 3), np.uint8))
    classifier, data = train(model, root, kind="svm")
    assert len(data.labels) == 9 and [r for _, r in data.skipped] == ["no face found"]
    results = predict_photo(classifier, model, photo((3, 8, 30), (1, 8, 20)))
    assert [p.label for _, p in results] == ["person_03", "person_01"]
    np.testing.assert_allclose(results[0][0].embedding, fake_embedding(3, 8))
    with pytest.raises(ClassifierError, match="retrain"):
        predict_photo(classifier, FakeModel(name="other"), photo((1, 0, 30)))


def test_cli_train_and_predict(tmp_path, monkeypatch):
    import facenet.cli.classify as cli_module

    monkeypatch.setattr(cli_module, "load_model", lambda path: FakeModel())
    root = make_tree(tmp_path / "people", people=3, photos=3)
    out = tmp_path / "c.joblib"
    runner = CliRunner()
    result = runner.invoke(
        main, ["classify", "train", str(root), "--out", str(out), "--kind", "knn"]
    )
    assert result.exit_code == 0, result.output
    assert "on 9 faces of 3 people" in result.output
    query = save(tmp_path / "q.png", photo((2, 7, 30)))
    result = runner.invoke(main, ["classify", "predict", str(query), "-c", str(out), "--json"])
    assert result.exit_code == 0, result.output
    (face,) = json.loads(result.output)["faces"]
    assert face["label"] == "person_02" and face["probability"] > 0.5
    result = runner.invoke(main, ["classify", "predict", str(query), "-c", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such classifier file" in result.output


def test_a_calibrated_copy_of_the_training_model_is_taken_and_others_refused(tmp_path):
    """`facenet calibrate` writes the same weights into another file (another model id, the
    first one recorded): the classifier takes it, both ways round, as galleries do."""
    from .test_gallery_calibrated_copy import calibrated_copy

    original = FakeModel()
    copy = calibrated_copy(original, 0.3)
    root = make_tree(tmp_path / "people", people=3, photos=3)
    for trained_with, used_with in ((original, copy), (copy, original), (copy, copy)):
        classifier, _ = train(trained_with, root, kind="knn")
        classifier.save(tmp_path / "c.joblib")
        loaded = FaceClassifier.load(tmp_path / "c.joblib", used_with)  # refused before
        results = predict_photo(loaded, used_with, photo((3, 8, 30)))
        assert [p.label for _, p in results] == ["person_03"]
        for other in (FakeModel(name="other"), calibrated_copy(FakeModel(name="other"), 0.3)):
            with pytest.raises(ClassifierError, match="retrain"):
                FaceClassifier.load(tmp_path / "c.joblib", other)


def test_cli_train_refuses_an_out_that_is_one_of_its_photos(tmp_path, monkeypatch):
    """`-o` naming a training photo (a slip of the shell) used to replace the photo with the
    pickle; it is refused before any photo is embedded, the photo kept."""
    import facenet.cli.classify as cli_module

    loaded = []
    monkeypatch.setattr(cli_module, "load_model", lambda path: loaded.append(path) or FakeModel())
    root = make_tree(tmp_path / "people", people=2, photos=2)
    victim = root / "person_01" / "000.png"
    before = victim.read_bytes()
    result = CliRunner().invoke(main, ["classify", "train", str(root), "-o", str(victim)])
    assert result.exit_code == 2, result.output
    assert "is one of the inputs" in result.output and victim.read_bytes() == before
    assert loaded == []  # refused before the model loads, not after embedding every photo


def test_cli_train_lists_the_skipped_photos_when_training_then_fails(tmp_path, monkeypatch):
    """Two people, one whose photos all fail: the error ("needs at least two people") used to
    come alone, as if ROOT held one person; the skipped photos are listed before it."""
    import facenet.cli.classify as cli_module

    monkeypatch.setattr(cli_module, "load_model", lambda path: FakeModel())
    root = make_tree(tmp_path / "people", people=1, photos=2)
    save(root / "person_02" / "blank.png", np.zeros((20, 20, 3), np.uint8))
    (root / "person_02" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "c.joblib"
    result = CliRunner().invoke(main, ["classify", "train", str(root), "-o", str(out)])
    assert result.exit_code == 2 and not out.exists(), result.output
    assert "blank.png: no face found" in result.output and "broken.jpg: unreadable" in result.output
    assert result.output.rstrip().endswith("a classifier needs at least two people")


def test_cli_predict_with_another_model_says_to_pass_the_training_model(tmp_path, monkeypatch):
    """A classifier trained with `--model X` and used without it: the error used to say only
    "retrain it", when giving the model it was trained with is the fix."""
    import facenet.cli.classify as cli_module

    models = {"trained": FakeModel(), "other": FakeModel(name="other")}
    monkeypatch.setattr(cli_module, "load_model", lambda path: models[path or "other"])
    root = make_tree(tmp_path / "people", people=2, photos=2)
    out = tmp_path / "c.joblib"
    runner = CliRunner()
    args = ["classify", "train", str(root), "-o", str(out), "--kind", "knn", "-m", "trained"]
    assert runner.invoke(main, args).exit_code == 0
    query = save(tmp_path / "q.png", photo((2, 7, 30)))
    result = runner.invoke(main, ["classify", "predict", str(query), "-c", str(out)])
    assert result.exit_code == 2, result.output
    assert "'fake'" in result.output and "use the model it was trained with (--model)" in (
        result.output
    )


def test_cli_train_svm_with_one_photo_of_someone_names_the_option(tmp_path, monkeypatch):
    """The SVM's "at least 2 photos per person" error named the API's `kind='knn'`; on the
    command line the way out is `--kind knn`."""
    import facenet.cli.classify as cli_module

    monkeypatch.setattr(cli_module, "load_model", lambda path: FakeModel())
    root = make_tree(tmp_path / "people", people=2, photos=1)
    result = CliRunner().invoke(main, ["classify", "train", str(root), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "at least 2 photos per person" in result.output
    assert "--kind knn" in result.output

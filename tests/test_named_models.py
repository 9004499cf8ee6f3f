"""The bundled models: picked by name, each carrying what it needs; the default on the examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facenet import FaceNet, ModelNotFoundError
from facenet.catalog import DEFAULT_MODEL, MODELS, WEIGHTS_DIR, measurements
from facenet.cli import main
from facenet.metadata import ALIGNMENT_MODES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def model():
    return FaceNet.load()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_named_model_loads_and_embeds_unit_rows(name):
    model = FaceNet.load(name)
    assert model.name == name and Path(model.source).parent == WEIGHTS_DIR
    assert model.embedder.runtime.startswith("onnxruntime")  # the fast, TensorFlow-free path
    info = model.info
    assert info.threshold is not None  # calibrated on LFW View 1
    assert info.alignment in ALIGNMENT_MODES
    assert "calibration" in info.extra
    emb = model.embed([EXAMPLES / "a_1.jpg", EXAMPLES / "b_1.jpg"])
    assert emb.shape == (2, 128) == (2, model.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert Path(model.source).stat().st_size <= 20_000_000


def test_default_is_the_most_accurate_bundled_model(model):
    assert model.name == DEFAULT_MODEL
    figures = measurements()
    assert set(figures) == set(MODELS)
    accuracy = {name: figures[name]["lfw_view2"]["accuracy"] for name in MODELS}
    assert max(accuracy, key=accuracy.get) == DEFAULT_MODEL


def test_unknown_name_lists_the_models():
    with pytest.raises(ModelNotFoundError, match="dlib-resnet, facenet-mobilenet"):
        FaceNet.load("no-such-model")
    result = CliRunner().invoke(main, ["info", "--model", "no-such-model"])
    assert result.exit_code == 2 and "no such model name" in result.output


def test_models_command_lists_both_with_figures():
    result = CliRunner().invoke(main, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {r["name"] for r in rows} == set(MODELS)
    for row in rows:
        assert 0.5 < row["lfw_view2"]["accuracy"] <= 1.0
        assert row["images_per_s"]["batch_1"] > 0 and row["images_per_s"]["batch_32"] > 0
        assert row["licence"] and row["training_data"] and row["parameters"] > 1_000_000
    text = CliRunner().invoke(main, ["models"]).output
    assert f"{DEFAULT_MODEL}  (default)" in text and "LFW View 2" in text


def test_examples_five_decisions_right(model):
    """README's main job: two people with two photos each and one other person."""
    photos = {p.stem: p for p in sorted(EXAMPLES.glob("*.jpg"))}
    assert sorted(photos) == ["a_1", "a_2", "b_1", "b_2", "c_1"]
    for a, b in [("a_1", "a_2"), ("b_1", "b_2")]:
        assert model.verify(photos[a], photos[b]).same, (a, b)
    for a, b in [("a_1", "b_1"), ("a_2", "c_1"), ("b_2", "c_1")]:
        assert not model.verify(photos[a], photos[b]).same, (a, b)


def test_readme_main_command():
    result = CliRunner().invoke(
        main, ["verify", str(EXAMPLES / "a_1.jpg"), str(EXAMPLES / "a_2.jpg")]
    )
    assert result.exit_code == 0, result.output
    assert "same person" in result.output


def test_mobilenet_keras_copy_matches_its_onnx_file():
    pytest.importorskip("keras")
    onnx_model = FaceNet.load("facenet-mobilenet")
    keras_model = FaceNet.load(WEIGHTS_DIR / "facenet-mobilenet.keras")
    assert keras_model.info == onnx_model.info
    crops = np.stack(onnx_model.align([EXAMPLES / "a_1.jpg", EXAMPLES / "b_1.jpg"]))
    np.testing.assert_allclose(
        keras_model.embed_crops(crops), onnx_model.embed_crops(crops), atol=1e-4
    )


def test_a_gallery_from_before_names_still_finds_its_model(tmp_path):
    """Galleries record the model they were made with; the old default file was renamed."""
    from facenet.catalog import resolve

    old = tmp_path / "site-packages" / "facenet" / "weights" / "default.onnx"
    path, name = resolve(old)
    assert name == "facenet-mobilenet" and path == WEIGHTS_DIR / "facenet-mobilenet.onnx"
    model = FaceNet.load(old)
    assert model.model_id == FaceNet.load("facenet-mobilenet").model_id

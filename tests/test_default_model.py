"""The bundled default model works out of the box on the example photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facenet import FaceNet
from facenet.api import DEFAULT_MODEL_DIR
from facenet.cli import main
from facenet.metadata import ALIGNMENT_MODES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def model():
    return FaceNet.load()


def test_bundled_model_carries_what_it_needs(model):
    assert Path(model.source).parent == DEFAULT_MODEL_DIR
    assert model.embedder.runtime.startswith("onnxruntime")  # the fast, TensorFlow-free path
    info = model.info
    assert info.threshold is not None  # calibrated on LFW View 1
    assert info.alignment in ALIGNMENT_MODES and info.preprocessing == "fixed"
    assert "calibration" in info.extra and "training" in info.extra
    for path in DEFAULT_MODEL_DIR.glob("default.*"):
        assert path.stat().st_size <= 20_000_000


def test_examples_embed_and_verify(model):
    photos = sorted(EXAMPLES.glob("*.jpg"))
    assert [p.stem for p in photos] == ["a_1", "a_2", "b_1", "b_2", "c_1"]
    emb = model.embed(photos)
    assert emb.shape == (5, model.embedding_size)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert model.verify(EXAMPLES / "a_1.jpg", EXAMPLES / "a_2.jpg").same
    assert not model.verify(EXAMPLES / "a_1.jpg", EXAMPLES / "b_1.jpg").same


def test_readme_main_command():
    result = CliRunner().invoke(
        main, ["verify", str(EXAMPLES / "a_1.jpg"), str(EXAMPLES / "a_2.jpg")]
    )
    assert result.exit_code == 0, result.output
    assert "same person" in result.output


def test_keras_copy_matches_the_onnx_file(model):
    pytest.importorskip("keras")
    keras_model = FaceNet.load(DEFAULT_MODEL_DIR / "default.keras")
    assert keras_model.info == model.info
    crops = model.align([EXAMPLES / "a_1.jpg", EXAMPLES / "b_1.jpg"])
    np.testing.assert_allclose(
        keras_model.embed_crops(np.stack(crops)), model.embed_crops(np.stack(crops)), atol=1e-4
    )

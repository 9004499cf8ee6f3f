"""The `facenet` command: embed, verify, info, and one-line user errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main

from .conftest import lfw_image

pytest.importorskip("keras")


@pytest.fixture
def runner():
    return CliRunner()


def test_help_lists_commands(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("embed", "verify", "info"):
        assert command in result.output


def test_embed_three_images(runner, small_model_file, tmp_path):
    images = [str(lfw_image(n)) for n in ("Aaron_Eckhart", "Abel_Pacheco", "Zico")]
    out = tmp_path / "emb.npz"
    args = ["embed", *images, "--model", str(small_model_file), "--out", str(out), "--no-detect"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    data = np.load(out)
    assert data["embeddings"].shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(data["embeddings"], axis=1), 1.0, atol=1e-5)
    assert list(data["paths"]) == images


def test_verify_prints_distance_and_decision(runner, small_model_file):
    a, b = lfw_image("Aaron_Eckhart"), lfw_image("Abel_Pacheco")
    model = ["--model", str(small_model_file), "--no-detect"]
    result = runner.invoke(main, ["verify", str(a), str(a), *model])
    assert result.exit_code == 0, result.output
    assert "distance 0.0000" in result.output and "same person" in result.output
    result = runner.invoke(main, ["verify", str(a), str(b), *model, "--threshold", "0", "--json"])
    payload = json.loads(result.output)
    assert payload["same"] is False and payload["distance"] > 0 and payload["threshold"] == 0


def test_info(runner, small_model_file):
    result = runner.invoke(main, ["info", str(small_model_file)])
    assert result.exit_code == 0, result.output
    for expected in ("mobilenet (alpha 0.25)", "64x64x3", "fixed", "128", "none (default 1.1)"):
        assert expected in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["verify", "{missing}", "{missing}"], "no such file"),
        (["info", "--model", "{missing}"], "no such model file"),
        (["verify", "{text}", "{text}"], "not an image file"),
    ],
)
def test_user_errors_are_one_line_exit_2(runner, small_model_file, tmp_path, args, message):
    text = tmp_path / "x.jpg"
    text.write_text("text")
    paths = {"missing": str(tmp_path / "absent.jpg"), "text": str(text)}
    args = [a.format(**paths) for a in args]
    if args[0] == "verify":
        args += ["--model", str(small_model_file), "--no-detect"]
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output

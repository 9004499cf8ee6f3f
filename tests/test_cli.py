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
    for expected in ("mobilenet (alpha 0.25)", "64x64x3", "fixed", "128",
                     "none (default 1.1; facenet calibrate sets one)"):  # fmt: skip
        assert expected in result.output


def test_info_with_both_a_model_argument_and_model_option_is_a_usage_error(runner):
    """`facenet info A --model B` described A and silently dropped B: which one the user meant
    is a guess, so neither is described."""
    result = runner.invoke(main, ["info", "facenet-mobilenet", "--model", "dlib-resnet"])
    assert result.exit_code == 2, result.output
    assert (
        "give the model as PATH or as --model, not both" in result.output
        and "file " not in result.output
    )


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


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "{a}", "{a}", "--threshold", "nan"],
        ["verify", "{a}", "{a}", "--threshold", "inf"],
        ["verify", "{a}", "{a}", "--threshold", "-1"],
        ["cluster", "{a}", "-o", "{out}", "--threshold", "0"],
        ["cluster", "{a}", "-o", "{out}", "--threshold", "nan"],
        ["align", "{dir}", "{out}", "--margin", "nan"],
        ["serve", "--max-upload-mb", "nan"],
    ],
)
def test_non_finite_or_out_of_range_numbers_are_usage_errors(runner, tmp_path, args):
    """click's FloatRange lets NaN through (every comparison with it is false): each number
    option refuses it, in one line with exit status 2, before any work."""
    a = lfw_image("Aaron_Eckhart")
    paths = {"a": str(a), "out": str(tmp_path / "out"), "dir": str(a.parent)}
    result = runner.invoke(main, [x.format(**paths) for x in args])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_ctrl_c_exits_130_in_one_line(runner, small_model_file, monkeypatch, tmp_path):
    """Ctrl-C in any command: one line and exit status 130, not click's "Aborted!" and 1 (which
    means "some inputs failed")."""
    import facenet.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(facenet.api.FaceNet, "embed", interrupted)
    a = str(lfw_image("Aaron_Eckhart"))
    result = runner.invoke(main, ["embed", a, "--model", str(small_model_file), "--no-detect",
                                  "--out", str(tmp_path / "x.npz")])  # fmt: skip
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Aborted" not in result.output
    # the line promises nothing the command did not do (`embed -o x.npz` writes at the end)
    assert "nothing half-written" in result.output and "is kept" not in result.output
    assert not (tmp_path / "x.npz").exists()


def test_embed_nan_keeps_the_others_when_one_file_is_unreadable(runner, small_model_file, tmp_path):
    """`--on-missing nan`: an unreadable image is a NaN row and a listed failure (exit 1), not
    the loss of every other image's embedding (exit 2, nothing written)."""
    bad = tmp_path / "text.jpg"
    bad.write_text("not an image")
    images = [str(lfw_image("Aaron_Eckhart")), str(bad), str(lfw_image("Zico"))]
    out = tmp_path / "emb.npz"
    args = ["embed", *images, "--model", str(small_model_file), "--no-detect", "--out", str(out),
            "--on-missing", "nan", "--batch-size", "2", "--json"]  # fmt: skip
    result = runner.invoke(main, args)
    assert result.exit_code == 1, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [("error" in r) for r in rows] == [False, True, False]
    assert "not an image file" in rows[1]["error"]
    with np.load(out) as data:
        vectors = data["embeddings"]
    assert np.isnan(vectors[1]).all() and np.isfinite(vectors[[0, 2]]).all()
    good = [images[0], images[2]]  # without the bad file: the same two rows
    alone = runner.invoke(main, ["embed", *good, *args[4:-1]])
    assert alone.exit_code == 0, alone.output
    with np.load(out) as data:
        np.testing.assert_allclose(data["embeddings"], vectors[[0, 2]], atol=1e-6)

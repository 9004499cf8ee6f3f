"""`facenet export`: formats, batch and int8 options, the parity check, and user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facenet import FaceNet
from facenet.cli import main

pytest.importorskip("keras")
pytest.importorskip("tf2onnx")


def test_export_onnx_then_verify_with_it(small_model_file, tmp_path):
    out = tmp_path / "small.onnx"
    result = CliRunner().invoke(
        main,
        ["export", str(small_model_file), "--format", "onnx", "--out", str(out), "--batch", "2"],
    )
    assert result.exit_code == 0, result.output
    parity = json.loads(result.output.splitlines()[-1])["parity"]
    assert parity["max_abs_diff"] < 1e-4
    assert FaceNet.load(out).embedder.batch == 2
    faces = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    for i, face in enumerate(faces):
        Image.fromarray(face).save(tmp_path / f"{i}.png")
    result = CliRunner().invoke(
        main, ["verify", "--no-detect", "--json", "-m", str(out), str(tmp_path / "0.png"),
               str(tmp_path / "1.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["distance"] > 0  # the uncalibrated warning: stderr


def test_export_int8_with_aligned_calibration(small_model_file, tmp_path):
    pytest.importorskip("onnx")
    calibration = tmp_path / "crops"
    calibration.mkdir()
    for i, face in enumerate(np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), np.uint8)):
        Image.fromarray(face).save(calibration / f"{i}.png")
    result = CliRunner().invoke(
        main, ["export", str(small_model_file), "-f", "onnx", "--quantize", "int8",
               "--calibration", str(calibration), "--aligned"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = small_model_file.with_name("small.int8.onnx")
    assert out.is_file()
    assert FaceNet.load(out).info.extra["quantization"] == "int8"
    assert json.loads(result.output.splitlines()[-1])["parity"]["min_cosine"] > 0.9


def test_export_user_errors(small_model_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main, ["export", str(small_model_file), "-f", "onnx", "--quantize", "int8"]
    )
    assert result.exit_code == 2 and "--calibration" in result.output
    result = runner.invoke(main, ["export", str(small_model_file), "-f", "onnx", "--batch", "0"])
    assert result.exit_code == 2 and "dynamic" in result.output
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"x")
    result = runner.invoke(main, ["export", str(bad), "-f", "tflite"])
    assert result.exit_code == 2 and ".keras or .h5" in result.output


def _crops(folder, n: int):
    folder.mkdir()
    for i, face in enumerate(np.random.default_rng(2).integers(0, 256, (n, 64, 64, 3), np.uint8)):
        Image.fromarray(face).save(folder / f"{i}.png")
    return folder


def test_export_quantize_savedmodel_is_a_usage_error(small_model_file, tmp_path):
    """It was a ValueError traceback, exit status 1, once the model was loaded and calibrated."""
    calibration = _crops(tmp_path / "c", 2)
    args = ["export", str(small_model_file), "-f", "savedmodel", "-o", str(tmp_path / "sm"),
            "--quantize", "int8", "--calibration", str(calibration), "--aligned"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "savedmodel" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "sm").exists()


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_int8_fixed_batch_larger_than_the_calibration_set(small_model_file, tmp_path, fmt):
    """ONNX: onnxruntime's "No data is collected" traceback (exit 1); TFLite: an "int8" file
    calibrated on nothing, written with exit status 0."""
    pytest.importorskip("onnx")
    out = tmp_path / f"q.{fmt}"
    args = ["export", str(small_model_file), "-f", fmt, "-o", str(out), "--batch", "4",
            "--quantize", "int8", "--calibration", str(_crops(tmp_path / "c", 2)), "--aligned",
            "--no-check"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "at least 4 calibration crops; got 2" in result.output
    assert not out.exists()


def test_export_batch_beyond_the_limit_names_the_option(small_model_file, tmp_path):
    """A huge fixed batch (2**31 - 1, 10**11) crashed TensorFlow with a segmentation fault."""
    from facenet.export import MAX_BATCH

    out = tmp_path / "b.onnx"
    args = ["export", str(small_model_file), "-f", "onnx", "-o", str(out), "--no-check"]
    result = CliRunner().invoke(main, [*args, "--batch", str(MAX_BATCH + 1)])
    assert result.exit_code == 2 and "'--batch'" in result.output, result.output
    assert not out.exists()


def test_aligned_without_quantize_is_a_usage_error(small_model_file, tmp_path):
    """--aligned only says how to read calibration images; alone it was silently ignored."""
    out = tmp_path / "m.onnx"
    args = ["export", str(small_model_file), "-f", "onnx", "-o", str(out), "--aligned"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--aligned" in result.output, result.output
    assert not out.exists()


def test_a_damaged_calibration_image_is_skipped(tmp_path, caplog):
    """One truncated photo in a calibration folder stopped the whole export."""
    from facenet.quantize import calibration_crops

    folder = _crops(tmp_path / "c", 3)
    (folder / "0.png").write_bytes((folder / "0.png").read_bytes()[:40])
    with caplog.at_level("WARNING", logger="facenet.quantize"):
        crops = calibration_crops(folder, 32)
    assert crops.shape == (2, 32, 32, 3)
    assert "0.png" in caplog.text

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
    assert json.loads(result.output)["distance"] > 0


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

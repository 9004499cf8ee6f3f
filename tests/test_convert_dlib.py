"""dlib's face ResNet: the converter against dlib's own descriptors, and the bundled file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facenet import FaceNet
from facenet.cli import main

#: Two 150 px chips (our chip alignment of examples a_1 and b_1) and the descriptors that
#: dlib 20.0.1's own `face_recognition_model_v1.compute_face_descriptor` gives them and their
#: mirror images (the converted model adds the two: test-time flip inside the network).
REFERENCE = Path(__file__).parent / "data" / "dlib_reference.npz"

frm = pytest.importorskip("face_recognition_models")
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def dat() -> Path:
    return Path(frm.face_recognition_model_location())


@pytest.fixture(scope="module")
def converted(dat, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dlib") / "dlib.onnx"
    result = CliRunner().invoke(main, ["convert", str(dat), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "dlib_resnet, 150 px, 128-d" in result.output
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_keras_network_is_dlibs(dat):
    from facenet.models.dlib_resnet import build_dlib_resnet

    with np.load(REFERENCE) as z:
        chips, descriptors = z["chips"], z["descriptors"]
    raw = build_dlib_resnet(dat, normalize=False).predict(chips.astype(np.float32), verbose=0)
    np.testing.assert_allclose(raw, descriptors, atol=2e-5)


def test_converted_onnx_is_unit_dlib_with_its_calibration(converted):
    model = FaceNet.load(converted)
    info = model.info
    assert (info.backbone, info.input_size, info.alignment) == ("dlib_resnet", 150, "chip")
    bundled = FaceNet.load("dlib-resnet").info
    assert info.threshold == bundled.threshold is not None
    assert info.identification_threshold == bundled.identification_threshold is not None
    assert info.extra["test_time_flip"] is True
    with np.load(REFERENCE) as z:
        chips, flipped = z["chips"], z["descriptors"] + z["mirrored"]
    np.testing.assert_allclose(model.embed_crops(chips), _unit(flipped), atol=1e-5)


def test_bundled_file_stores_the_same_network(converted):
    with np.load(REFERENCE) as z:
        chips = z["chips"]
    bundled = FaceNet.load("dlib-resnet").embed_crops(chips)
    np.testing.assert_allclose(bundled, FaceNet.load(converted).embed_crops(chips), atol=1e-3)


def test_no_flip_converts_dlibs_plain_descriptor(dat, tmp_path):
    """`--no-flip` (the distillation teacher): dlib's descriptor of the chip alone, unit length."""
    out = tmp_path / "dlib-noflip.onnx"
    result = CliRunner().invoke(main, ["convert", str(dat), "--out", str(out), "--no-flip"])
    assert result.exit_code == 0, result.output
    model = FaceNet.load(out)
    assert model.info.extra["test_time_flip"] is False
    flipped = FaceNet.load("dlib-resnet").info  # its own thresholds, not the flipped network's
    assert model.info.threshold > flipped.threshold
    assert model.info.identification_threshold > flipped.identification_threshold
    with np.load(REFERENCE) as z:
        chips, descriptors = z["chips"], z["descriptors"]
    np.testing.assert_allclose(model.embed_crops(chips), _unit(descriptors), atol=1e-5)


def test_no_flip_on_other_weights_is_one_line_error(tmp_path):
    weights = tmp_path / "facenet.h5"
    weights.write_bytes(b"not read")
    result = CliRunner().invoke(
        main, ["convert", str(weights), "--out", str(tmp_path / "m.keras"), "--no-flip"]
    )
    assert result.exit_code == 2
    assert "dlib's model only" in result.output
    assert "Traceback" not in result.output


def test_a_foreign_dat_file_is_one_line_error(tmp_path):
    bad = tmp_path / "model.dat"
    bad.write_bytes(b"\x01\x05hello" + b"\x00" * 64)
    result = CliRunner().invoke(main, ["convert", str(bad), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "not dlib's face recognition ResNet" in result.output
    assert "Traceback" not in result.output


def test_source_dlib_names_a_file_of_another_name(tmp_path):
    """detect_source's message says "name the kind with --source", but --source refused dlib."""
    bad = tmp_path / "resnet.bin"
    bad.write_bytes(b"\x01\x05hello" + b"\x00" * 64)
    args = ["convert", str(bad), "--source", "dlib", "--out", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "not dlib's face recognition ResNet" in result.output, result.output


def test_converted_keras_file_loads_in_a_fresh_process(dat, tmp_path):
    """The dlib network's custom layers (mirror, padded add) must be known to whoever loads the
    .keras file, e.g. `tools/teacher_views.py` or the views trainer's online teacher, not only
    to the process that converted it."""
    import subprocess
    import sys

    out = tmp_path / "dlib.keras"
    result = CliRunner().invoke(main, ["convert", str(dat), "--out", str(out)])
    assert result.exit_code == 0, result.output
    code = (
        "import sys, numpy as np; from facenet.models import load_keras_model\n"
        "model, info = load_keras_model(sys.argv[1])\n"
        "chips = np.load(sys.argv[2])['chips'].astype(np.float32)\n"
        "print(info.backbone, np.linalg.norm(np.asarray(model(chips)), axis=1).round(4).tolist())"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, str(out), str(REFERENCE)], cwd=root,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[0] == "dlib_resnet" and "[1.0, 1.0]" in done.stdout


@pytest.mark.parametrize(
    "option", [["--input-size", "64"], ["--backbone", "mobilenet"], ["--preprocessing", "fixed"]]
)
def test_options_dlibs_file_cannot_take_are_refused(dat, tmp_path, option):
    """dlib's network is 150 px, its own backbone and scaling: `--input-size 64` wrote a 150 px
    model and said nothing. Refused in one line, before any work, nothing written."""
    out = tmp_path / "m.keras"
    result = CliRunner().invoke(main, ["convert", str(dat), "--out", str(out), *option])
    assert result.exit_code == 2, result.output
    assert f"{option[0]} does not apply to dlib's model" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()

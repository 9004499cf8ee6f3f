"""facenet calibrate: a model's threshold chosen on development pairs, written into a copy."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from facenet.calibrate import Calibration, calibrated_info, write_calibrated
from facenet.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WEIGHTS = Path(__file__).resolve().parents[1] / "facenet" / "weights"
#: same, same, different, different, different (examples/README.md: a and b two people each)
PAIRS = [(1, "a_1", "a_2"), (1, "b_1", "b_2"), (0, "a_1", "b_1"), (0, "a_2", "c_1"),
         (0, "b_2", "c_1")]  # fmt: skip


@pytest.fixture
def pair_list(tmp_path) -> Path:
    path = tmp_path / "dev.tsv"
    lines = [f"0\t{label}\t{a}.jpg\t{b}.jpg" for label, a, b in PAIRS]
    path.write_text("\n".join(lines) + "\n")
    return path


def _invoke(*args: str):
    return CliRunner().invoke(main, ["calibrate", *map(str, args)])


def test_calibrate_writes_a_copy_with_the_threshold(small_model_file, pair_list, tmp_path):
    from facenet import FaceNet
    from facenet.models.files import read_info

    out = tmp_path / "calibrated.keras"
    r = _invoke(small_model_file, "--pairs", pair_list, "--root", EXAMPLES, "-o", out, "--json")
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    info = read_info(out)
    assert info.threshold == shown["threshold"] is not None
    record = info.extra["calibration"]
    assert record["n_pairs"] == 5 and record["pairs"] == str(pair_list)
    assert record["accuracy"] == shown["accuracy"] >= 0.6  # at least "all different"
    assert read_info(small_model_file).threshold is None  # MODEL itself is untouched
    assert FaceNet.load(out).threshold == info.threshold  # the copy loads, with its threshold
    again = _invoke(small_model_file, "--pairs", pair_list, "--root", EXAMPLES, "-o", out)
    assert again.exit_code == 2 and "--force" in again.output
    forced = _invoke(small_model_file, "--pairs", pair_list, "--root", EXAMPLES, "-o", out,
                     "--force")  # fmt: skip
    assert forced.exit_code == 0 and f"wrote {out}" in forced.output


def test_the_copy_records_the_model_whose_embeddings_it_makes(
    small_model, small_model_file, pair_list, tmp_path
):
    """The copy names the model it was calibrated from; a copy of the copy names the same
    first model (so every copy fits a gallery of any of them), by the file's name only."""
    from facenet.models.files import read_info

    first, second = tmp_path / "first.keras", tmp_path / "second.keras"
    for model, out in ((small_model_file, first), (first, second)):
        r = _invoke(model, "--pairs", pair_list, "--root", EXAMPLES, "-o", out)
        assert r.exit_code == 0, r.output
    for out, source in ((first, "small.keras"), (second, "first.keras")):
        info = read_info(out)
        assert info.embeddings_of == small_model.model_id
        assert info.extra["calibration"]["calibrated_from"] == source
    assert read_info(small_model_file).embeddings_of is None
    again = calibrated_info(read_info(second), Calibration(0.4, 0.9, 2, "x.tsv", "p"))
    assert again.embeddings_of == small_model.model_id  # kept when no model is given


def test_lfw_view_2_is_refused(tmp_path, small_model_file):
    lfw = tmp_path / "lfw"
    lfw.mkdir()
    (lfw / "pairs.txt").write_text("10\t300\nA\t1\t2\n")
    out = tmp_path / "out.keras"
    for args in (["--lfw-dir", lfw, "--view", "2"], ["--pairs", lfw / "pairs.txt"]):
        r = _invoke(small_model_file, *args, "-o", out)
        assert r.exit_code == 2, r.output
        assert "test view" in r.output and len(r.output.strip().splitlines()) == 1
        assert "Traceback" not in r.output and not out.exists()


@pytest.mark.parametrize(
    ("model", "out", "message"),
    [
        ("model.h5", "out.h5", "calibrate writes .keras, .onnx and .tflite"),
        ("model.tflite", "out.onnx", "must end in .tflite"),
        ("model.keras", "out.onnx", "must end in .keras"),
        ("model.keras", "model.keras", "is one of the inputs"),
    ],
)
def test_usage_errors_write_nothing(tmp_path, pair_list, model, out, message):
    (tmp_path / model).write_bytes(b"x")
    r = _invoke(tmp_path / model, "--pairs", pair_list, "-o", tmp_path / out)
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({model, "dev.tsv"})


def test_model_itself_is_never_replaced(tmp_path, pair_list, small_model_file):
    model = tmp_path / "m.keras"
    shutil.copy(small_model_file, model)
    r = _invoke(model, "--pairs", pair_list, "-o", model, "--force")
    assert r.exit_code == 2 and "is one of the inputs" in r.output
    assert model.read_bytes() == small_model_file.read_bytes()


def test_pair_source_options(small_model_file, pair_list, tmp_path, monkeypatch):
    monkeypatch.delenv("FACENET_LFW_DIR", raising=False)
    out = tmp_path / "o.keras"
    for args, message in (
        ([], "give --lfw-dir DIR"),
        (["--pairs", pair_list, "--lfw-dir", tmp_path], "not both"),
        (["--lfw-dir", tmp_path, "--root", tmp_path], "--root is for --pairs"),
        (["--pairs", pair_list, "--view", "dev-test"], "--view is for --lfw-dir"),
    ):
        r = _invoke(small_model_file, *args, "-o", out)
        assert r.exit_code == 2 and message in r.output, r.output


def test_an_onnx_model_gets_its_metadata_rewritten(tmp_path):
    pytest.importorskip("onnx")
    from facenet.runtime import read_exported_info

    model = WEIGHTS / "facenet-mobilenet.onnx"
    info = read_exported_info(model)
    calibration = Calibration(0.25, 0.9, 10, "dev.tsv", "pairs")
    source = SimpleNamespace(model_id="0123456789abcdef", info=info, name=None, source=str(model))
    out = write_calibrated(
        model, calibrated_info(info, calibration, of=source, name="mine"), tmp_path / "c.onnx"
    )
    written = read_exported_info(out)
    assert (written.threshold, written.name) == (0.25, "mine")
    assert written.embeddings_of == "0123456789abcdef"  # beside the threshold's record
    assert written.extra["calibration"]["n_pairs"] == 10
    assert written.input_size == info.input_size and written.detection == info.detection


def test_a_tflite_model_gets_its_metadata_rewritten(small_model_file, tmp_path):
    pytest.importorskip("tensorflow")
    from facenet.export import export_tflite, load_keras
    from facenet.runtime import read_exported_info

    model = export_tflite(*load_keras(small_model_file), tmp_path / "small.tflite")
    calibration = Calibration(0.3, 0.8, 6, "dev.tsv", "pairs")
    info = read_exported_info(model)
    source = SimpleNamespace(model_id="fedcba9876543210", info=info, name=None, source=str(model))
    out = write_calibrated(model, calibrated_info(info, calibration, of=source),
                           tmp_path / "c.tflite")  # fmt: skip
    written = read_exported_info(out)
    assert written.threshold == 0.3 and written.extra["calibration"]["pairs"] == "dev.tsv"
    assert written.embeddings_of == "fedcba9876543210"
    assert len([m for m in _tflite_metadata_names(out) if m == "facenet"]) == 1


def _tflite_metadata_names(path):
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    return [m.name.decode() if isinstance(m.name, bytes) else m.name for m in model.metadata]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no pairs"),
        (["0\t1\ta_1.jpg\ta_2.jpg", "0\t1\tb_1.jpg\tb_2.jpg"], "both same and different pairs"),
        (["0\t0\ta_1.jpg\tb_1.jpg"], "both same and different pairs"),
    ],
)
def test_a_list_without_both_classes_chooses_nothing(tmp_path, small_model_file, lines, message):
    pairs = tmp_path / "one.tsv"
    pairs.write_text("".join(f"{line}\n" for line in lines))
    out = tmp_path / "o.keras"
    r = _invoke(small_model_file, "--pairs", pairs, "--root", EXAMPLES, "-o", out)
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


def test_images_that_fail_leave_nothing_to_choose_on(tmp_path, small_model_file):
    pairs = tmp_path / "missing.tsv"
    pairs.write_text("0\t1\tx.jpg\ty.jpg\n0\t0\tx.jpg\ta_1.jpg\n0\t0\ta_2.jpg\tz.jpg\n")
    out = tmp_path / "o.keras"
    r = _invoke(small_model_file, "--pairs", pairs, "--root", EXAMPLES, "-o", out)
    assert r.exit_code == 2 and "both images embedded" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


def test_a_bundled_model_by_name(pair_list, tmp_path):
    pytest.importorskip("onnx")
    from facenet.api import file_digest
    from facenet.catalog import resolve
    from facenet.runtime import read_exported_info

    bundled, _ = resolve("facenet-mobilenet")
    wrong = _invoke("facenet-mobilenet", "--pairs", pair_list, "-o", tmp_path / "m.keras")
    assert wrong.exit_code == 2 and f"must end in {bundled.suffix}" in wrong.output
    out = tmp_path / f"m{bundled.suffix}"
    r = _invoke("facenet-mobilenet", "--pairs", pair_list, "--root", EXAMPLES, "-o", out)
    assert r.exit_code == 0, r.output
    record = read_exported_info(out).extra["calibration"]
    assert record["n_pairs"] == 5 and record["calibrated_from"] == "facenet-mobilenet"
    assert record["embeddings_of"] == file_digest(bundled)  # the bundled file's model id


@pytest.mark.parametrize(
    ("model", "blocked", "said"),
    [("facenet-mobilenet", "onnx", "an .onnx model needs the onnx package: "
      "pip install 'facenet-keras[export]'"),
     ("model.tflite", "tensorflow", "a .tflite model needs TensorFlow: "
      "pip install 'facenet-keras[tf]'")],
)  # fmt: skip
def test_a_missing_writer_package_is_said_before_any_embedding(
    tmp_path, pair_list, monkeypatch, model, blocked, said
):
    """On the light install (no onnx, no TensorFlow) calibrate embedded every pair, minutes for
    LFW View 1, and only then said the copy could not be written."""
    from facenet.api import FaceNet
    from facenet.catalog import resolve

    def never(*_, **__):
        raise AssertionError("the model was loaded before the missing package was named")

    monkeypatch.setitem(sys.modules, blocked, None)  # as absent as in the light install
    monkeypatch.setattr(FaceNet, "load", never)
    if model.endswith(".tflite"):
        (tmp_path / model).write_bytes(b"not read")
        model = str(tmp_path / model)
    out = tmp_path / f"c{resolve(model)[0].suffix}"
    r = _invoke(model, "--pairs", pair_list, "--root", EXAMPLES, "-o", out)
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines() == [f"Error: calibrating {said}"]
    assert not out.exists()

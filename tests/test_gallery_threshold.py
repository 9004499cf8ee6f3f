"""`facenet gallery set-threshold`, and a model's later calibration reaching a gallery made with
it uncalibrated: the calibrated copy is another file, so another model id, which the gallery
takes as its model through the id the copy records; set-threshold --from-model makes its
threshold the gallery's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from facenet.calibrate import Calibration, calibrated_info, write_calibrated
from facenet.cli import main
from facenet.gallery import Gallery

pytest.importorskip("keras")

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "a_1.jpg"
WARNING = "has no calibrated threshold"


def _run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def _one_error_line(result, text: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in result.output, lines


@pytest.fixture(scope="module")
def calibrated_file(small_model, small_model_file, tmp_path_factory) -> Path:
    """The small model's calibrated copy, as `facenet calibrate` writes it."""
    info = calibrated_info(small_model.info, Calibration(0.5, 0.8, 4, "dev.tsv", "p"),
                           of=small_model)  # fmt: skip
    return write_calibrated(small_model_file, info, tmp_path_factory.mktemp("c") / "c.keras")


@pytest.fixture(scope="module")
def unrecorded_copy(small_model, small_model_file, tmp_path_factory) -> Path:
    """A calibrated copy that does not record its model (as calibrate wrote them before)."""
    info = calibrated_info(small_model.info, Calibration(0.5, 0.8, 4, "dev.tsv", "p"))
    assert info.embeddings_of is None
    return write_calibrated(small_model_file, info, tmp_path_factory.mktemp("u") / "u.keras")


@pytest.fixture
def gallery_file(small_model_file, tmp_path) -> Path:
    path = tmp_path / "g.db"
    assert _run("gallery", "create", path, "--model", small_model_file).exit_code == 0
    return path


def test_a_calibrated_copy_reaches_the_gallery_through_set_threshold(
    gallery_file, calibrated_file, small_model
):
    # the calibrated copy is another model id, recording the gallery's: taken, its 0.5 decides
    copy = _run("identify", PHOTO, "--gallery", gallery_file, "--model", calibrated_file, "--json")
    assert copy.exit_code == 0 and WARNING not in copy.stderr, copy.output
    assert json.loads(copy.stdout)["faces"][0]["threshold"] == pytest.approx(0.5)
    before = _run("identify", PHOTO, "--gallery", gallery_file, "--json")  # its recorded model
    assert before.exit_code == 0 and WARNING in before.stderr, before.output
    assert json.loads(before.stdout)["faces"][0]["threshold"] == pytest.approx(1.1)

    r = _run("gallery", "set-threshold", gallery_file, "--from-model", calibrated_file)
    assert r.exit_code == 0, r.output
    assert r.stdout == "set the identification threshold to 0.5000 (was 1.1000)\n"
    after = _run("identify", PHOTO, "--gallery", gallery_file, "--json")  # the gallery's model
    assert after.exit_code == 0 and WARNING not in after.stderr, after.output
    assert json.loads(after.stdout)["faces"][0]["threshold"] == pytest.approx(0.5)
    with Gallery.open(gallery_file) as g:  # recorded: without a model, and with its own
        assert g.threshold == g.calibrated_threshold == 0.5
        g.attach(small_model)
        assert g.threshold == 0.5 and small_model.threshold == pytest.approx(1.1)


def test_a_value_and_clear(gallery_file):
    r = _run("gallery", "set-threshold", gallery_file, "0.25")
    assert r.exit_code == 0 and "to 0.2500 (was 1.1000)" in r.stdout, r.output
    assert Gallery.open(gallery_file).calibrated_threshold == 0.25
    r = _run("gallery", "set-threshold", gallery_file, "--clear")
    assert r.exit_code == 0, r.output
    assert (
        r.stdout == "cleared the gallery's own threshold: the model's 1.1000 applies (was 0.2500)\n"
    )
    with Gallery.open(gallery_file) as g:
        assert g.calibrated_threshold is None and g.threshold == pytest.approx(1.1)


def test_refusals_are_one_line_and_change_nothing(
    gallery_file, small_model_file, second_model_file, unrecorded_copy
):
    usage = "give one of VALUE, --from-model MODEL or --clear"
    for args in ([], ["0.3", "--clear"], ["0.3", "--from-model", small_model_file]):
        r = _run("gallery", "set-threshold", gallery_file, *args)
        assert r.exit_code == 2 and usage in r.stderr and "Traceback" not in r.output, r.output
    for bad in ("4.5", "nan", "inf"):
        r = _run("gallery", "set-threshold", gallery_file, bad)
        assert r.exit_code == 2 and "Invalid value" in r.stderr, r.output
    _one_error_line(
        _run("gallery", "set-threshold", gallery_file, "--from-model", small_model_file),
        "carries no calibrated threshold",
    )
    _one_error_line(
        _run("gallery", "set-threshold", gallery_file, "--from-model", second_model_file),
        "makes 64-d embeddings",
    )
    _one_error_line(  # its weights are the gallery's, but nothing in the file says so
        _run("gallery", "set-threshold", gallery_file, "--from-model", unrecorded_copy),
        "nor a calibrated copy of it; give the threshold as VALUE",
    )
    _one_error_line(
        _run("identify", PHOTO, "--gallery", gallery_file, "--model", unrecorded_copy),
        "holds embeddings of model",
    )
    with Gallery.open(gallery_file) as g:
        assert g.calibrated_threshold is None
        with pytest.raises(Exception, match="threshold must be a squared-L2 distance"):
            g.set_threshold(5.0)


def test_the_server_serves_the_gallery_with_its_models_calibrated_copy(
    gallery_file, calibrated_file, unrecorded_copy
):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facenet import FaceNet
    from facenet.errors import GalleryError
    from facenet.server import Settings, create_app

    settings = Settings(allowed_hosts=("testserver",))
    upload = [("image", ("a_1.jpg", PHOTO.read_bytes(), "application/octet-stream"))]
    with Gallery.open(gallery_file) as g:
        client = TestClient(create_app(FaceNet.load(calibrated_file), g, settings))
        r = client.post("/api/v1/identify", files=upload)
        assert r.status_code == 200 and r.json()["threshold"] == pytest.approx(0.5), r.text
    with Gallery.open(gallery_file) as g, pytest.raises(GalleryError, match="holds embeddings"):
        create_app(FaceNet.load(unrecorded_copy), g, settings)


def test_an_open_gallery_takes_a_threshold_another_process_set(gallery_file, monkeypatch):
    """A long-lived Gallery (a server's) sees `facenet gallery set-threshold` from elsewhere on
    its next read, without reopening; while nothing changed, a read costs one `PRAGMA
    data_version` and never reads the meta table."""
    with Gallery.open(gallery_file) as g:
        assert g.threshold == pytest.approx(1.1)
        reads, meta = [], g._store.meta
        monkeypatch.setattr(g._store, "meta", lambda: reads.append(1) or meta())
        assert all(g.threshold == pytest.approx(1.1) for _ in range(100)) and reads == []
        assert _run("gallery", "set-threshold", gallery_file, "0.25").exit_code == 0
        assert g.threshold == g.calibrated_threshold == 0.25 and len(reads) == 1
        assert _run("gallery", "set-threshold", gallery_file, "--clear").exit_code == 0
        assert g.calibrated_threshold is None and g.threshold == pytest.approx(1.1)
        g.set_threshold(0.75)  # its own change: taken at once, as before
        assert g.threshold == 0.75
    assert g.threshold == 0.75  # closed: the last value, no database read


def test_a_running_server_takes_a_threshold_set_from_another_process(
    gallery_file, calibrated_file, small_model
):
    """`facenet gallery set-threshold` beside a running server: its next identification
    decides at the new threshold, no restart."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facenet.server import Settings, create_app

    upload = [("image", ("a_1.jpg", PHOTO.read_bytes(), "application/octet-stream"))]
    with Gallery.open(gallery_file) as g:
        client = TestClient(create_app(small_model, g, Settings(allowed_hosts=("testserver",))))

        def served() -> float:
            r = client.post("/api/v1/identify", files=upload)
            assert r.status_code == 200, r.text
            return r.json()["threshold"]

        assert served() == pytest.approx(1.1)
        for args, expected in (
            (["0.25"], 0.25),
            (["--from-model", calibrated_file], 0.5),
            (["--clear"], 1.1),
        ):
            r = _run("gallery", "set-threshold", gallery_file, *args)
            assert r.exit_code == 0, r.output
            assert served() == pytest.approx(expected), args

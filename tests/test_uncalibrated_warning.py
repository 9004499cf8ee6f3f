"""A model without a calibrated threshold decides at 1.1 and says so, once per command."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from facenet.calibrate import Calibration, calibrated_info, write_calibrated
from facenet.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
A1, A2, B1 = (str(EXAMPLES / f"{name}.jpg") for name in ("a_1", "a_2", "b_1"))
WARNING = "has no calibrated threshold; using 1.1 (FaceNet's customary value, may not fit"


def _run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def _warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if WARNING in line]


@pytest.fixture(scope="module")
def calibrated_file(small_model_file, tmp_path_factory) -> Path:
    from facenet.models.files import read_info

    info = calibrated_info(read_info(small_model_file), Calibration(0.5, 0.8, 4, "dev.tsv", "p"))
    return write_calibrated(small_model_file, info, tmp_path_factory.mktemp("c") / "c.keras")


def test_verify_warns_once_and_names_the_fix(small_model_file):
    r = _run("verify", "--model", small_model_file, A1, B1)
    assert r.exit_code == 0, r.output
    (line,) = _warnings(r)
    assert line.startswith(f"warning: {small_model_file} has no calibrated threshold")
    assert f"facenet calibrate {small_model_file} --lfw-dir DIR -o CALIBRATED.keras" in line
    assert "threshold 1.1000" in r.stdout
    json_run = _run("verify", "--model", small_model_file, A1, B1, "--json")
    assert json_run.exit_code == 0 and len(_warnings(json_run)) == 1
    assert json_run.stdout.strip().startswith("{")  # stdout stays JSON


def test_no_warning_with_a_threshold(small_model_file, calibrated_file):
    for args in (["--model", small_model_file, "--threshold", "0.5"], ["--model", calibrated_file]):
        r = _run("verify", *args, A1, B1)
        assert r.exit_code == 0 and not _warnings(r), r.output
    r = _run("verify", A1, B1)  # the bundled default model is calibrated
    assert r.exit_code == 0 and not _warnings(r)


def test_evaluate_warns_once_not_per_pair(small_model_file, tmp_path):
    pairs = tmp_path / "dev.tsv"
    pairs.write_text(f"0\t1\t{A1}\t{A2}\n0\t0\t{A1}\t{B1}\n0\t0\t{A2}\t{B1}\n")
    r = _run("evaluate", "pairs", pairs, "--root", "/", "--model", small_model_file,
             "--out", tmp_path / "out")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert len(_warnings(r)) == 1
    fixed = _run("evaluate", "pairs", pairs, "--root", "/", "--model", small_model_file,
                 "--out", tmp_path / "out2", "--threshold", "0.4")  # fmt: skip
    assert fixed.exit_code == 0 and not _warnings(fixed)


def test_gallery_create_and_identify_warn_once(small_model_file, tmp_path):
    db = tmp_path / "people.db"
    r = _run("gallery", "create", db, "--model", small_model_file)
    assert r.exit_code == 0 and len(_warnings(r)) == 1, r.output
    r = _run("gallery", "enroll", db, A1, "--name", "A")
    assert r.exit_code == 0 and not _warnings(r), r.output  # enrolling decides nothing
    r = _run("identify", A2, B1, "--gallery", db)
    assert r.exit_code == 0 and len(_warnings(r)) == 1, r.output
    r = _run("identify", A2, "--gallery", db, "--threshold", "0.3")
    assert r.exit_code == 0 and not _warnings(r), r.output


def test_cluster_and_classify_predict_warn_once(small_model_file, tmp_path):
    photos = [A1, A2, B1]
    r = _run("cluster", *photos, "--out", tmp_path / "clusters", "--model", small_model_file)
    assert r.exit_code == 0 and len(_warnings(r)) == 1, r.output
    r = _run("cluster", *photos, "--out", tmp_path / "c2", "--model", small_model_file,
             "--threshold", "0.5")  # fmt: skip
    assert r.exit_code == 0 and not _warnings(r), r.output
    pytest.importorskip("sklearn")
    root = tmp_path / "people"
    for person, names in (("A", ("a_1", "a_2")), ("B", ("b_1", "b_2"))):
        (root / person).mkdir(parents=True)
        for name in names:
            (root / person / f"{name}.jpg").write_bytes((EXAMPLES / f"{name}.jpg").read_bytes())
    model = ["--model", small_model_file]
    r = _run("classify", "train", root, "--out", tmp_path / "c.pkl", *model)
    assert r.exit_code == 0 and not _warnings(r), r.output  # training decides nothing
    r = _run("classify", "predict", A2, B1, "-c", tmp_path / "c.pkl", *model)
    assert r.exit_code == 0 and len(_warnings(r)) == 1, r.output


def test_the_python_api_tells_by_a_property_and_prints_nothing(
    small_model_file, calibrated_file, capsys
):
    """`FaceNet.calibrated`: False for a model that decides at the customary 1.1 (it had no
    way to tell but comparing `threshold` with 1.1), True once calibrated; `verify` prints
    no warning (the CLI's line is the CLI's)."""
    from facenet import FaceNet

    model = FaceNet.load(small_model_file)
    capsys.readouterr()
    result = model.verify(A1, B1)
    assert model.calibrated is False and result.threshold == pytest.approx(1.1)
    assert capsys.readouterr() == ("", "")
    calibrated = FaceNet.load(calibrated_file)
    assert calibrated.calibrated is True and calibrated.threshold == pytest.approx(0.5)


def test_serve_warns_once_at_startup(small_model_file, calibrated_file, monkeypatch):
    """`facenet serve` served an uncalibrated model silently: it prints the one line too."""
    uvicorn = pytest.importorskip("uvicorn")
    from facenet.cli import serve

    class Stopped:  # uvicorn's server, returning at once: what was printed before is tested
        def __init__(self, app):
            pass

        def run(self, sockets):
            pass

    monkeypatch.setattr(serve, "_stopped_cleanly", lambda: Stopped)
    monkeypatch.setattr(uvicorn, "Config", lambda app, **options: app)  # no logging set up
    r = _run("serve", "--model", small_model_file, "--port", "0")
    assert r.exit_code == 0, r.output
    (line,) = _warnings(r)
    assert line.startswith(f"warning: {small_model_file} has no calibrated threshold")
    r = _run("serve", "--model", calibrated_file, "--port", "0")
    assert r.exit_code == 0 and not _warnings(r), r.output


def test_the_server_tells_clients_by_health_model_and_verify(small_model, calibrated_file):
    """An API client could not tell that the threshold of /verify was the uncalibrated 1.1:
    health, model and every verification answer carry `calibrated`, and the schema has it."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from facenet import FaceNet
    from facenet.server import Settings, create_app

    photos = {"image1": Path(A1).read_bytes(), "image2": Path(B1).read_bytes()}
    for model, calibrated in ((small_model, False), (FaceNet.load(calibrated_file), True)):
        app = create_app(model, None, Settings(allowed_hosts=("testserver",)))
        with TestClient(app) as client:
            assert client.get("/api/v1/health").json()["calibrated"] is calibrated
            assert client.get("/api/v1/model").json()["calibrated"] is calibrated
            for form in ({}, {"threshold": "0.7"}):  # the model's, whatever threshold decided
                r = client.post("/api/v1/verify", files=photos, data=form)
                assert r.status_code == 200 and r.json()["calibrated"] is calibrated, r.text
            schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("HealthOut", "ModelOut", "VerifyOut"):
        assert schemas[name]["properties"]["calibrated"]["description"].startswith("Whether")
    assert "calibrated" in schemas["VerifyOut"]["required"]

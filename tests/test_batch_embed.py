"""Batch embedding into Parquet: the local and the Ray engine agree, runs resume, and the
output enrols into a gallery without re-embedding (issue 20)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main

from .conftest import lfw_image

pa = pytest.importorskip("pyarrow")

PEOPLE = ["Colin_Powell", "George_W_Bush", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """12 files: two LFW photos of five people (one folder each), a blank image, a corrupt."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    for name in PEOPLE:
        (root / name).mkdir()
        for i in (1, 2):
            shutil.copy(lfw_image(name, i), root / name)
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(root / "blank.png")
    (root / "corrupt.jpg").write_bytes(b"not a jpeg")
    return root


@pytest.fixture(scope="module")
def local_out(photos, tmp_path_factory):
    from facenet.batch import embed_to_folder

    out = tmp_path_factory.mktemp("local") / "out"
    report = embed_to_folder(photos, out, engine="local", batch_size=4)
    return out, report


def rows(out):
    """path -> face -> row, and path -> error, of an output folder."""
    from facenet.batch.records import read_output

    faces, failures = {}, {}
    for row in read_output(out).to_pylist():
        if row["error"] is None:
            faces.setdefault(row["path"], {})[row["face"]] = row
        else:
            failures[row["path"]] = row["error"]
    return faces, failures


def test_local_engine_rows_and_failures(photos, local_out):
    from facenet import FaceNet

    out, report = local_out
    faces, failures = rows(out)
    assert set(failures) == {str(photos / "blank.png"), str(photos / "corrupt.jpg")}
    assert failures[str(photos / "blank.png")] == "no face found"
    assert "corrupt.jpg" in failures[str(photos / "corrupt.jpg")]
    assert len(faces) == 10 and report.embedded == 10 and len(report.failures) == 2
    model = FaceNet.load()
    for found in faces.values():
        assert sum(r["prominent"] for r in found.values()) == 1
        row = found[0]
        assert row["model_id"] == model.model_id and row["score"] > 0.5
        assert row["eye_distance"] > 5 and len(row["landmarks"]) == 10
        vector = np.asarray(row["embedding"], np.float32)
        assert abs(np.linalg.norm(vector) - 1) < 1e-5
    # the prominent face's vector is what FaceNet.embed gives for the photo
    path = str(photos / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg")
    main_row = next(r for r in faces[path].values() if r["prominent"])
    assert np.abs(np.asarray(main_row["embedding"]) - model.embed(path)[0]).max() <= 1e-5


def test_ray_engine_matches_local(photos, local_out, tmp_path):
    pytest.importorskip("ray")
    from facenet.batch import embed_to_folder

    report = embed_to_folder(photos, tmp_path / "ray", engine="ray", batch_size=4, workers=2)
    assert report.embedded == 10
    local_faces, local_failures = rows(local_out[0])
    ray_faces, ray_failures = rows(tmp_path / "ray")
    assert ray_failures == local_failures
    assert {p: set(f) for p, f in ray_faces.items()} == {p: set(f) for p, f in local_faces.items()}
    for path, found in local_faces.items():
        for k, row in found.items():
            other = ray_faces[path][k]
            diff = np.abs(np.asarray(row["embedding"]) - np.asarray(other["embedding"])).max()
            assert diff <= 1e-5, (path, k, diff)
            assert np.allclose(row["box"], other["box"], atol=1e-3)
            assert row["prominent"] == other["prominent"]


def test_resume_skips_done_paths(photos, local_out, tmp_path):
    from facenet.batch import embed_to_folder
    from facenet.batch.records import parts

    out = tmp_path / "out"
    shutil.copytree(local_out[0], out)
    (out / ".tmp-part-killed.parquet").write_bytes(b"half a file")  # a killed run's leftover
    before = len(parts(out))
    extra = tmp_path / "more.csv"
    new = lfw_image("Tony_Blair", 3)
    extra.write_text(f"path\n{new}\n{photos / PEOPLE[0] / (PEOPLE[0] + '_0001.jpg')}\n")
    report = embed_to_folder(extra, out, engine="local")
    assert (report.total, report.skipped, report.embedded) == (2, 1, 1)
    assert len(parts(out)) == before + 1
    faces, failures = rows(out)
    assert len(faces) == 11 and len(failures) == 2 and str(new) in faces
    again = embed_to_folder(photos, out, engine="local")
    assert (again.skipped, again.embedded, again.failures) == (12, 0, [])


def test_cli_batch_mode_json_and_exit_status(photos, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["embed", str(photos), "--out", str(out), "--engine", "local", "--json"]
    )
    assert result.exit_code == 1, result.output  # two images failed
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 12 and sum("error" in line for line in lines) == 2
    assert all(line["faces"] >= 1 for line in lines if "error" not in line)
    again = CliRunner().invoke(main, ["embed", str(photos), "--out", str(out), "--engine", "local"])
    assert again.exit_code == 0 and "12 already in" in again.output


@pytest.mark.parametrize(
    "args",
    [
        ["--engine", "local", "--workers", "2"],
        ["--engine", "ray", "--no-detect"],
        ["--workers", "2"],
    ],
)
def test_cli_batch_usage_errors(photos, tmp_path, args):
    result = CliRunner().invoke(main, ["embed", str(photos), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_cli_bad_source_is_one_line(tmp_path):
    (tmp_path / "list.txt").write_text("x")
    for src in (tmp_path / "missing", tmp_path / "list.txt"):
        result = CliRunner().invoke(
            main, ["embed", str(src), "--out", str(tmp_path / "o"), "--engine", "local"]
        )
        assert result.exit_code == 2 and result.output.startswith("Error: "), result.output


def test_enroll_from_parquet_then_identify(photos, local_out, tmp_path):
    from facenet import FaceNet, Gallery

    path = str(tmp_path / "g.db")
    model = FaceNet.load()
    Gallery.create(path, model).close()
    out, _ = local_out
    result = CliRunner().invoke(main, ["gallery", "enroll", path, "--from-parquet", str(out)])
    assert result.exit_code == 1, result.output  # blank.png and corrupt.jpg listed as skipped
    assert "enrolled 10 faces of 5 people" in result.output
    with Gallery.open(path, model) as g:
        assert sorted(p.name for p in g.people()) == sorted(PEOPLE)
        found = g.identify(lfw_image("Tony_Blair", 3))
        assert found and found[0].name == "Tony_Blair"
    again = CliRunner().invoke(main, ["gallery", "enroll", path, "--from-parquet", str(out)])
    assert "enrolled 0 faces" in again.output and again.exit_code == 2  # nothing added twice


def test_enroll_from_parquet_refuses_another_model(local_out, tmp_path):
    from facenet import FaceNet, Gallery
    from facenet.catalog import DEFAULT_MODEL, MODELS

    other = next(n for n in MODELS if n != DEFAULT_MODEL)
    path = str(tmp_path / "g.db")
    Gallery.create(path, FaceNet.load(other)).close()
    result = CliRunner().invoke(
        main, ["gallery", "enroll", path, "--from-parquet", str(local_out[0])]
    )
    assert result.exit_code == 2 and "model id" in result.output, result.output
    with Gallery.open(path) as g:
        assert len(g.people()) == 0


def test_resume_with_another_model_is_refused(photos, local_out, tmp_path):
    """A folder written with one model is not resumed with another: the rows would mix two
    embedding spaces (and "already done" would hide that nothing was embedded)."""
    from facenet.batch.records import parts
    from facenet.catalog import DEFAULT_MODEL, MODELS

    out = tmp_path / "out"
    shutil.copytree(local_out[0], out)
    before = parts(out)
    other = next(n for n in MODELS if n != DEFAULT_MODEL)
    args = ["embed", str(photos), "--out", str(out), "--engine", "local", "-m", other]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "holds embeddings of model" in result.output and "Traceback" not in result.output
    assert parts(out) == before


def test_cli_unreachable_ray_is_one_line(photos, tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["embed", str(photos), "--out", str(tmp_path / "o"), "--engine", "ray"]
    result = CliRunner().invoke(main, [*args, "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 2 and result.output.startswith("Error: cannot reach Ray")

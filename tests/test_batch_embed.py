"""Batch embedding into Parquet: the local and the Ray engine agree, runs resume, and the
output enrols into a gallery without re-embedding (issue 20)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main

from .conftest import count_detect_batches, lfw_image

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
    import pyarrow.parquet as pq

    from facenet.batch import embed_to_folder
    from facenet.batch.records import parts, schema

    report = embed_to_folder(photos, tmp_path / "ray", engine="ray", batch_size=4, workers=2)
    assert report.embedded == 10
    local_faces, local_failures = rows(local_out[0])
    ray_faces, ray_failures = rows(tmp_path / "ray")
    assert ray_failures == local_failures
    schemas = {pq.read_schema(p).remove_metadata() for p in parts(local_out[0])}
    schemas |= {pq.read_schema(p).remove_metadata() for p in parts(tmp_path / "ray")}
    assert len(schemas) == 1 and schemas.pop().names == schema(1).names  # src_folder too
    assert {r["src_folder"] for f in ray_faces.values() for r in f.values()} == {str(photos)}
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


@pytest.mark.parametrize("copy_first", [False, True])
def test_resume_with_a_calibrated_copy_of_the_model_skips_what_is_done(
    photos, small_model, small_model_file, calibrated_model_file, tmp_path, copy_first
):
    """A calibrated copy (`facenet calibrate`: the same weights in another file, so another
    model id) makes the model's embeddings: a folder written by the model resumes with its copy,
    and one written by the copy with the model, skipping what is done (it was refused as
    another model). Each row records the model that wrote it."""
    from facenet.api import file_digest
    from facenet.batch import embed_to_folder

    models = [small_model_file, calibrated_model_file][:: -1 if copy_first else 1]
    done, new = (photos / PEOPLE[0] / f"{PEOPLE[0]}_000{i}.jpg" for i in (1, 2))
    (tmp_path / "one.csv").write_text(f"path\n{done}\n")
    (tmp_path / "two.csv").write_text(f"path\n{done}\n{new}\n")
    out = tmp_path / "out"
    assert embed_to_folder(tmp_path / "one.csv", out, model=str(models[0])).embedded == 1
    report = embed_to_folder(tmp_path / "two.csv", out, model=str(models[1]))
    assert (report.skipped, report.embedded) == (1, 1)
    faces, _ = rows(out)
    ids = [faces[str(p)][0]["model_id"] for p in (done, new)]
    assert ids == [file_digest(m) for m in models]  # each row: the model that wrote it
    assert {faces[str(p)][0]["embeddings_of"] for p in (done, new)} == {small_model.model_id}


def test_cli_unreachable_ray_is_one_line(photos, tmp_path):
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["embed", str(photos), "--out", str(tmp_path / "o"), "--engine", "ray"]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):  # Ray Client: was 30 s
        result = CliRunner().invoke(main, [*args, "--address", address])
        assert result.exit_code == 2 and result.output.startswith("Error: cannot reach Ray")


def test_cli_out_that_cannot_be_made_is_one_line(photos, tmp_path, monkeypatch):
    """--out under a file: one line (was a NotADirectoryError traceback); --out a URI: refused
    (was a local folder named "s3:", written to)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    args = ["embed", str(photos), "--out", str(tmp_path / "afile" / "sub"), "--engine", "local"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and result.output.startswith("Error: "), result.output
    assert "cannot make the output folder" in result.output
    uri = CliRunner().invoke(main, [*args[:3], "s3://bucket/emb", "--engine", "local"])
    assert uri.exit_code == 2 and "not a URI" in uri.output, uri.output
    assert not (tmp_path / "s3:").exists()


def test_resume_refuses_a_damaged_or_foreign_part(photos, local_out, tmp_path):
    """A truncated part, or another tool's part-*.parquet, in OUT: one line naming it, exit 2
    (was pyarrow's traceback); a folder named like a part is not one."""
    import pyarrow.parquet as pq

    from facenet.batch.records import parts

    good = tmp_path / "good"
    shutil.copytree(local_out[0], good)
    (good / "part-dir.parquet").mkdir()
    assert all(p.is_file() for p in parts(good))
    damaged = tmp_path / "damaged"
    shutil.copytree(local_out[0], damaged)
    (damaged / "part-zzz.parquet").write_bytes(parts(good)[0].read_bytes()[:300])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pq.write_table(pa.table({"a": [1]}), foreign / "part-00000-spark.parquet")
    for out, bad in ((damaged, "part-zzz.parquet"), (foreign, "part-00000-spark.parquet")):
        args = ["embed", str(photos), "--out", str(out), "--engine", "local"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and result.output.startswith("Error: "), result.output
        assert bad in result.output and len(result.output.strip().splitlines()) == 1
        g = str(tmp_path / f"{out.name}.db")
        CliRunner().invoke(main, ["gallery", "create", g])
        result = CliRunner().invoke(main, ["gallery", "enroll", g, "--from-parquet", str(out)])
        assert result.exit_code == 2 and bad in result.output, result.output


def test_path_lists_are_read_as_text(photos, tmp_path):
    """A headerless CSV is refused (its first photo was taken as the header and lost), a
    CSV path that looks like a number stays text, a Parquet column of numbers is refused, and
    a broken link in a folder is listed (to fail as "no such file"), not dropped."""
    import os

    import pyarrow.parquet as pq

    from facenet.batch.sources import list_sources
    from facenet.errors import FaceNetError

    photo = str(photos / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg")
    (tmp_path / "bare.csv").write_text(f"{photo}\n{photo}\n")
    with pytest.raises(FaceNetError, match="add a header line 'path'"):
        list_sources(tmp_path / "bare.csv")
    (tmp_path / "numbers.csv").write_text("path\n0001\n")
    assert list_sources(tmp_path / "numbers.csv") == [os.path.join(os.getcwd(), "0001")]
    pq.write_table(pa.table({"path": [1, 2]}), tmp_path / "ints.parquet")
    with pytest.raises(FaceNetError, match="holds int64, not paths"):
        list_sources(tmp_path / "ints.parquet")
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert list_sources(tmp_path / "tree") == [str(tmp_path / "tree" / "gone.jpg")]


def test_a_path_listed_twice_is_not_reported_as_already_done(photos, tmp_path):
    from facenet.batch import embed_to_folder

    photo = photos / PEOPLE[0] / f"{PEOPLE[0]}_0001.jpg"
    (tmp_path / "twice.csv").write_text(f"path\n{photo}\n{photo}\n")
    report = embed_to_folder(tmp_path / "twice.csv", tmp_path / "out", engine="local")
    assert (report.total, report.skipped, report.embedded) == (1, 0, 1)


def test_enroll_from_parquet_skips_bad_rows_and_duplicates(local_out, tmp_path):
    """A batch written twice (a Ray task retried) enrols once; a face with a NaN, zero or
    missing embedding, or with no folder to name its person, is skipped and listed, and the
    rest enrolled (before: one error after some people were added, or 2 copies of each)."""
    import pyarrow.parquet as pq

    from facenet import FaceNet, Gallery
    from facenet.batch.records import parts, read_output

    out = tmp_path / "out"
    shutil.copytree(local_out[0], out)
    for k, part in enumerate(parts(local_out[0])):
        shutil.copy(part, out / f"part-again{k}.parquet")
    table = read_output(local_out[0])
    rows = [r for r in table.to_pylist() if r["error"] is None and r["prominent"]][:4]
    size = len(rows[0]["embedding"])
    edits = [
        {**rows[0], "path": "/top.jpg"},  # no folder to name the person
        {**rows[1], "path": "/x/nan.jpg", "embedding": [float("nan")] * size},
        {**rows[2], "path": "/x/zero.jpg", "embedding": [0.0] * size},
        {**rows[3], "path": "/x/none.jpg", "embedding": None},
    ]
    pq.write_table(pa.Table.from_pylist(edits, schema=table.schema), out / "part-x.parquet")
    path = str(tmp_path / "g.db")
    Gallery.create(path, FaceNet.load()).close()
    result = CliRunner().invoke(main, ["gallery", "enroll", path, "--from-parquet", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "enrolled 10 faces of 5 people" in result.output
    for photo in ("/top.jpg", "/x/nan.jpg", "/x/zero.jpg", "/x/none.jpg"):
        assert f"skipped: {photo}: " in result.output
    assert "give --name" in result.output and result.output.count("corrupt.jpg:") == 1
    with Gallery.open(path) as g:
        assert len(g.faces()) == 10 and sorted(p.name for p in g.people()) == sorted(PEOPLE)


def test_ray_start_error_is_one_line():
    """Ray's multi-line errors (its advice on RAY_ADDRESS) shown as their first line."""
    from facenet.batch.ray_engine import _connect
    from facenet.errors import FaceNetError

    class FakeRay:
        def is_initialized(self):
            return False

        def init(self, **kwargs):
            raise ValueError("Invalid Ray address.\n  1. Unset RAY_ADDRESS\n  2. or else")

    with pytest.raises(FaceNetError) as caught:
        _connect(FakeRay(), "auto", 1)
    assert str(caught.value) == "cannot start or reach Ray (auto): Invalid Ray address."


def test_enroll_from_parquet_with_and_without_all_faces_adds_no_duplicate(local_out, tmp_path):
    """The main face is source PATH without --all-faces and PATH#K with it: enrolling the
    same output both ways added every main face twice."""
    from facenet import FaceNet, Gallery
    from facenet.batch.enroll import enroll_from_parquet

    model = FaceNet.load()
    for first, second in ((True, False), (False, True)):
        with Gallery.create(str(tmp_path / f"g{first}.db"), model) as g:
            enroll_from_parquet(g, local_out[0], all_faces=first)
            before = len(g.faces())
            report = enroll_from_parquet(g, local_out[0], all_faces=second)
            assert len(g.faces()) == before + len(report.enrolled)
            assert len(g.faces()) == sum(len(f) for f in rows(local_out[0])[0].values())


def test_a_part_that_cannot_be_written_is_one_line(photos, tmp_path, monkeypatch):
    """Disk full or no permission while writing a part: one line and exit 2, no temporary
    file left (was pyarrow's OSError traceback, exit 1)."""
    import facenet.batch.records as records

    def full(table, where):
        where.write_bytes(b"PAR1")  # half a file, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.pq, "write_table", full)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["embed", str(photos), "--out", str(out), "--engine", "local"]
    )
    assert result.exit_code == 2 and result.output.startswith("Error: "), result.output
    assert "cannot write a part" in result.output and list(out.iterdir()) == []


@pytest.fixture(scope="module")
def flat_out(tmp_path_factory):
    """A folder with two photos of two people loose in it and one in a person's sub-folder,
    embedded with the local engine."""
    from facenet.batch import embed_to_folder

    root = tmp_path_factory.mktemp("flat") / "big"
    (root / "Tony_Blair").mkdir(parents=True)
    shutil.copy(lfw_image("Tony_Blair", 1), root / "Tony_Blair")
    for name in ("Colin_Powell", "George_W_Bush"):
        shutil.copy(lfw_image(name, 1), root)
    out = root.parent / "out"
    assert embed_to_folder(root, out, engine="local").embedded == 3
    return root, out


def test_enroll_from_parquet_skips_photos_loose_in_the_embedded_folder(flat_out, tmp_path):
    """Photos directly in the folder SRC are skipped and listed, as `--folder` does (they were
    all enrolled as one person named after SRC: "big"); --name takes them."""
    from facenet import FaceNet, Gallery
    from facenet.batch.records import read_output

    root, out = flat_out
    assert set(read_output(out, ["src_folder"]).column("src_folder").to_pylist()) == {str(root)}
    path = str(tmp_path / "g.db")
    Gallery.create(path, FaceNet.load()).close()
    result = CliRunner().invoke(main, ["gallery", "enroll", path, "--from-parquet", str(out)])
    assert result.exit_code == 1, result.output
    assert "enrolled 1 face of 1 person" in result.output
    for name in ("Colin_Powell", "George_W_Bush"):
        loose = root / f"{name}_0001.jpg"
        assert f"skipped: {loose}: loose in the input folder: give --name" in result.output
    with Gallery.open(path) as g:
        assert [p.name for p in g.people()] == ["Tony_Blair"]
    named = CliRunner().invoke(
        main, ["gallery", "enroll", path, "--from-parquet", str(out), "--name", "Someone"]
    )
    assert "enrolled 2 faces of 1 person" in named.output  # Tony_Blair: already in, skipped
    with Gallery.open(path) as g:
        assert sorted(p.name for p in g.people()) == ["Someone", "Tony_Blair"]


def test_enroll_from_parquet_reads_parts_without_src_folder(flat_out, tmp_path):
    """Parts written before the src_folder column still enrol, by the folder rule as before."""
    import pyarrow.parquet as pq

    from facenet import FaceNet, Gallery
    from facenet.batch.enroll import enroll_from_parquet
    from facenet.batch.records import parts

    root, out = flat_out
    old = tmp_path / "old"
    old.mkdir()
    for part in parts(out):
        pq.write_table(pq.read_table(part).drop_columns(["src_folder"]), old / part.name)
    with Gallery.create(str(tmp_path / "g.db"), FaceNet.load()) as g:
        report = enroll_from_parquet(g, old)
        assert sorted(p for _, p, _ in report.enrolled) == ["Tony_Blair", "big", "big"]


def test_cli_json_prints_a_line_for_each_image_already_done(photos, local_out, tmp_path):
    """--json: one line per image, also for those OUT holds already (was none for them)."""
    out = tmp_path / "out"
    shutil.copytree(local_out[0], out)
    args = ["embed", str(photos), "--out", str(out), "--engine", "local", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 12 and all(line["skipped"] == "already done" for line in lines)
    assert {line["path"] for line in lines} == set(rows(out)[0]) | set(rows(out)[1])


def test_cli_out_named_like_a_file_is_refused_with_engine(photos, tmp_path):
    """--engine with --out e.npz made a folder named e.npz; refused unless it is a folder."""
    from facenet.batch import _out_folder

    for name in ("e.npz", "e.parquet"):
        args = ["embed", str(photos), "--out", str(tmp_path / name), "--engine", "local"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2 and result.output.startswith("Error: "), result.output
        assert "--out is a folder of Parquet parts" in result.output
        assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / name).exists()
    (tmp_path / "old.parquet").mkdir()
    assert _out_folder(tmp_path / "old.parquet") == tmp_path / "old.parquet"


@pytest.mark.parametrize("engine", [[], ["--engine", "local"], ["--engine", "ray"]])
def test_an_absurd_batch_size_is_a_usage_error(photos, tmp_path, engine):
    """--batch-size 0 or -1 was refused, but 10**9 was taken: every photo of SRC decoded and
    held in memory at once, one part for the whole run. Now 1..1024 (MAX_BATCH_SIZE), else a
    usage error naming the range, exit 2, before any work; the API refuses it too (0 was a
    ValueError traceback from range())."""
    from facenet.batch import MAX_BATCH_SIZE, embed_to_folder
    from facenet.errors import FaceNetError

    out = tmp_path / "o"
    for size in ("0", "-1", str(10**9)):
        result = CliRunner().invoke(main, ["embed", str(photos), "--out", str(out),
                                           "--batch-size", size, *engine])  # fmt: skip
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"Invalid value for '--batch-size': {size} is not in the range " in result.output
        assert f"1<=x<={MAX_BATCH_SIZE}" in result.output and not out.exists()
    for size in (0, MAX_BATCH_SIZE + 1):
        with pytest.raises(FaceNetError, match="batch_size must be 1..1024"):
            embed_to_folder(photos, out, batch_size=size)
    with pytest.raises(FaceNetError, match="workers must be at least 1"):
        embed_to_folder(photos, out, engine="ray", workers=0)
    assert not out.exists()


def test_more_ray_workers_than_cpus_start_as_many_actors_as_cpus(photos, tmp_path, caplog,
                                                                 monkeypatch):  # fmt: skip
    """--workers 3 on a machine with 1 CPU started Ray with 3 CPUs (3 actors, 3 models
    loaded, on 1 core). Now the actors are capped at the CPUs there are (this machine's, or
    the cluster's with --address) with one warning line."""
    pytest.importorskip("ray")
    import facenet.batch.ray_engine as ray_engine
    from facenet.batch import embed_to_folder

    monkeypatch.setattr(ray_engine, "available_cpus", lambda: 1)
    src = tmp_path / "src"
    src.mkdir()
    for name in PEOPLE[:2]:
        shutil.copy(lfw_image(name, 1), src)
    with caplog.at_level("WARNING"):
        report = embed_to_folder(src, tmp_path / "out", engine="ray", batch_size=1, workers=3)
    assert report.embedded == 2 and not report.failures
    warned = [r.getMessage() for r in caplog.records if "--workers" in r.getMessage()]
    assert warned == ["--workers 3: only 1 CPU here; starting 1 Ray actor"]


def test_the_default_ray_workers_are_capped_silently(photos, tmp_path, caplog, monkeypatch):
    """`facenet embed --engine ray` without --workers on a 1-CPU machine warned "--workers 2:
    only 1 CPU here" though the user never gave --workers. Now the default (2) is capped
    silently; a --workers the user gave is capped with the warning. Ray itself is not run:
    the decision function, and what the CLI and embed_to_folder hand to it."""
    import facenet.batch as batch
    import facenet.batch.ray_engine as ray_engine

    with caplog.at_level("WARNING"):
        assert ray_engine.cap_workers(2, 1, warn=False) == 1 and not caplog.records
        assert ray_engine.cap_workers(2, 4, warn=True) == 2 and not caplog.records
        assert ray_engine.cap_workers(3, 1, warn=True, where="in the Ray cluster") == 1
    assert [r.getMessage() for r in caplog.records] == [
        "--workers 3: only 1 CPU in the Ray cluster; starting 1 Ray actor"
    ]
    handed = []
    monkeypatch.setattr(ray_engine, "run_ray", lambda *a, **k: handed.append((a[4], k)))
    for workers in (None, 3):
        batch.embed_to_folder(photos, tmp_path / "o", engine="ray", workers=workers)
    assert handed == [(2, {"warn": False}), (3, {"warn": True})]
    given = []

    def embed_to_folder(*args, **options):
        given.append(options["workers"])
        return batch.BatchReport()

    monkeypatch.setattr(batch, "embed_to_folder", embed_to_folder)
    for option in ([], ["--workers", "3"]):
        args = ["embed", str(photos), "--out", str(tmp_path / "p"), "--engine", "ray", *option]
        CliRunner().invoke(main, args)
    assert given == [None, 3]


def test_an_interrupted_run_leaves_no_temporary_part(photos, tmp_path, monkeypatch):
    """Ctrl-C while a part was being written left its `.tmp-part-*.parquet` (only an OSError
    removed it), and a killed run's leftover stayed for ever (ignored, never removed). Now
    Ctrl-C removes it (exit 130, the finished parts kept) and the next run removes a killed
    run's leftovers, then resumes."""
    import facenet.batch.records as records
    from facenet.batch.records import parts

    write_table = records.pq.write_table
    calls = []

    def interrupted(table, where):
        calls.append(where)
        if len(calls) == 2:
            where.write_bytes(b"PAR1")  # half a part, then Ctrl-C
            raise KeyboardInterrupt
        write_table(table, where)

    monkeypatch.setattr(records.pq, "write_table", interrupted)
    out = tmp_path / "out"
    args = ["embed", str(photos), "--out", str(out), "--engine", "local", "--batch-size", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    assert sorted(out.iterdir()) == parts(out) and len(parts(out)) == 1
    monkeypatch.setattr(records.pq, "write_table", write_table)
    (out / ".tmp-part-killed.parquet").write_bytes(b"PAR1")  # what SIGKILL leaves
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "4 already in" in again.output, again.output  # 2 failed
    assert sorted(out.iterdir()) == parts(out) and len(parts(out)) == 3


def test_parquet_enrolled_faces_migrate_and_are_not_enrolled_twice(photos, local_out, tmp_path):
    """Faces enrolled from a `facenet embed` output keep their photo, box and landmarks, so a
    migration to another model embeds them again (before: every one flagged "added as a ready
    embedding" and left unsearchable); a photo already enrolled with --folder is not added a
    second time (before: the same face twice, under two sources)."""
    from facenet import FaceNet, Gallery
    from facenet.catalog import DEFAULT_MODEL, MODELS
    from facenet.gallery import migrate as m

    path = str(tmp_path / "g.db")
    model = FaceNet.load()
    with Gallery.create(path, model) as g:
        g.enroll(PEOPLE[0], sorted((photos / PEOPLE[0]).iterdir()))
    result = CliRunner().invoke(
        main, ["gallery", "enroll", path, "--from-parquet", str(local_out[0])]
    )
    assert "enrolled 8 faces of 4 people" in result.output, result.output
    assert result.output.count("already in the gallery") == 2
    with Gallery.open(path, model) as g:
        ready = [f for f in g.faces() if f.person != PEOPLE[0]]
    assert all(f.photo and f.box and f.landmarks for f in ready)
    other = FaceNet.load(next(n for n in MODELS if n != DEFAULT_MODEL))
    report = m.migrate(path, m.Target.of(other), dry_run=True)
    assert report.faces == 10 and report.flagged == [], report.flagged


@pytest.fixture
def flaky(tmp_path):
    """A source folder whose `later.jpg` cannot be read at first (written later), a photo and
    a blank image (no face), embedded once into `out`: two failures recorded."""
    from PIL import Image

    from facenet.batch import embed_to_folder

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(lfw_image("Tony_Blair", 1), src / "good.jpg")
    (src / "later.jpg").write_bytes(b"still being copied")
    Image.fromarray(np.full((120, 120, 3), 128, np.uint8)).save(src / "blank.png")
    out = tmp_path / "out"
    first = embed_to_folder(src, out, engine="local", batch_size=2)
    assert (first.embedded, len(first.failures)) == (1, 2)
    shutil.copy(lfw_image("Colin_Powell", 1), src / "later.jpg")  # readable now
    return src, out


def path_rows(out) -> dict[str, list]:
    """path -> [error or face index] over every row of an output folder."""
    from facenet.batch.records import read_output

    found: dict[str, list] = {}
    for row in read_output(out, ["path", "face", "error"]).to_pylist():
        found.setdefault(row["path"].rsplit("/", 1)[-1], []).append(row["error"] or row["face"])
    return found


def test_retry_failed_embeds_the_recorded_failures_again_replacing_their_rows(flaky):
    """A rerun skips what OUT holds, failures too: a file unreadable for a moment was never
    tried again. --retry-failed tries every failure again: a success replaces its failure row,
    a failure again is recorded once, and the images embedded are not touched."""
    from facenet.batch import embed_to_folder

    src, out = flaky
    plain = embed_to_folder(src, out, engine="local")
    assert (plain.skipped, plain.embedded, plain.retried) == (3, 0, 0)
    before = path_rows(out)
    report = embed_to_folder(src, out, engine="local", retry_failed=True)
    assert (report.skipped, report.retried, report.embedded) == (1, 2, 1)
    assert [p.rsplit("/", 1)[-1] for p, _ in report.failures] == ["blank.png"]
    after = path_rows(out)
    assert after == {**before, "later.jpg": [0]}  # one face row, the failure gone
    assert after["blank.png"] == ["no face found"] and after["good.jpg"] == before["good.jpg"]
    again = embed_to_folder(src, out, engine="local", retry_failed=True)
    assert (again.retried, again.embedded, len(again.failures)) == (1, 0, 1)
    assert path_rows(out) == after


def test_an_interrupted_retry_leaves_its_images_to_the_next_run(flaky, monkeypatch):
    """Failure rows are removed before their images are embedded again: interrupted in between,
    the images are simply not done, and any later run embeds them (no row lost or doubled)."""
    import facenet.batch.local as local
    from facenet.batch import embed_to_folder

    src, out = flaky

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "run_local", interrupted)
    with pytest.raises(KeyboardInterrupt):
        embed_to_folder(src, out, engine="local", retry_failed=True)
    assert set(path_rows(out)) == {"good.jpg"}
    monkeypatch.undo()
    report = embed_to_folder(src, out, engine="local")  # no --retry-failed needed now
    assert (report.skipped, report.embedded, len(report.failures)) == (1, 1, 1)
    assert path_rows(out)["later.jpg"] == [0] and path_rows(out)["blank.png"] == ["no face found"]


def test_cli_retry_failed(flaky):
    src, out = flaky
    args = ["embed", str(src), "--out", str(out), "--engine", "local", "--retry-failed"]
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code == 1, result.output  # blank.png failed again
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((line["path"].rsplit("/", 1)[-1], "error" in line) for line in lines) == [
        ("blank.png", True), ("good.jpg", False), ("later.jpg", False)
    ]  # fmt: skip
    assert "1 already in" in result.stderr and "2 earlier failures tried again" in result.stderr
    bare = CliRunner().invoke(main, ["embed", str(src / "good.jpg"), "--out",
                                     str(out.parent / "e.npz"), "--retry-failed"])  # fmt: skip
    assert bare.exit_code == 2 and "--retry-failed go with --engine" in bare.stderr
    assert "Traceback" not in bare.output


def test_ray_engine_retries_failures_too(flaky):
    pytest.importorskip("ray")
    from facenet.batch import embed_to_folder

    src, out = flaky
    report = embed_to_folder(src, out, engine="ray", batch_size=2, workers=1, retry_failed=True)
    assert (report.skipped, report.retried, report.embedded, len(report.failures)) == (1, 2, 1, 1)
    assert path_rows(out) == {"good.jpg": [0], "later.jpg": [0], "blank.png": ["no face found"]}


def test_enroll_from_parquet_takes_a_calibrated_copys_embeddings_both_ways(local_out, tmp_path):
    """Rows record the model whose embeddings they are (`embeddings_of`): a gallery of the
    model takes rows a calibrated copy made, and a gallery made with a copy takes the model's
    rows; rows of a copy that record nothing (parts written before the column) are refused."""
    import pyarrow.parquet as pq

    from facenet import FaceNet, Gallery
    from facenet.batch.enroll import enroll_from_parquet
    from facenet.batch.records import parts
    from facenet.errors import GalleryError

    from .test_gallery_calibrated_copy import calibrated_copy

    model = FaceNet.load()
    copy = calibrated_copy(model, 0.3)
    out = local_out[0]
    written = {r["embeddings_of"] for found in rows(out)[0].values() for r in found.values()}
    assert written == {model.model_id}  # the model's own id: it is no copy
    path = str(tmp_path / "copy.db")
    Gallery.create(path, copy).close()  # made with the copy: the model's rows fit
    result = CliRunner().invoke(main, ["gallery", "enroll", path, "--from-parquet", str(out)])
    assert result.exit_code == 1 and "enrolled 10 faces" in result.output, result.output
    by_copy, old = tmp_path / "by_copy", tmp_path / "old"
    by_copy.mkdir(), old.mkdir()
    for part in parts(out):
        table = pq.read_table(part)
        ids = pa.array([copy.model_id] * len(table), pa.string())
        table = table.set_column(table.schema.get_field_index("model_id"), "model_id", ids)
        pq.write_table(table, by_copy / part.name)
        pq.write_table(table.drop_columns(["embeddings_of"]), old / part.name)
    with Gallery.create(str(tmp_path / "g.db"), model) as g:
        with pytest.raises(GalleryError, match="embedded by model id"):
            enroll_from_parquet(g, old)  # a copy's id, and no record of its origin
        assert len(enroll_from_parquet(g, by_copy).enrolled) == 10


def test_a_batch_is_decoded_in_pixel_groups_with_the_same_rows(photos, monkeypatch):
    """`embed_batch` decodes and detects its photos a group of `DECODED_PIXELS` at a time (large
    photos are never held all at once); the rows, failures and their order do not change."""
    import facenet.images
    from facenet import FaceNet
    from facenet.batch.records import embed_batch

    model = FaceNet.load()
    paths = sorted(str(p) for p in photos.rglob("*") if p.is_file())
    whole = embed_batch(model, paths).to_pylist()
    sizes = count_detect_batches(monkeypatch, model.detector)
    monkeypatch.setattr(facenet.images, "DECODED_PIXELS", 250 * 250)  # one LFW photo a group
    grouped = embed_batch(model, paths).to_pylist()
    assert sizes == [1] * 11  # 10 LFW photos and the blank one; the corrupt one never decodes
    assert [(r["path"], r["face"], r["error"]) for r in grouped] == [
        (r["path"], r["face"], r["error"]) for r in whole
    ]
    for a, b in zip(grouped, whole, strict=True):
        if a["error"] is None:
            assert np.abs(np.asarray(a["embedding"]) - np.asarray(b["embedding"])).max() <= 1e-6


def test_enroll_from_parquet_without_pyarrow_names_its_option(tmp_path, monkeypatch):
    """Without pyarrow (the light install) `gallery enroll --from-parquet` said "--engine local
    needs pyarrow", an option the user never gave."""
    from facenet import FaceNet, Gallery

    path = str(tmp_path / "g.db")
    Gallery.create(path, FaceNet.load()).close()
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as on the light install
    args = ["gallery", "enroll", path, "--from-parquet", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    said = "Error: --from-parquet needs pyarrow: pip install 'facenet-keras[ray]'\n"
    assert result.output == said

"""`facenet gallery ...`, `facenet identify` and `facenet cluster`, over a fake model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main

from .test_gallery import FakeModel, make_tree, photo, save


@pytest.fixture
def fake(monkeypatch):
    import facenet.cli.cluster
    import facenet.cli.gallery

    model = FakeModel()
    for module in (facenet.cli.gallery, facenet.cli.cluster):
        monkeypatch.setattr(module, "load_model", lambda path: model)
    return model


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def test_gallery_commands_end_to_end(tmp_path, fake):
    g = tmp_path / "g.db"
    assert "created" in run("gallery", "create", g).output
    assert run("gallery", "create", g).exit_code == 2

    root = make_tree(tmp_path / "people", people=2, photos=3)
    result = run("gallery", "enroll", g, "--folder", root)
    assert result.exit_code == 0, result.output
    assert "enrolled 6 faces of 2 people; skipped 0 photos" in result.output

    ada = [save(tmp_path / f"ada{v}.png", photo((5, v, 30))) for v in range(2)]
    group = save(tmp_path / "group.png", photo((5, 4, 40), (1, 4, 10)))
    result = run("gallery", "enroll", g, "--name", "Ada", *ada, group, "--metadata", '{"x": 1}')
    assert result.exit_code == 0, result.output
    assert "note: " in result.output and "2 faces found" in result.output
    result = run("gallery", "enroll", g, "--name", "Ada", ada[0])
    assert "duplicate" in result.output and "enrolled 0 faces" in result.output
    assert run("gallery", "enroll", g, ada[0]).exit_code == 2  # neither --name nor --folder

    listing = [json.loads(line) for line in run("gallery", "list", g, "--json").output.splitlines()]
    assert [(p["name"], p["faces"]) for p in listing] == [
        ("Ada", 3),
        ("person_01", 3),
        ("person_02", 3),
    ]
    assert listing[0]["metadata"] == {"x": 1}

    query = save(tmp_path / "q.png", photo((2, 9, 30), (7, 0, 30)))
    result = run("identify", query, "--gallery", g, "--json", "--k", "2")
    assert result.exit_code == 0, result.output
    faces = json.loads(result.output)["faces"]
    assert [f["name"] for f in faces] == ["person_02", "unknown"]
    assert len(faces[0]["matches"]) == 2
    table = run("identify", query, "--gallery", g).output
    assert "person_02" in table and "unknown" in table

    assert run("gallery", "rename", g, "person_02", "Bob").exit_code == 0
    assert "merged" in run("gallery", "merge", g, "person_01", "Bob").output
    assert "removed Ada and 3 faces" in run("gallery", "remove", g, "Ada").output
    listing = run("gallery", "list", g).output
    assert "Bob\t6 faces" in listing and "Ada" not in listing
    result = run("gallery", "rename", g, "Nobody", "X")
    assert result.exit_code == 2 and result.output.startswith("Error: no person named 'Nobody'")
    assert "no such gallery" in run("gallery", "list", tmp_path / "nope.db").output


def test_model_mismatch_is_one_line_error(tmp_path, monkeypatch, fake):
    import facenet.cli.gallery

    g = tmp_path / "g.db"
    run("gallery", "create", g)
    monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: FakeModel(name="other"))
    result = run("identify", save(tmp_path / "q.png", photo((1, 0, 30))), "--gallery", g)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "holds embeddings of model 'fake'" in result.output


def test_cluster_command(tmp_path, fake):
    folder = tmp_path / "photos"
    for person in (1, 2):
        for v in range(3):
            save(folder / f"{person}_{v}.png", photo((person, v, 30)))
    save(folder / "blank.png", np.zeros((10, 10, 3), np.uint8))
    out = tmp_path / "out"
    result = run("cluster", folder, "--out", out, "--method", "dbscan", "--min-size", "2")
    assert result.exit_code == 0, result.output
    assert "6 faces from 7 photos -> 2 clusters" in result.output
    assert (out / "index.html").is_file() and (out / "cluster_001").is_dir()


def test_cluster_output_that_cannot_be_written_is_one_line(tmp_path, fake, monkeypatch):
    """A full disk while `facenet cluster` wrote its folder was an OSError traceback. Now one
    line naming --out, exit 2, and no folder (nor its hidden temporary one) left behind."""
    import errno
    from pathlib import Path

    folder = tmp_path / "photos"
    for person in (1, 2):
        save(folder / f"{person}_0.png", photo((person, 0, 30)))
    out = tmp_path / "out"

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)  # clusters.json, after the crops
    result = run("cluster", folder, "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output == f"Error: cannot write {out} (No space left on device)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_create_with_an_index_backend(tmp_path, fake):
    pytest.importorskip("pymilvus", reason="the milvus backend needs facenet-keras[milvus]")
    g, shared = tmp_path / "g.db", tmp_path / "elsewhere" / "faces.db"
    shared.parent.mkdir()
    result = run("gallery", "create", g, "--index", "milvus", "--index-uri", shared)
    assert result.exit_code == 0, result.output
    root = make_tree(tmp_path / "people", people=2, photos=2)
    assert run("gallery", "enroll", g, "--folder", root).exit_code == 0
    assert shared.is_dir() and not (tmp_path / "g.db.milvus.db").exists()
    query = save(tmp_path / "q.png", photo((2, 9, 30)))
    result = run("identify", query, "--gallery", g, "--json")
    assert json.loads(result.output)["faces"][0]["name"] == "person_02"

    for args, message in [
        (["--index", "nosuch"], "unknown index backend 'nosuch'"),
        (["--index", "faiss", "--index-uri", "http://x:19530"], "takes no URI"),
        (["--index", "milvus", "--index-uri", "http://127.0.0.1:1"], "cannot reach Milvus"),
    ]:
        result = run("gallery", "create", tmp_path / "other.db", *args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert result.output.count("\n") == 1 and not (tmp_path / "other.db").exists()


def test_remove_faces_is_all_or_nothing(tmp_path, fake):
    from facenet.gallery import Gallery

    from .test_gallery import fake_embedding

    path = tmp_path / "g.db"
    with Gallery.create(path, fake) as g:
        ids = g.add_embeddings("Ada", np.stack([fake_embedding(1, v) for v in range(3)]))
    for unknown in ("999", str(2**70)):  # the second no SQLite integer can hold
        faces = ["--face", ids[0], "--face", unknown, "--face", ids[1]]
        result = run("gallery", "remove", path, *faces)
        assert result.exit_code == 2, result.output
        message = f"no face with id {unknown} in the gallery; nothing removed"
        assert result.output == f"Error: {message}\n"
        with Gallery.open(path) as g:
            assert len(g) == 3  # face ids[0] stayed too
    result = run("gallery", "remove", path, "--face", ids[0], "--face", ids[1], "--face", ids[0])
    assert result.exit_code == 0, result.output
    assert result.output.count("removed face #") == 2
    with Gallery.open(path) as g:
        assert [f.id for f in g.faces("Ada")] == [ids[2]]


def test_enroll_folder_reports_photos_loose_in_the_root(tmp_path, fake):
    """`--folder ROOT`: sub-folders name people, so a photo directly in ROOT is no one's; it is
    listed as skipped (exit 1), not silently left out."""
    g = tmp_path / "g.db"
    run("gallery", "create", g)
    root = make_tree(tmp_path / "people", people=2, photos=2)
    loose = save(root / "loose.png", photo((9, 0, 30)))
    result = run("gallery", "enroll", g, "--folder", root)
    assert result.exit_code == 1, result.output
    assert f"skipped {loose}: directly in the root folder" in result.output
    assert "enrolled 4 faces of 2 people; skipped 1 photo" in result.output


def test_enroll_json_prints_each_batch_as_it_is_stored(tmp_path, fake, monkeypatch):
    """An interrupted `enroll --json` has printed a line for every face it kept."""
    from facenet.gallery.enrol import EnrolMixin

    g = tmp_path / "g.db"
    run("gallery", "create", g)
    root = make_tree(tmp_path / "people", people=2, photos=3)
    real, calls = EnrolMixin._embed_one, []

    def interrupt_in_third_batch(self, *args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(EnrolMixin, "_embed_one", interrupt_in_third_batch)
    result = run("gallery", "enroll", g, "--folder", root, "--batch-size", "2", "--json")
    assert result.exit_code == 130
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and all(line["face_id"] for line in lines)
    listing = run("gallery", "list", g, "--json").output.splitlines()
    assert sum(json.loads(line)["faces"] for line in listing) == 4

    monkeypatch.setattr(EnrolMixin, "_embed_one", real)
    result = run("gallery", "enroll", g, "--folder", root, "--batch-size", "2", "--json")
    assert result.exit_code == 1, result.output  # the 4 kept are skipped as duplicates
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum("face_id" in line for line in lines) == 2  # the rest, resumed
    assert sum(line.get("error", "").startswith("duplicate") for line in lines) == 4


def test_an_absurd_batch_size_is_a_usage_error(tmp_path, fake):
    """`gallery enroll` and `gallery migrate` took --batch-size 10**9 (every photo decoded and
    held at once, one transaction for all), as `facenet embed` used to. Now 1..1024 as there,
    else click's usage error, exit 2, before any work; the API refuses a batch size below 1
    in one line (enrol silently used 1 for 0; migrate with -1 took every face at once), with
    the same 1..1024 range."""
    from facenet.errors import FaceNetError
    from facenet.gallery import Gallery
    from facenet.gallery import migrate as m

    g = tmp_path / "g.db"
    assert run("gallery", "create", g).exit_code == 0
    root = make_tree(tmp_path / "people", people=1, photos=1)
    for size in ("0", "-1", str(10**9)):
        for args in (("gallery", "enroll", g, "--folder", root),
                     ("gallery", "migrate", g, "--model", "other", "--dry-run")):  # fmt: skip
            result = run(*args, "--batch-size", size)
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
            assert f"'--batch-size': {size} is not in the range 1<=x<=1024" in result.output
    with Gallery.open(g, fake) as gallery:
        for size in (0, 1025):  # 1..1024, as on the command line, from the call made
            calls = (  # (a folder that is not there: the batch size is checked first)
                (gallery.enroll, "Ada", [root / "person_01" / "000.png"]),
                (gallery.enroll_folder, tmp_path / "none"),
            )
            for enrol, *args in calls:
                with pytest.raises(
                    FaceNetError, match=rf"^batch_size must be 1\.\.1024; got {size}$"
                ):
                    enrol(*args, batch_size=size)
        assert gallery.people() == [] and fake.calls == 0
    with pytest.raises(FaceNetError, match=r"^batch_size must be 1\.\.1024; got -1$"):
        m.migrate(g, m.Target.of(FakeModel(name="other", dim=24), "other"), batch_size=-1)

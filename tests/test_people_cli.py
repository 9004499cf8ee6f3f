"""`facenet library ...` end to end on real LFW photos: output, --json, exit statuses."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from facenet.cli import main

from .people_support import memo_model, photos


@pytest.fixture(autouse=True)
def memo(monkeypatch):
    import facenet.cli.gallery

    monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: memo_model().model)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_library_commands_end_to_end(tmp_path):
    lib = tmp_path / "lib.db"
    folder = tmp_path / "album"
    (folder / "2003").mkdir(parents=True)
    for photo in photos("Colin_Powell", 4):
        (folder / "2003" / photo.name).symlink_to(photo)
    result = run("library", "add", lib, *photos("Tony_Blair", 3), "--json")
    assert result.exit_code == 0, result.output
    report = lines(result)[0]
    assert report["photos"] == 3 and report["new_clusters"] == 1
    assert report["regrouped"] == 0  # nothing stood near them to regroup
    missing = tmp_path / "missing.jpg"
    result = run("library", "add", lib, *photos("Colin_Powell", 3), missing)
    assert result.exit_code == 1 and "missing.jpg" in result.stderr  # some inputs failed
    assert run("library", "add", lib, missing).exit_code == 2  # nothing done
    assert run("library", "add", lib).exit_code == 2  # no photos: usage error
    result = run("library", "add", lib, folder)  # a folder: 3 duplicates skipped, 1 new
    assert result.exit_code == 0 and "from 1 photo:" in result.stderr
    assert "regrouped;" in result.stderr
    assert "joined a person or cluster" in result.stderr  # not "to known people": unnamed too

    people = lines(run("library", "people", lib, "--json"))
    assert len(people) == 2 and all(p["name"] is None for p in people)
    tony = next(p["id"] for p in people if p["face_count"] == 3)
    assert run("library", "name", lib, tony, "Tony Blair").exit_code == 0
    assert run("library", "people", lib, "--named").stdout.split("\t")[2].strip() == "Tony Blair"
    faces = lines(run("library", "faces", lib, tony, "--json"))
    assert [f["state"] for f in faces] == ["named"] * 3

    result = run("library", "split", lib, tony, faces[0]["id"])
    assert result.exit_code == 0, result.output
    new = int(result.stdout)
    assert run("library", "merge", lib, tony, new).stdout.strip() == str(tony)
    assert run("library", "move", lib, faces[0]["id"], "none").exit_code == 0
    suggested = lines(run("library", "suggest", lib, tony, "--json"))
    assert faces[0]["id"] not in {s["face_id"] for s in suggested}  # "not Tony" since moved
    assert run("library", "link", lib, faces[1]["id"], faces[2]["id"]).exit_code == 0
    assert "must" in run("library", "constraints", lib).stdout
    assert run("library", "unlink", lib, faces[1]["id"], faces[2]["id"]).exit_code == 0
    assert run("library", "unlink", lib, faces[1]["id"], faces[2]["id"]).exit_code == 2
    result = run("library", "decline", lib, tony, faces[1]["id"], 999999)
    assert result.exit_code == 1 and "no face with id 999999" in result.stderr
    result = run("library", "accept", lib, tony, 999999, "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["face"] == "999999"
    assert run("library", "reject", lib, faces[0]["id"], "--reason", "ignore").exit_code == 0
    result = run("library", "reject", lib, faces[1]["id"], "--undo")  # it was never rejected
    assert result.exit_code == 2 and f"face {faces[1]['id']} is not rejected" in result.stderr
    assert run("library", "recluster", lib, "--json").exit_code == 0
    kinds = {c["kind"] for c in lines(run("library", "constraints", lib, "--json"))}
    assert {"cannot", "reject", "name"} <= kinds
    assert run("library", "constraints", lib).exit_code == 0  # nothing broken
    assert run("library", "people", tmp_path / "nope.db").exit_code == 2
    assert "Error:" in run("library", "merge", lib, tony, 424242).output
    huge = run("library", "move", lib, 2**64, tony)  # beyond SQLite's integers: a usage error
    assert (
        huge.exit_code == 2
        and "Traceback" not in huge.output
        and "OverflowError" not in huge.output
    )


def test_an_absurd_batch_size_is_a_usage_error(tmp_path):
    """`library add --batch-size 10**9` was taken (every photo decoded and held at once), and
    Library.add(batch_size=0) silently used 1. Now the CLI takes 1..1024 as `facenet embed`
    does (else click's usage error, exit 2, before any work) and the API refuses 0 in one
    line."""
    from facenet.errors import FaceNetError
    from facenet.people import Library

    from .test_gallery import FakeModel, photo, save

    image = save(tmp_path / "a.png", photo((1, 0, 30)))
    for size in ("0", "-1", str(10**9)):
        result = run("library", "add", tmp_path / "lib.db", image, "--batch-size", size)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"'--batch-size': {size} is not in the range 1<=x<=1024" in result.output
    assert not (tmp_path / "lib.db").exists()
    model = FakeModel()
    with Library.open(tmp_path / "api.db", model) as lib:
        for size in (0, 1025):  # 1..1024, as on the command line
            with pytest.raises(FaceNetError, match=rf"^batch_size must be 1\.\.1024; got {size}$"):
                lib.add([image], batch_size=size)
        assert lib.faces() == [] and model.calls == 0

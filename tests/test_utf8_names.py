"""A photo whose file name is not valid UTF-8 (old archives, Windows zips; Linux allows any
bytes) is one failed input, never a crash: `gallery enroll`, `library add`, `embed --engine
local` and `cluster` report it in one line, go on with the other photos and exit 1."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from facenet.cli import main
from facenet.images import require_utf8_path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BAD = os.fsdecode(b"\xff\xfe.jpg")  # a str with surrogate escapes, as os.listdir gives it
REASON = "file name is not valid UTF-8; rename it"


@pytest.fixture
def album(tmp_path) -> Path:
    """Four good example photos (two people, twice each) and one (a copy of c_1.jpg) whose
    name is not UTF-8."""
    folder = tmp_path / "album"
    folder.mkdir()
    for name in ("a_1.jpg", "a_2.jpg", "b_1.jpg", "b_2.jpg"):
        shutil.copy(EXAMPLES / name, folder / name)
    shutil.copy(EXAMPLES / "c_1.jpg", folder / BAD)
    return folder


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_failure(result, bad: Path) -> None:
    """Exit status 1 (some inputs failed), no traceback, one line (stderr, or a JSON line with
    --json) naming the bad file and why."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if REASON in line]
    assert len(lines) == 1, result.output
    assert f"{bad.parent}/\\udcff\\udcfe.jpg" in lines[0]  # escaped by stderr and by JSON


def test_require_utf8_path_names_file_or_folder():
    require_utf8_path("/photos/Zoë ñ.jpg")  # any valid UTF-8 passes
    require_utf8_path(b"/photos/a.jpg")
    with pytest.raises(Exception, match="file name is not valid UTF-8"):
        require_utf8_path(b"/photos/\xff.jpg")
    with pytest.raises(Exception, match="folder name is not valid UTF-8"):
        require_utf8_path(os.fsdecode(b"/ph\xfeotos/a.jpg"))


def test_gallery_enroll_skips_a_non_utf8_name(album, tmp_path):
    from facenet import Gallery

    gallery = tmp_path / "g.db"
    assert run("gallery", "create", gallery).exit_code == 0
    photos = sorted(album.iterdir())
    result = run("gallery", "enroll", gallery, "--name", "X", *photos)
    one_failure(result, album / BAD)
    with Gallery.open(str(gallery)) as g:
        assert len(g) == 4  # the good photos were enrolled
    folder = tmp_path / "people"
    shutil.copytree(album, folder / "X")
    assert run("gallery", "create", tmp_path / "g2.db").exit_code == 0
    result = run("gallery", "enroll", tmp_path / "g2.db", "--folder", folder)
    one_failure(result, folder / "X" / BAD)


def test_library_add_places_the_good_faces_and_reruns(album, tmp_path):
    library = tmp_path / "lib.db"
    result = run("library", "add", library, album)
    one_failure(result, album / BAD)
    assert "added 4 faces from 4 photos" in result.stderr
    people = [
        json.loads(line) for line in run("library", "people", library, "--json").stdout.splitlines()
    ]
    assert sum(p["face_count"] for p in people) == 4  # placed (clustered), not left pending
    again = run("library", "add", library, album)  # a re-run: the good ones are duplicates
    one_failure(again, album / BAD)


def test_batch_embed_reports_a_non_utf8_name(album, tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    result = run("embed", album, "--out", out, "--engine", "local", "--json")
    assert result.exit_code == 1, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 5
    failed = [r for r in rows if "error" in r]
    assert len(failed) == 1 and REASON in failed[0]["error"]
    assert failed[0]["path"] == str(album / BAD)
    assert all(r["faces"] >= 1 for r in rows if "error" not in r)
    again = run("embed", album, "--out", out, "--engine", "local")  # resumes: 4 done, 1 failed
    one_failure(again, album / BAD)
    assert "4 already in" in again.stdout


def test_cluster_reports_a_non_utf8_name_and_writes_the_whole_folder(album, tmp_path):
    out = tmp_path / "clusters"
    result = run("cluster", album, "-o", out)
    one_failure(result, album / BAD)
    summary = json.loads((out / "clusters.json").read_text())
    assert sum(c["size"] for c in summary["clusters"]) + len(summary["noise"]) == 4
    assert len(summary["unreadable"]) == 1
    assert "</html>" in (out / "index.html").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["album", "clusters"]  # no temp left


def test_cluster_late_error_leaves_no_half_written_folder(album, tmp_path, monkeypatch):
    import facenet.clustering.photos as photos

    def broken(summary):
        raise RuntimeError("disk full")

    monkeypatch.setattr(photos, "_contact_sheet", broken)
    out = tmp_path / "clusters"
    result = run("cluster", album / "a_1.jpg", album / "b_1.jpg", "-o", out)
    assert isinstance(result.exception, RuntimeError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["album"]  # nothing half-written
    monkeypatch.undo()
    result = run("cluster", album / "a_1.jpg", album / "b_1.jpg", "-o", out)  # a re-run works
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file()

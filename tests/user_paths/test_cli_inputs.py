"""Awkward inputs a new user gives the `facenet` command (the CLI audit): each has a defined
outcome, one line and the documented exit status, and no file of the user's is changed. Real
subprocesses, the bundled model, LFW photos."""

from __future__ import annotations

import os
import shutil

import pytest

from ..conftest import lfw_image
from .helpers import facenet


@pytest.mark.parametrize(
    "command",
    [("gallery", "list"), ("gallery", "enroll", "--name", "X"), ("library", "people")],
)
def test_an_empty_file_named_as_a_gallery_is_refused_untouched(tmp_path, command):
    """SQLite takes an empty file for a new database: opening `photo.jpg` of 0 bytes as a
    gallery or library wrote a 4 KiB database header into it, then said "not a facenet
    gallery"."""
    empty = tmp_path / "photo.jpg"
    empty.touch()
    photos = [lfw_image("Colin_Powell")] if "enroll" in command else []
    result = facenet(*command[:2], empty, *command[2:], *photos)
    assert result.code == 2
    assert result.stderr.strip() == f"Error: {empty}: not a facenet gallery"
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]  # no -wal, -shm


def unprivileged() -> tuple[str, ...]:
    """A prefix under which a file's permissions bite: none for a plain user; as root (who reads
    any file), setpriv without the capabilities that bypass them; else the test is skipped."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a chmod 000 file stays readable")
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


def test_an_unreadable_photo_is_one_failed_input(tmp_path):
    """A photo without read permission was a usage error (`Path ... is not readable`, exit 2)
    that dropped every other photo given, or inside a folder "corrupt or truncated image
    ([Errno 13] ...)". Now it is one failed input, named with its reason: exit 1."""
    good = lfw_image("Colin_Powell")
    locked = tmp_path / "people" / "locked.jpg"
    locked.parent.mkdir()
    shutil.copy(lfw_image("Colin_Powell", 2), locked)
    locked.chmod(0)
    reason = f"{locked}: cannot read (Permission denied)"

    result = facenet("embed", locked, good, "-o", tmp_path / "e.npz", "--on-missing", "nan",
                     "--json", wrap=unprivileged())  # fmt: skip
    assert result.code == 1, result.stderr
    assert result.json_lines() == [
        {"path": str(locked), "row": 0, "error": reason},
        {"path": str(good), "row": 1},
    ]
    result = facenet("cluster", locked.parent, "-o", tmp_path / "out", "--json",
                     wrap=unprivileged())  # fmt: skip
    assert result.code == 2  # its only photo failed
    assert result.json_lines() == [{"photo": str(locked), "error": reason}]


def test_verify_json_stays_json_when_a_photo_fails(tmp_path):
    """`verify --json` printed nothing on stdout when a photo could not be read or showed no
    face (`facenet verify --json a b | jq` read nothing); now its one JSON object says why."""
    text = tmp_path / "text.jpg"
    text.write_text("not a photo")
    good = str(lfw_image("Colin_Powell"))
    result = facenet("verify", "--json", text, good)
    assert result.code == 2
    reason = f"{text}: not an image file (unrecognised format)"
    assert result.json_lines() == [{"first": str(text), "second": good, "error": reason}]
    assert result.stderr.strip() == f"Error: {reason}"


def test_a_missing_library_names_the_command_that_makes_one(tmp_path):
    """`facenet library people MISSING` advised `facenet gallery create`; a library is made by
    `facenet library add`."""
    missing = tmp_path / "photos.db"
    result = facenet("library", "people", missing)
    assert result.code == 2
    assert result.stderr.strip() == (
        f"Error: {missing}: no such library (`facenet library add {missing} PHOTOS` makes one)"
    )
    assert not missing.exists()


def test_align_given_a_photo_as_src_says_it_wants_a_folder(tmp_path):
    """`facenet align photo.jpg OUT` said "photo.jpg: no such folder" of a file that exists."""
    photo = lfw_image("Colin_Powell")
    result = facenet("align", photo, tmp_path / "out")
    assert result.code == 2
    assert result.stderr.strip() == f"Error: {photo}: not a folder (SRC is a dataset folder)"
    assert not (tmp_path / "out").exists()

"""Awkward inputs a new user gives the `facenet` command (the CLI audit): each has a defined
outcome, one line and the documented exit status, and no file of the user's is changed. Real
subprocesses, the bundled model, LFW photos."""

from __future__ import annotations

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

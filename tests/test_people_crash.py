"""kill -9 during `library add` and during `recluster` (a real subprocess, real LFW faces, the
default model) leaves a consistent database and loses no correction.

The subprocess installs a TEMP trigger on its own connection that, at a chosen write, marks a
file and sleeps: the test kills it there, inside the write transaction, so the kill lands with
writes made but not committed (the worst moment), not merely between transactions.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from facenet.people import Library

from .killing import kill_when
from .people_support import memo_model, photos
from .test_people_invariants import snapshot

REPO = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from facenet import FaceNet
    from facenet.people import Library

    library, marker, what, after = sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    calls = [0]

    def pause():
        calls[0] += 1
        if calls[0] == after:
            marker.write_text("in the transaction")
            time.sleep(120)
        return 0

    lib = Library.open(library, FaceNet.load() if what == "add" else None, create=False)
    db = lib._store.db
    db.create_function("pause", 0, pause)
    event = "INSERT ON faces" if what == "add" else "UPDATE OF person_id ON faces"
    db.execute(f"CREATE TEMP TRIGGER hold AFTER {event} BEGIN SELECT pause(); END")
    if what == "add":
        lib.add(sys.argv[6:], batch_size=4)
    else:
        lib.recluster()
    lib.close()
    """
)


def run_and_kill(tmp_path, path, what: str, after: int, files=()) -> None:
    script = tmp_path / "work.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "marker"
    command = [sys.executable, str(script), str(REPO), str(path), str(marker), what, str(after)]
    returncode = kill_when([*command, *map(str, files)], marker.exists, what, timeout=300)
    assert returncode == -signal.SIGKILL


def corrected_library(path: Path, strict_photos: list[Path]) -> None:
    """A library with a named person, and unassigned faces carrying every kind of correction."""
    with Library.open(path, memo_model()) as lib:
        lib.add(photos("Colin_Powell", 4))
        lib.name(lib.people()[0].id, "Colin Powell")
    with Library.open(path, memo_model(), threshold=0.01) as strict:  # places nothing
        strict.add(strict_photos)
    with Library.open(path, create=False) as lib:
        free = [f.id for f in lib.faces(unassigned=True)]
        lib.must_link(free[0], free[1])
        lib.cannot_link(free[2], free[3])
        lib.reject(free[4], "ignore")
        assert lib.violations() == []


def assert_consistent(path: Path) -> None:
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    per_photo = dict(db.execute("SELECT content_hash, faces FROM photos").fetchall())
    stored = dict(db.execute("SELECT content_hash, COUNT(*) FROM faces GROUP BY content_hash"))
    assert {h: n for h, n in per_photo.items() if n} == stored  # whole photos only
    db.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_during_add_loses_no_correction(tmp_path):
    path = tmp_path / "lib.db"
    corrected_library(path, photos("Tony_Blair", 8))
    with Library.open(path, create=False) as lib:
        before = snapshot(lib)
    more = photos("Gerhard_Schroeder", 16) + photos("Jean_Chretien", 16)
    run_and_kill(tmp_path, path, "add", after=14, files=more)  # mid-way through batch 4
    assert_consistent(path)
    with Library.open(path, memo_model()) as lib:
        after = snapshot(lib)
        assert after[:3] == before[:3]  # every link, rejection and name is there
        linked = {f for _, a, b in before[0] for f in (a, b)}
        placed = dict(after[3])
        for face, person in before[3]:  # no assigned or corrected face moved
            assert placed[face] == person or (person == -1 and face not in linked)
        added = len(after[3]) - len(before[3])
        assert 8 <= added < 32 and lib.gallery.index_status.startswith(("repaired", "rebuilt"))
        assert len(lib.gallery.index) == len(after[3])
        report = lib.add(more)  # resumed: what was committed is skipped
        assert report.photos + len(report.duplicates) == 32 and report.photos < 32
        assert lib.violations() == []


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_kill_during_recluster_loses_no_correction(tmp_path):
    path = tmp_path / "lib.db"
    corrected_library(path, photos("Tony_Blair", 8) + photos("Colin_Powell", 6, start=5))
    with Library.open(path, create=False) as lib:
        before = snapshot(lib)
    run_and_kill(tmp_path, path, "recluster", after=3)
    assert_consistent(path)
    with Library.open(path, create=False) as lib:
        assert snapshot(lib) == before  # the half-written re-clustering is gone entirely
        report = lib.recluster()
        assert report.changed >= 3 and lib.violations() == []
        assert snapshot(lib)[:3] == before[:3]

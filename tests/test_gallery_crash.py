"""A process killed (SIGKILL) in the middle of an enrolment leaves a consistent gallery."""

from __future__ import annotations

import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from facenet.gallery import Gallery

from .killing import kill_when
from .test_gallery import FakeModel, assert_index_matches_db, make_tree

REPO = Path(__file__).resolve().parents[1]

ENROLL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[3])
    from facenet.gallery import Gallery
    from tests.test_gallery import FakeModel

    gallery = Gallery.open(sys.argv[1], FakeModel(delay=0.03))
    gallery.enroll_folder(sys.argv[2], batch_size=4, progress=False)
    gallery.close()
    """
)


def face_count(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_killed_enrolment_leaves_a_consistent_gallery(tmp_path):
    root = make_tree(tmp_path / "people", people=6, photos=10)  # 60 photos
    path = tmp_path / "g.db"
    Gallery.create(path, FakeModel()).close()
    script = tmp_path / "enroll.py"
    script.write_text(ENROLL_SCRIPT)

    returncode = kill_when(
        [sys.executable, str(script), str(path), str(root), str(REPO)],
        lambda: face_count(path) >= 12,
        "enrolment",
    )
    assert returncode == -signal.SIGKILL

    model = FakeModel()
    with Gallery.open(path, model) as g:
        before = len(g)
        assert 12 <= before < 60, "the kill came too late to test anything"
        assert before % 4 == 0  # whole batches only: one transaction per batch
        assert g.index_status.startswith(("repaired", "rebuilt")), g.index_status
        assert_index_matches_db(g)
        assert sum(p.faces for p in g.people()) == before

        report = g.enroll_folder(root, progress=False)
        assert len(report.enrolled) == 60 - before
        assert all(s.reason.startswith("duplicate") for s in report.skipped)
        assert len(g) == 60
        assert_index_matches_db(g)
    with Gallery.open(path, model) as g:
        assert g.index_status == "loaded"
        assert {p.name: p.faces for p in g.people()} == {f"person_{i:02d}": 10 for i in range(1, 7)}

"""Issue 22's acceptance test: a gallery of 30 LFW people enrolled from folders with one model
(one merge, one rename, one removed face, one photo deleted), migrated to another.

Checks: every person, name, merge and removal kept; identify works with the new model; a
rollback gives the old model's answers exactly; a kill -9 during the migration leaves the gallery
usable on the old model and the migration resumable.

The models: `facenet-mobilenet` -> `dlib-resnet` when those names load; else the bundled default
model file -> `second_model_file` (an untrained small model: then "identify works" is checked on
the enrolled photos only, since its answers on other photos mean nothing). Override with
FACENET_MIGRATION_MODELS="OLD,NEW" (names or files).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from .killing import kill_when

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import migration_lfw as lfw  # noqa: E402

NAMED = ("facenet-mobilenet", "dlib-resnet")
PEOPLE = 30


def model_pair(second_model_file) -> tuple[str, str, bool]:
    """(old, new, trained): model specs, and whether both are trained models."""
    from facenet import FaceNet
    from facenet.catalog import MODELS
    from facenet.errors import FaceNetError

    if os.environ.get("FACENET_MIGRATION_MODELS"):
        old, new = os.environ["FACENET_MIGRATION_MODELS"].split(",")
        return old, new, True
    try:
        for name in NAMED:
            FaceNet.load(name)
        return *NAMED, True
    except FaceNetError:
        return str(MODELS["facenet-mobilenet"].path()), str(second_model_file), False


def rows(path: Path, table: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def kill_during_migration(path: Path, new: str) -> int:
    """Start `facenet gallery migrate` in a process, SIGKILL it mid-way; faces it embedded."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "facenet", "gallery", "migrate", str(path), "--model", new,
               "--batch-size", "1"]  # fmt: skip
    returncode = kill_when(
        command, lambda: rows(path, "face_embeddings") >= 5, "migration", 300, env=env, cwd=REPO
    )
    assert returncode == -signal.SIGKILL
    return rows(path, "face_embeddings")


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")
def test_lfw_gallery_moves_to_another_model(tmp_path, lfw_dir, second_model_file):
    from click.testing import CliRunner

    from facenet import FaceNet
    from facenet.cli import main
    from facenet.gallery import Gallery

    old_spec, new_spec, trained = model_pair(second_model_file)
    old, new = FaceNet.load(old_spec), FaceNet.load(new_spec)
    chosen = lfw.choose(lfw_dir, PEOPLE)
    setup = lfw.build(tmp_path, chosen, old, old_spec)
    path, probes = setup["gallery"], setup["probes"]
    kept = lfw.snapshot(path)
    assert len(kept) == PEOPLE and sum(len(ids) for *_, ids in kept) == 2 * PEOPLE - 1
    enrolled = [(setup["names"][n], files[0]) for n, files in chosen.items()]
    with Gallery.open(path, old) as g:
        before = lfw.answers(g, probes)

    done = kill_during_migration(path, new_spec)
    assert 5 <= done < 2 * PEOPLE - 1, "the kill came too late to test anything"
    with Gallery.open(path, old) as g:  # still the old model, answering as before
        assert lfw.answers(g, probes) == before

    result = CliRunner().invoke(main, ["gallery", "migrate", str(path), "--model", new_spec])
    assert result.exit_code == 0, result.output
    print("\n" + result.stdout)
    assert "from the stored crop: 1 faces; flagged (kept on the old model): 0" in result.stdout
    assert lfw.snapshot(path) == kept  # people, names, the merge and the removal
    with Gallery.open(path, new) as g:
        assert g.model_id == new.model_id and len(g.index) == len(g)
        after = lfw.accuracy(g, probes)
        mine = [name for name, _ in lfw.answers(g, enrolled)]
        assert mine == [name for name, _ in enrolled]  # every enrolled photo finds its person
    if trained:
        print(f"held-out rank-1 with the new model: {after['rank1']:.1%}")
        assert after["rank1"] >= 0.8

    result = CliRunner().invoke(main, ["gallery", "migrate", str(path), "--rollback"])
    assert result.exit_code == 0, result.output
    assert lfw.snapshot(path) == kept
    with Gallery.open(path, old) as g:
        assert lfw.answers(g, probes) == before  # names and distances, exactly

"""Open-set identification thresholds: the per-probe false-accept rule, gallery calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main
from facenet.errors import GalleryError
from facenet.evaluate.openset import (
    calibrate_gallery,
    nearest_distances,
    others_nearest,
    threshold_at_far,
)
from facenet.gallery import Gallery

from .test_gallery import FakeModel, fake_embedding


def test_threshold_accepts_at_most_far_of_strangers():
    nearest = np.arange(1, 101, dtype=float) / 100  # 0.01 .. 1.00
    for far in (0.0, 0.01, 0.05, 0.2):
        t = threshold_at_far(nearest, far)
        assert np.mean(nearest <= t) <= far
        assert np.mean(nearest <= t) >= far - 0.01  # and not stricter than needed
    with pytest.raises(ValueError, match="no stranger"):
        threshold_at_far(np.array([np.inf]), 0.01)


def test_nearest_and_others_match_brute_force():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.repeat(np.arange(10), 4)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    best, where = nearest_distances(x[:5], x[5:], block=7)
    np.testing.assert_allclose(best, d[:5, 5:].min(1), atol=1e-5)
    np.testing.assert_array_equal(where, d[:5, 5:].argmin(1))
    other, own = others_nearest(x, labels)
    for i in range(40):
        np.testing.assert_allclose(other[i], d[i][labels != labels[i]].min(), atol=1e-5)
        mask = (labels == labels[i]) & (np.arange(40) != i)
        np.testing.assert_allclose(own[i], d[i][mask].min(), atol=1e-5)


def _gallery(tmp_path, people=12, faces=3):
    model = FakeModel()
    g = Gallery.create(tmp_path / "g.db", model)
    for person in range(1, people + 1):
        vectors = np.stack([fake_embedding(person, v) for v in range(faces)])
        g.add_embeddings(f"p{person}", vectors, [f"p{person}_{v}" for v in range(faces)])
    return g, model


def test_gallery_calibration_is_stored_and_used(tmp_path):
    g, model = _gallery(tmp_path)
    assert g.threshold == model.info.open_set_threshold  # the model's until calibrated
    result = calibrate_gallery(*_matrix(g), far=0.05)
    stored = g.calibrate(0.05)
    assert stored["threshold"] == pytest.approx(result["threshold"])
    assert stored["false_accept_rate"] <= 0.05 and stored["identified_rate"] > 0.9
    g.close()
    reopened = Gallery.open(tmp_path / "g.db", model)
    assert reopened.threshold == pytest.approx(stored["threshold"])
    reopened.close()


def _matrix(g):
    ids, rows = zip(*g._store.embeddings(), strict=True)
    ids = np.concatenate(ids)
    owners = g._store.names_for(ids.tolist())
    return np.concatenate(rows), np.array([owners[int(i)][0] for i in ids])


def test_calibrate_command_dry_run_and_errors(tmp_path, monkeypatch):
    import facenet.cli.gallery

    g, model = _gallery(tmp_path, people=6)
    g.close()
    monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: model)
    path = str(tmp_path / "g.db")
    result = CliRunner().invoke(main, ["gallery", "calibrate", path, "--dry-run"])
    assert result.exit_code == 2 and "needs at least 100 faces; the gallery has 18" in result.output
    command = ["gallery", "calibrate", path, "--far", "0.1", "--dry-run", "--json"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.splitlines()[-1])
    assert report["strangers"] == 18 and 0 < report["threshold"] < 4
    with Gallery.open(path) as reopened:
        assert reopened.calibrated_threshold is None  # a dry run stores nothing
    empty = tmp_path / "empty.db"
    Gallery.create(empty, model).close()
    result = CliRunner().invoke(main, ["gallery", "calibrate", str(empty)])
    assert result.exit_code == 2 and "no faces to calibrate on" in result.output


def _add_library_faces(g, model):
    """People-library faces in the gallery file: one of an unnamed cluster, one of nobody."""
    with g._store.transaction() as db:
        cluster = db.execute(
            "INSERT INTO people (name, metadata, created) VALUES (NULL, '{}', 'now')"
        ).lastrowid
        rows = [
            (person, f"lib{i}.jpg", f"hash{i}", None, 0.9,
             fake_embedding(50 + i, 0).astype(np.float32).tobytes(), model.model_id,
             None, None, None)
            for i, person in enumerate((cluster, None))
        ]  # fmt: skip
        g._store.add_faces(db, rows)


def test_calibration_counts_named_people_only(tmp_path):
    g, model = _gallery(tmp_path)
    named_only = g.calibrate(0.05, save=False)
    _add_library_faces(g, model)  # calibrate raised KeyError on them
    result = g.calibrate(0.05, save=False)
    assert result["strangers"] == named_only["strangers"] == 36
    assert result["threshold"] == pytest.approx(named_only["threshold"])
    g.close()


def test_a_false_accept_rate_of_zero_is_refused(tmp_path, monkeypatch):
    import facenet.cli.gallery

    g, model = _gallery(tmp_path, people=1)  # 3 faces: far too few for any rate
    g.add_embeddings("other", fake_embedding(2, 0)[None])
    with pytest.raises(GalleryError, match=r"must be in \(0, 1\)"):
        g.calibrate(0.0)
    g.close()
    monkeypatch.setattr(facenet.cli.gallery, "load_model", lambda path: model)
    path = str(tmp_path / "g.db")
    result = CliRunner().invoke(main, ["gallery", "calibrate", path, "--far", "0"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--far': 0.0 is not in the range 0<x<1" in result.output
    with Gallery.open(path) as reopened:
        assert reopened.calibrated_threshold is None  # nothing stored


def test_calibration_refuses_a_target_duplicates_break(tmp_path):
    """Strangers at distance 0 are accepted by any threshold: with more of them than the
    target allows, no threshold meets it, and nothing is stored."""
    g, _ = _gallery(tmp_path, people=9, faces=2)
    same = fake_embedding(99, 0)
    for name in ("dup1", "dup2", "dup3"):  # 3 of 21 faces, each identical to another's
        g.add_embeddings(name, same[None])
    with pytest.raises(GalleryError, match="no threshold keeps the false-accept rate at 10"):
        g.calibrate(0.1)
    assert g.calibrated_threshold is None
    g.close()

"""tools/view1_paired.py: per-pair decisions that add up to the 10-fold accuracy, and the exact
McNemar test on the pairs only one file gets right."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from view1_paired import fold_decisions, mcnemar  # noqa: E402


def _noisy_pairs(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    distances = np.where(labels, 0.3, 0.7) + rng.normal(0, 0.2, n)
    folds = np.repeat(np.arange(10), n // 10)
    return distances, labels, folds


def test_decisions_count_what_the_kfold_accuracy_reports():
    from facenet.evaluate.metrics import kfold_accuracy

    distances, labels, folds = _noisy_pairs(0)
    right = fold_decisions(distances, labels, folds)
    accuracy = kfold_accuracy(distances, labels, folds)["accuracy"]  # equal folds: a plain mean
    assert right.dtype == bool and right.shape == labels.shape
    assert right.sum() == round(accuracy * labels.size)
    assert 0.8 < right.mean() < 0.99  # the pairs overlap: neither all right nor chance


def test_mcnemar_counts_only_the_discordant_pairs():
    base = np.array([True] * 90 + [False] * 10 + [True] * 5)
    cand = np.array([True] * 90 + [True] * 10 + [False] * 5)
    wins, losses, p = mcnemar(base, cand)
    assert (wins, losses) == (10, 5)
    assert p == pytest.approx(0.3018, abs=1e-4)  # two-sided binomial, 10 of 15 at 1/2


def test_a_clear_win_and_a_tie():
    base = np.zeros(100, bool)
    assert mcnemar(base, np.ones(100, bool))[2] < 1e-20
    assert mcnemar(base, base) == (0, 0, 1.0)


def test_two_files_with_different_crops_on_a_small_view1_file(
    tmp_path, lfw_dir, small_model_file, second_model_file, capsys, monkeypatch
):
    """The user path: two model files wanting different crops (64 px crop, 48 px chip), a View 1
    pairs file of 5 + 5 pairs; exit 0, counts per set and pooled, each file's crops cached."""
    import view1_paired

    rows = (lfw_dir.parent / "pairsDevTest.txt").read_text().splitlines()
    (tmp_path / "lfw-deepfunneled").symlink_to(lfw_dir)
    pairs = tmp_path / "pairsSmall.txt"
    pairs.write_text("\n".join(["5", *rows[1:6], *rows[501:506]]) + "\n")
    argv = ["view1_paired.py", str(small_model_file), str(second_model_file), "--pairs", str(pairs),
            "--cache-dir", str(tmp_path / "crops")]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    assert view1_paired.main() == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["pairsSmall.txt", "pooled"]
    assert lines[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]  # one set: pooled = it
    assert " of 10 right; only the candidate " in lines[1]
    assert sorted(p.name for p in (tmp_path / "crops").iterdir()) == [
        "pairsSmall-chip-48-m32.npz",
        "pairsSmall-crop-64-m32.npz",
    ]

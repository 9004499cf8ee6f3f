"""tools/student_diagnosis.py: its measures on synthetic embeddings whose answers are known, and
its usage error. The measurement itself needs the teacher and the chips; see the training report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from student_diagnosis import band_correlations, diagnose, spread, verification  # noqa: E402

from facenet.train.distill import TARGET_ROTATION_SEED, random_rotation  # noqa: E402
from facenet.train.validation import PairValidator  # noqa: E402


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _people(seed: int, people: int = 200, d: int = 128, noise: float = 0.3):
    """Two faces a person (a shared direction plus noise) and View-1-like pairs over them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, d))
    faces = _unit(np.repeat(centres, 2, axis=0) + noise * rng.normal(size=(2 * people, d)))
    same = [(2 * i, 2 * i + 1) for i in range(people)]
    different = [(2 * i, 2 * ((i + 1) % people)) for i in range(people)]
    a, b = np.array(same + different).T
    labels = np.r_[np.ones(people, bool), np.zeros(people, bool)]
    folds = np.arange(2 * people) % 10
    crops = np.zeros((2 * people, 1, 1, 3), np.uint8)
    return faces, PairValidator(crops, a, b, labels, folds)


def test_spread_counts_the_directions_in_use():
    rng = np.random.default_rng(0)
    assert spread(rng.normal(size=(20000, 16)))["participation_ratio"] == pytest.approx(
        16, rel=0.05
    )
    line = rng.normal(size=(2000, 1)) * np.ones((1, 16)) + 1e-6 * rng.normal(size=(2000, 16))
    assert spread(line)["participation_ratio"] == pytest.approx(1, abs=0.01)
    assert spread(line)["top10_share"] == pytest.approx(1, abs=1e-6)


def test_verification_counts_error_kinds():
    faces, val = _people(1, noise=0.1)
    clean = verification(faces, val)
    assert clean["accuracy"] == 1.0 and clean["false_accepts"] == clean["false_rejects"] == 0
    assert clean["wrong"].sum() == 0 and clean["d_prime"] > 5
    blurred, _ = _people(1, noise=2.0)
    noisy = verification(blurred, val)
    assert noisy["accuracy"] < 0.95 and noisy["false_accepts"] + noisy["false_rejects"] > 0


def test_a_student_in_the_target_space_correlates_fully_and_noise_shows_by_band():
    teacher, _ = _people(2)
    turn = random_rotation(128, TARGET_ROTATION_SEED)
    student = 3.0 * teacher @ turn.T  # the target space: a scale times the fixed rotation
    axes = np.linalg.eigh(np.cov((teacher - teacher.mean(0)).T))[1][:, ::-1]
    assert min(band_correlations(student, teacher, axes).values()) == pytest.approx(1.0)
    noisy = _unit(student + 0.05 * np.random.default_rng(3).normal(size=student.shape))
    bands = band_correlations(noisy, teacher, axes)
    assert bands["1-10"] > bands["41-128"]


def test_diagnose_reports_every_figure():
    teacher, val = _people(4, noise=0.2)
    rng = np.random.default_rng(5)
    student = _unit(teacher @ random_rotation(128, TARGET_ROTATION_SEED).T
                    + 0.15 * rng.normal(size=teacher.shape))  # fmt: skip
    out = diagnose(val, teacher, teacher, student, student)
    assert out["pairs"] == len(val) and out["faces"] == len(val.crops)
    assert out["student"]["accuracy"] <= out["teacher"]["accuracy"]
    assert set(out["teacher_top_k_accuracy"]) == {"10", "20", "40"}
    assert set(out["student_centred_accuracy"]) == {"training_mean", "test_set_mean"}
    assert out["student_only_wrong"]["false_accepts"] >= 0


def test_a_missing_model_is_a_one_line_exit_2(tmp_path):
    tool = [sys.executable, str(ROOT / "tools" / "student_diagnosis.py")]
    run = subprocess.run([*tool, str(tmp_path / "none.keras")], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip().endswith("none.keras: no such file or folder")

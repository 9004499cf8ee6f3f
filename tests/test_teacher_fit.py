"""tools/teacher_fit.py: the fit measure (mean cosine, as is and after centring) and its usage
errors. The measurement itself needs the run folders and the teacher; see the training report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from teacher_fit import FaceSet, compare_line, fit_cosines, sample  # noqa: E402


def _faces(seed: int, n: int = 2000, d: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A large common direction plus each face's own small part, as in the dlib space."""
    rng = np.random.default_rng(seed)
    common = np.zeros(d)
    common[0] = 10.0
    return common, rng.normal(size=(n, d))


def test_identical_sets_fit_perfectly_and_scale_does_not_matter():
    common, own = _faces(0)
    x = common + own
    assert fit_cosines(x, 3.0 * x) == pytest.approx((1.0, 1.0))


def test_centring_removes_the_common_direction():
    """The same own parts on top of different common offsets: the raw cosine drops, the centred
    one sees a perfect fit; unrelated own parts on the same offset: raw high, centred ~0."""
    common, own = _faces(1)
    other = np.roll(common, 1)
    raw, centred = fit_cosines(common + 0.2 * own, other + 0.2 * own)
    assert raw < 0.2 and centred > 0.95
    unrelated = _faces(2)[1]
    raw, centred = fit_cosines(common + own, common + unrelated)
    assert raw > 0.5 and abs(centred) < 0.05


def test_fit_cosines_needs_paired_rows():
    with pytest.raises(ValueError, match="paired"):
        fit_cosines(np.ones((4, 3)), np.ones((5, 3)))


def test_sample_is_seeded_sorted_and_capped():
    a, b = sample(100, 10), sample(100, 10)
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0) and len(a) == 10
    assert len(sample(5, 10)) == 5


def test_compare_is_paired_and_only_on_the_same_faces():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 0.9, 500)  # the faces' own difficulty, shared by both models
    faces = FaceSet("lfw", [str(i) for i in range(500)], np.zeros((500, 1, 1, 3), np.uint8))
    other = {"lfw_names": np.array(faces.names), "lfw_centred": base}
    line = compare_line(faces, base + 0.01, other, "b.npz")
    assert line == "vs b.npz: +0.0100 ± 0.0000 (paired)"
    other["lfw_names"] = np.array(faces.names[::-1])
    assert "not compared" in compare_line(faces, base, other, "b.npz")


def test_usage_errors_are_one_line_exit_2(tmp_path):
    tool = [sys.executable, str(ROOT / "tools" / "teacher_fit.py")]
    missing = subprocess.run([*tool, str(tmp_path / "none.keras")], capture_output=True, text=True)
    assert missing.returncode == 2 and "none.keras: no such file" in missing.stderr
    model = tmp_path / "m.keras"
    model.write_bytes(b"")
    present = ["--teacher", str(model), "--celeba", str(tmp_path), "--utkface", str(tmp_path),
               "--pairs", str(model)]  # fmt: skip
    norun = subprocess.run([*tool, str(model), *present, "--run", str(tmp_path)],
                           capture_output=True, text=True)  # fmt: skip
    assert norun.returncode == 2 and "not a run folder" in norun.stderr
    (tmp_path / "config.json").write_text("{}")
    empty = subprocess.run([*tool, str(model), *present, "--run", str(tmp_path)],
                           capture_output=True, text=True)  # fmt: skip
    assert empty.returncode == 2 and empty.stderr.strip() == f"error: {tmp_path}: no images"
    assert "Traceback" not in missing.stderr + norun.stderr + empty.stderr

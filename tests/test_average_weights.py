"""tools/average_weights.py: the element-wise mean of snapshots' weights, the first file's
ModelInfo kept, and a refusal for files of another architecture."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from average_weights import average  # noqa: E402


def test_the_mean_of_two_snapshots(tmp_path, small_model_file):
    from facenet.models import load_keras_model, save_model

    first, info = load_keras_model(small_model_file)
    shifted = [w + 1.0 for w in first.get_weights()]
    first.set_weights(shifted)
    other = save_model(first, info, tmp_path / "other.keras")
    out = average([small_model_file, other], tmp_path / "mean.keras")
    mean, mean_info = load_keras_model(out)
    original, _ = load_keras_model(small_model_file)
    for got, w in zip(mean.get_weights(), original.get_weights(), strict=True):
        np.testing.assert_allclose(got, w + 0.5, rtol=1e-6, atol=1e-6)
    assert mean_info.name == info.name


def test_another_architecture_is_refused(tmp_path, small_model_file, second_model_file):
    with pytest.raises(SystemExit, match="not the architecture"):
        average([small_model_file, second_model_file], tmp_path / "mean.keras")

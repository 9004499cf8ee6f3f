"""`facenet train` on inputs it cannot use: one line, exit status 2, and nothing of the user's
replaced. Every case fails before the first step, so none of them trains."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facenet.cli import main

from .conftest import CELEBA_DIR

TINY = [
    "--backbone", "mobilenet", "--alpha", "0.25", "--input-size", "32", "--epochs", "1",
    "--steps-per-epoch", "1", "--batch-p", "2", "--batch-k", "2", "--val-pairs", "none",
]  # fmt: skip


def _data(root: Path, identities: int = 3) -> Path:
    """`identities` CelebA identities with 2 images each."""
    if not CELEBA_DIR.is_dir():
        pytest.skip(f"CelebA not available at {CELEBA_DIR}")
    folders = [f for f in sorted(CELEBA_DIR.iterdir()) if len(list(f.glob("*.jpg"))) >= 2]
    for folder in folders[:identities]:
        (root / folder.name).mkdir(parents=True)
        for image in sorted(folder.glob("*.jpg"))[:2]:
            shutil.copy(image, root / folder.name / image.name)
    return root


def train(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["train", *map(str, args)])
    return result.exit_code, result.output


def test_unusable_data_is_one_line(tmp_path):
    data = _data(tmp_path / "one", identities=1)
    code, out = train(data, "--out", tmp_path / "run1", *TINY)
    assert code == 2 and "1 identities to train on" in out and "Traceback" not in out

    data = _data(tmp_path / "three")
    code, out = train(data, "--out", tmp_path / "run2", *TINY, "--batch-p", "5")
    assert code == 2 and "need at least p = 5" in out

    bad = data / next(p.name for p in data.iterdir()) / "zz_notes.jpg"
    bad.write_text("not a photo")
    code, out = train(data, "--out", tmp_path / "run3", *TINY)
    assert code == 2 and "zz_notes.jpg: not a readable image" in out
    bad.unlink()

    whole = next(data.glob("*/*.jpg"))
    cut = whole.with_name("zz_cut.jpg")
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a truncated download
    code, out = train(data, "--out", tmp_path / "run4", *TINY)
    assert code == 2 and "zz_cut.jpg: not a readable image (damaged or truncated)" in out


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [("--lr", "nan", "lr must be a finite number"), ("--alpha", "0", "alpha must be positive"),
     ("--margin", "-1", "margin must be at least 0"),
     ("--val-fraction", "0.5", "val_pairs='split' only")],
)  # fmt: skip
def test_nonsense_numbers_are_usage_errors(tmp_path, option, value, said):
    code, out = train(tmp_path, "--out", tmp_path / "run", *TINY, option, value)
    assert code == 2 and said in out


def test_a_folder_that_is_not_a_run_is_not_replaced(tmp_path):
    data = _data(tmp_path / "data")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.keras").write_bytes(b"my own model")
    code, out = train(data, "--out", mine, *TINY)
    assert code == 2 and "not a run folder" in out
    assert (mine / "model.keras").read_bytes() == b"my own model"


def test_resume_with_other_network_settings_is_refused_and_keeps_the_config(tmp_path):
    data = _data(tmp_path / "data")
    run = tmp_path / "run"
    run.mkdir()
    saved = {"data": str(data), "backbone": "mobilenet", "loss": "triplet+ce", "input_size": 32}
    (run / "config.json").write_text(json.dumps(saved))
    (run / "checkpoint.npz").write_bytes(b"")  # only its presence matters before the check
    code, out = train(data, "--out", run, *TINY, "--input-size", "48", "--resume")
    assert code == 2 and "--input-size 32 (now 48)" in out
    assert json.loads((run / "config.json").read_text()) == saved


def test_a_garbage_teacher_file_is_named(tmp_path):
    data = _data(tmp_path / "data")
    teacher = tmp_path / "views.npz"
    teacher.write_text("not an archive")
    code, out = train(data, "--out", tmp_path / "run", *TINY, "--loss", "ce", "--ce-weight", "0",
                      "--teacher", teacher)  # fmt: skip
    assert code == 2 and "views.npz: not a teacher-views (.npz) file" in out


def test_a_checkpoint_given_as_init_is_named_for_what_it_is(tmp_path):
    data = _data(tmp_path / "data")
    checkpoint = tmp_path / "checkpoint.npz"
    np.savez(checkpoint, epoch=np.array(3))
    code, out = train(data, "--out", tmp_path / "run", *TINY, "--init", checkpoint)
    assert code == 2 and "checkpoint.npz: a NumPy archive" in out and "--resume" in out
    assert "facenet convert" not in out


def test_init_from_a_file_with_layers_this_network_lacks_is_refused(tmp_path):
    """--init from a file pooled by a learnt depthwise convolution into a network built without
    --pooling depthwise would silently drop that layer's weights: refused, naming the option."""
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, save_model

    data = _data(tmp_path / "data")
    source = build_facenet("mobilenet", (32, 32, 3), 128, alpha=0.25, pooling="depthwise")
    save_model(source, ModelInfo(input_size=32, alpha=0.25), tmp_path / "gdc.keras")
    code, out = train(data, "--out", tmp_path / "run", *TINY, "--init", tmp_path / "gdc.keras")
    assert code == 2 and "GDC" in out and "--pooling depthwise" in out
    assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    code, out = train(data, "--out", tmp_path / "run2", *TINY, "--pooling", "depthwise",
                      "--init", tmp_path / "gdc.keras")  # fmt: skip
    assert code == 0, out


@pytest.mark.parametrize(
    ("backend", "blocked", "said"),
    [("tensorflow", "tensorflow", "needs tensorflow: pip install 'facenet-keras[tf]'"),
     ("tensorflow", "keras", "needs keras: pip install 'facenet-keras[tf]'"),
     ("jax", "jax", "needs jax: pip install 'facenet-keras[jax]'")],
)  # fmt: skip
def test_a_backend_not_installed_is_one_line_naming_its_extra(
    tmp_path, monkeypatch, backend, blocked, said
):
    """The light install has no TensorFlow or Keras: `facenet train` said so in a
    ModuleNotFoundError traceback (exit status 1) from inside the trainer."""
    monkeypatch.setitem(sys.modules, blocked, None)  # as absent as in a light install
    softmax = ("--loss", "ce", "--ce-weight", "1") if backend == "jax" else ()  # jax: softmax
    args = ("--backend", backend, *softmax)
    code, out = train(tmp_path, "--out", tmp_path / "run", *TINY, *args)
    assert code == 2 and "Traceback" not in out
    assert out.strip().splitlines() == [f"Error: training with --backend {backend} {said}"]
    assert not (tmp_path / "run").exists()

"""tools/gpu end to end on CPU JAX with a tiny budget: stage faces into parts, unpack them one
call at a time, train with an online teacher, and collect what comes back (slow: -m slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .test_train_views import ROOT, _faces

pytest.importorskip("jax")


@pytest.mark.slow
def test_stage_unpack_train_collect(tmp_path):
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, load_keras_model, save_model

    celeba = _faces(tmp_path / "celeba", count=24)
    flat = tmp_path / "utk"  # images directly in the folder: one identity each
    flat.mkdir()
    for i, f in enumerate(sorted(celeba.rglob("*.jpg"))[:8]):
        shutil.copy(f, flat / f"u{i}.jpg")
    repo = tmp_path / "repo"  # the scripts run from a repo root: a light copy of this one
    repo.mkdir()
    for name in ("facenet", "tools"):
        shutil.copytree(
            ROOT / name, repo / name, ignore=shutil.ignore_patterns("*.onnx", "*.keras")
        )
    teacher = tmp_path / "teacher.keras"
    save_model(build_facenet("mobilenet", (72, 72, 3), 128, alpha=0.25), ModelInfo(input_size=72),
               teacher)  # fmt: skip
    python = [sys.executable, "tools/gpu/stage.py", f"{celeba}:celeba", f"{flat}:utk"]
    staged = subprocess.run([*python, "--out", ".stage", "--part-mib", "0.05"], cwd=repo,
                            capture_output=True, text=True, check=True)  # fmt: skip
    manifest = json.loads((repo / ".stage" / "manifest.json").read_text())
    assert (
        manifest["faces"] == len(list(celeba.rglob("*.jpg"))) + 8 and len(manifest["parts"]) >= 2
    ), staged.stdout
    assert all(p["bytes"] <= 0.05 * 2**20 for p in manifest["parts"])

    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env.update(OUT=str(out), PY=sys.executable, RUN=str(tmp_path / "run"), TEACHER=str(teacher),
               INIT="none", TRAIN_SECONDS="5", BATCH_P="4", BATCH_K="2", WORKERS="2",
               EXTRA="--input-size 64 --alpha 0.25 --epochs 2 --steps-per-epoch 2")  # fmt: skip
    parts = sorted((repo / ".stage").glob("faces-*.tar"))
    early = subprocess.run(["bash", "tools/gpu/run.sh", "train"], cwd=repo, env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert early.returncode == 2 and "unpack every part" in early.stderr
    hidden = tmp_path / "later"  # one part per call, as the device calls carry them
    hidden.mkdir()
    for part in parts[1:]:
        part.rename(hidden / part.name)
    for i, part in enumerate(parts):
        if i:
            (hidden / part.name).rename(part)
        done = subprocess.run(["bash", "tools/gpu/run.sh", "unpack"], cwd=repo, env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert not part.exists()
    assert f"faces on the machine: {manifest['faces']}" in done.stdout
    trained = subprocess.run(["bash", "tools/gpu/run.sh", "train"], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    names = {p.name for p in out.iterdir()}
    assert {"model.keras", "log.csv", "train.log", "facts.txt"} <= names
    assert any(n.startswith("checkpoint.npz.part-") for n in names)
    assert all(p.stat().st_size <= 16 * 2**20 for p in out.iterdir())
    model, info = load_keras_model(out / "model.keras")
    assert info.input_size == 64 and info.alignment == "chip"

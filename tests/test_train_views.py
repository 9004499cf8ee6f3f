"""The views trainer. `facenet train --backend jax`: a few steps with an online teacher on real
CelebA faces, with TensorFlow blocked in the training process; the TensorFlow path then loads the
model and exports it to ONNX with the same embeddings. `facenet train --teacher VIEWS.npz` on
TensorFlow (the CPU path): stored views, resumed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import CELEBA_DIR

ROOT = Path(__file__).resolve().parents[1]


def _faces(dst: Path, count: int = 40) -> Path:
    """~40 real CelebA faces (square centre crops, 80 px), identities with 2+ images."""
    from PIL import Image

    if not CELEBA_DIR.is_dir():
        pytest.skip(f"CelebA not available at {CELEBA_DIR}")
    n = 0
    for folder in sorted(CELEBA_DIR.iterdir()):
        files = sorted(folder.glob("*.jpg"))[:3]
        if len(files) < 2:
            continue
        for f in files:
            im = Image.open(f).convert("RGB")
            s = min(im.size)
            left, top = (im.size[0] - s) // 2, (im.size[1] - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((80, 80), Image.BILINEAR)
            (dst / folder.name).mkdir(parents=True, exist_ok=True)
            im.save(dst / folder.name / f.name, quality=90)
            n += 1
        if n >= count:
            return dst
    pytest.skip("too few CelebA faces")


def _facenet(args: list[str], tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """`python -m facenet ARGS` with TensorFlow made unimportable (as on the GPU machine)."""
    block = tmp_path / "no-tensorflow" / "tensorflow"
    block.mkdir(parents=True, exist_ok=True)
    (block / "__init__.py").write_text("raise ImportError('TensorFlow is blocked in this test')\n")
    environ = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environ["PYTHONPATH"] = os.pathsep.join([str(block.parent), str(ROOT)])
    # one compilation cache for the test's runs: each network's initialisers and step compile once
    environ["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path / "jax-cache")
    environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "facenet", *args], env=environ, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_jax_training_with_an_online_teacher_loads_in_tensorflow_and_onnx(tmp_path):
    pytest.importorskip("jax")
    import onnxruntime as ort

    from facenet.export import export_onnx
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, load_keras_model, save_model

    data = _faces(tmp_path / "faces")
    teacher = build_facenet("mobilenet", (72, 72, 3), 128, alpha=0.5)  # another size and width
    save_model(teacher, ModelInfo(input_size=72, alpha=0.5), tmp_path / "teacher.keras")
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--backend", "jax",
            "--teacher", str(tmp_path / "teacher.keras"), "--input-size", "64",
            "--alpha", "0.25", "--loss", "ce", "--ce-weight", "0.5", "--batch-p", "4",
            "--batch-k", "2", "--steps-per-epoch", "2", "--mixup", "0.5", "--workers", "2",
            "--lr", "0.01", "--align-mode", "chip", "--relation-weight", "0.1",
            "--relation-neighbours", "2"]  # fmt: skip
    first = _facenet([*args, "--epochs", "1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "trained 1 epochs" in first.stdout
    resumed = _facenet([*args, "--epochs", "2", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    rows = (run / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]
    losses = [float(r.split(",")[4]) for r in rows[1:]]  # distill_loss: finite and positive
    assert all(np.isfinite(losses)) and min(losses) > 0
    with np.load(run / "checkpoint.npz") as z:
        state = json.loads(str(z["state"]))
        assert state["epoch"] == 2 and state["images"] == 2 * 2 * 8
        assert z["projection"].shape == (128, 128)
        assert any(k.startswith("opt_") for k in z.files)

    model, info = load_keras_model(run / "model.keras")  # the TensorFlow process
    assert info.input_size == 64 and info.alignment == "chip"
    assert info.extra["training"]["backend"] == "jax"
    untrained = build_facenet("mobilenet", (64, 64, 3), 128, alpha=0.25)
    trained_w = model.get_layer("Bottleneck").get_weights()[0]
    assert not np.allclose(trained_w, untrained.get_layer("Bottleneck").get_weights()[0])
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    keras_emb = np.asarray(model(images.astype(np.float32), training=False))
    onnx_path = export_onnx(model, info, tmp_path / "model.onnx")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_emb = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert np.abs(onnx_emb - keras_emb).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(keras_emb, axis=1), 1.0, atol=1e-5)


def test_jax_backend_options_fail_in_one_line(tmp_path):
    data = tmp_path / "d" / "a"
    data.mkdir(parents=True)
    out = _facenet(["train", str(data.parent), "--out", str(tmp_path / "r"), "--backend", "jax"],
                   tmp_path)  # fmt: skip
    assert out.returncode == 2 and "--loss ce" in out.stderr and "Traceback" not in out.stderr
    out = _facenet(["train", str(data.parent), "--out", str(tmp_path / "r"), "--mixup", "0.5"],
                   tmp_path)  # fmt: skip
    assert out.returncode == 2 and "jax" in out.stderr and "Traceback" not in out.stderr
    out = _facenet(["train", str(data.parent), "--out", str(tmp_path / "r"), "--backend", "jax",
                    "--loss", "ce", "--relation-weight", "1"], tmp_path)  # fmt: skip
    assert out.returncode == 2 and "relation_weight" in out.stderr and "Traceback" not in out.stderr
    out = _facenet(["train", str(data.parent), "--out", str(tmp_path / "r"), "--schedule",
                    "cosine-time"], tmp_path)  # fmt: skip
    assert out.returncode == 2 and "backend='jax'" in out.stderr and "Traceback" not in out.stderr
    out = _facenet(["train", str(data.parent), "--out", str(tmp_path / "r"), "--backend", "jax",
                    "--loss", "ce", "--schedule", "cosine-time"], tmp_path)  # fmt: skip
    assert out.returncode == 2 and "max_seconds" in out.stderr and "Traceback" not in out.stderr


def test_stored_views_train_on_tensorflow_and_resume(tmp_path, small_model_file):
    """The CPU path: the teacher's outputs on stored views (tools/teacher_views.py) regressed by
    the views trainer on TensorFlow; the run stops after its first epoch, resumes, stops
    mid-epoch at --max-seconds, resumes again, and the network moves towards the targets. It
    pools with the global depthwise convolution (learnt through the checkpoints)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from teacher_views import teacher_views

    from facenet.data.views import ViewSpec
    from facenet.models import load_keras_model

    data = _faces(tmp_path / "faces", count=24)
    views = teacher_views(data, small_model_file, 2, spec=ViewSpec(mixup=0.5), batch=8, workers=1)
    np.savez(tmp_path / "views.npz", **views)
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--teacher", str(tmp_path / "views.npz"),
            "--input-size", "64", "--alpha", "0.25", "--loss", "ce", "--ce-weight", "0",
            "--batch-p", "4", "--batch-k", "2", "--steps-per-epoch", "20", "--workers", "2",
            "--lr", "0.01", "--schedule", "constant", "--align-mode", "chip",
            "--relation-weight", "0.1", "--relation-neighbours", "2",
            "--pooling", "depthwise"]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environ["PYTHONPATH"] = str(ROOT)
    # the fourth epoch under a 1 s cap: the first step (with its tracing) outlasts it
    runs = (("1", []), ("3", ["--resume"]), ("4", ["--resume", "--max-seconds", "1"]),
            ("4", ["--resume"]))  # fmt: skip
    for epochs, extra in runs:
        done = subprocess.run([sys.executable, "-m", "facenet", *args, "--epochs", epochs, *extra],
                              env=environ, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        if "--max-seconds" in extra:
            assert "--max-seconds ran out 3 of 4 epochs in" in done.stderr
            assert "--resume" in done.stderr.splitlines()[-1]
            with np.load(run / "checkpoint.npz") as z:
                state = json.loads(str(z["state"]))
                assert state["epoch"] == 3 and 1 <= state["step"] < 20
    rows = [r.split(",") for r in (run / "log.csv").read_text().splitlines()]
    column = rows[0].index("distill_loss")
    losses = [float(r[column]) for r in rows[1:]]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3", "4"] and all(np.isfinite(losses))
    relation = [float(r[rows[0].index("relation_loss")]) for r in rows[1:]]
    assert all(np.isfinite(relation)) and min(relation) > 0  # the pairwise term is logged
    assert losses[-1] < 0.9 * losses[0]  # 80 steps at lr 0.01 on 24 faces: the loss falls
    with np.load(run / "checkpoint.npz") as z:
        assert json.loads(str(z["state"]))["images"] == 4 * 20 * 8
    model, info = load_keras_model(run / "model.keras")
    assert info.extra["training"]["backend"] == "tensorflow" and info.input_size == 64
    assert info.extra["training"]["relation_neighbours"] == 2
    assert model.get_layer("GDC").get_weights()[0].shape == (2, 2, 256, 1)


def test_jax_training_renders_views_on_the_device_on_a_wall_clock_cosine(tmp_path):
    """--render device (the views drawn inside the jitted step from the crops held on the
    device) with --schedule cosine-time (the rate falls with the seconds trained, across a
    resume): the run trains, logs a falling rate and records its seconds."""
    pytest.importorskip("jax")
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, save_model

    data = _faces(tmp_path / "faces", count=16)
    teacher = build_facenet("mobilenet", (72, 72, 3), 128, alpha=0.25)
    save_model(teacher, ModelInfo(input_size=72, alpha=0.25), tmp_path / "teacher.keras")
    run = tmp_path / "run"
    args = ["train", str(data), "--out", str(run), "--backend", "jax", "--render", "device",
            "--teacher", str(tmp_path / "teacher.keras"), "--input-size", "64", "--alpha", "0.25",
            "--loss", "ce", "--ce-weight", "0", "--batch-p", "4", "--batch-k", "2",
            "--steps-per-epoch", "2", "--mixup", "0.5", "--workers", "2", "--lr", "0.01",
            "--align-mode", "chip", "--schedule", "cosine-time",
            "--max-seconds", "600"]  # fmt: skip
    first = _facenet([*args, "--epochs", "1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = _facenet([*args, "--epochs", "3", "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = (run / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, r.split(","), strict=True)) for r in rows[1:]]
    assert [r["epoch"] for r in table] == ["1", "2", "3"]
    assert all(
        np.isfinite(float(r["distill_loss"])) and float(r["distill_loss"]) > 0 for r in table
    )
    rates = [float(r["lr"]) for r in table]
    assert 0 < rates[2] < rates[1] < rates[0] < 0.01  # the cosine over the seconds, resumed
    with np.load(run / "checkpoint.npz") as z:
        state = json.loads(str(z["state"]))
    assert 0 < state["seconds"] < 600 and state["images"] == 3 * 2 * 8
    teacher_args = ["--teacher", str(tmp_path / "teacher.keras"), "--loss", "ce"]
    refused = _facenet(["train", str(data), "--out", str(tmp_path / "r2"), "--render", "device",
                        *teacher_args], tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "backend='jax'" in refused.stderr
    assert "Traceback" not in refused.stderr

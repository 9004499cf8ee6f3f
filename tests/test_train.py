"""The trainer on a small CelebA subset: learning, resume, CLI, 2-replica MirroredStrategy."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facenet.models.files import read_info  # noqa: E402
from facenet.train import TrainConfig, train  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CELEBA = DATA / "celeba"
needs_data = pytest.mark.skipif(not CELEBA.is_dir(), reason=f"{CELEBA} is absent (shared data)")

#: the first 53 identities with 10+ images, 64 px (13 held out with val_pairs="split").
SMALL = dict(
    data=str(CELEBA), input_size=64, alpha=0.25, embedding_size=64, batch_p=8, batch_k=4,
    min_images=10, max_identities=53, show_progress=False, seed=0,
)  # fmt: skip


@needs_data
def test_short_training_learns(tmp_path):
    """Loss goes down and held-out (identity-disjoint) pair accuracy beats the untrained net."""
    config = TrainConfig(**SMALL, out=str(tmp_path / "run"), epochs=10, steps_per_epoch=50,
                         lr=3e-3, val_pairs="split", val_fraction=0.25,
                         val_pair_count=300)  # fmt: skip
    result = train(config)
    assert not result.interrupted and result.epochs_done == 10
    history = result.history
    assert history[0]["epoch"] == 0  # the untrained baseline
    untrained = history[0]["val_accuracy"]
    epochs = history[1:]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert epochs[-1]["pos_dist"] < epochs[0]["pos_dist"]
    print("pair accuracy by epoch:", [round(r["val_accuracy"], 3) for r in history])
    assert result.best_accuracy > untrained + 0.05
    for row in epochs:
        assert 0.0 <= row["active_fraction"] <= 1.0 and row["images_per_s"] > 0

    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [r["epoch"] for r in rows] == [str(i) for i in range(11)]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    from facenet import FaceNet

    model = FaceNet.load(result.model_path)
    assert model.input_size == 64 and model.embedding_size == 64
    extra = model.info.extra["training"]
    assert extra["val_accuracy"] == pytest.approx(result.best_accuracy)
    assert extra["epochs"] == result.best_epoch
    emb = model.embed_crops(np.zeros((2, 64, 64, 3), np.uint8))
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def _weights(run: Path) -> list[np.ndarray]:
    with np.load(run / "checkpoint.npz") as z:
        return [z[k] for k in sorted(z.files) if k != "state"]


@needs_data
def test_resume_matches_uninterrupted_run(tmp_path):
    common = dict(SMALL, epochs=3, steps_per_epoch=4, val_pairs="none", loss="triplet+ce",
                  mining="batch_hard", batch_extra=0)  # fmt: skip
    tf.config.experimental.enable_op_determinism()
    full = train(TrainConfig(**common, out=str(tmp_path / "full")))
    assert full.epochs_done == 3

    def stop(epoch, step, stats):
        if epoch == 1 and step == 2:
            raise KeyboardInterrupt  # as Ctrl-C or SIGTERM would, mid-epoch

    part = train(TrainConfig(**common, out=str(tmp_path / "part")), on_step=stop)
    assert part.interrupted and part.epochs_done == 1
    with pytest.raises(Exception, match="resume"):
        train(TrainConfig(**common, out=str(tmp_path / "part")))
    resumed = train(TrainConfig(**common, out=str(tmp_path / "part"), resume=True))
    assert resumed.epochs_done == 3 and not resumed.interrupted
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "part")
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert [r["loss"] for r in resumed.history] == pytest.approx(
        [r["loss"] for r in full.history], rel=1e-4
    )
    state = json.loads(str(np.load(tmp_path / "part" / "checkpoint.npz")["state"]))
    assert state["epoch"] == 3 and state["sampler"]["epoch"] == 3


@needs_data
def test_cli_train(tmp_path):
    from click.testing import CliRunner

    from facenet.cli import main

    out = tmp_path / "cli"
    options = (
        "--input-size 64 --alpha 0.25 --embedding-size 32 --batch-p 4 --batch-k 2 --epochs 1 "
        "--steps-per-epoch 2 --val-pairs none --loss ce --mining batch_all --optimizer sgd "
        "--schedule step --warmup-epochs 0.5 --align-mode chip"
    )
    args = ["train", str(CELEBA), "--out", str(out), *options.split()]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "trained 1 epochs" in result.output
    assert (out / "model.keras").is_file()
    assert read_info(out / "model.keras").alignment == "chip"  # users align as DATA was
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--resume" in result.output


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    from facenet.train import TrainConfig, train
    config = TrainConfig(**json.loads(sys.argv[1]))
    result = train(config, strategy=strategy)
    print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync,
                               "epochs": result.epochs_done,
                               "loss": [r["loss"] for r in result.history],
                               "active": [r["active_fraction"] for r in result.history],
                               "model": str(result.model_path)}))
    """
)


def test_mtcnn_alignment_cache_is_crop_mode_only(tmp_path):
    with pytest.raises(ValueError, match="facenet align --mode chip"):
        TrainConfig(**dict(SMALL, out=str(tmp_path / "x"), align="mtcnn", alignment="chip"))


def test_unknown_pooling_is_a_config_error(tmp_path):
    with pytest.raises(ValueError, match="pooling must be one of average, depthwise"):
        TrainConfig(**dict(SMALL, out=str(tmp_path / "x"), pooling="max"))


@needs_data
def test_mirrored_two_replicas(tmp_path):
    # identities of all sizes: the extras (small identities, softmax only) are split too
    config = dict(SMALL, out=str(tmp_path / "mirrored"), epochs=2, steps_per_epoch=3,
                  val_pairs="none", strategy="mirrored", batch_extra=2, min_images=1,
                  max_identities=200, val_fraction=0.0)  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, "-c", MIRRORED, json.dumps(config)], capture_output=True,
                          text=True, timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["replicas"] == 2 and out["epochs"] == 2
    assert all(np.isfinite(out["loss"]))
    assert all(a > 0 for a in out["active"])  # each replica saw whole identities: positives
    assert Path(out["model"]).is_file()


LFW = DATA / "lfw"


@pytest.mark.skipif(not (LFW / "pairsDevTest.txt").is_file(), reason=f"{LFW} is absent")
def test_lfw_view1_validator_aligns_once(tmp_path):
    """The per-epoch LFW check: MTCNN-aligned crops cached in an npz, reused on the next start."""
    from facenet.train.validation import PairValidator

    lines = (LFW / "pairsDevTest.txt").read_text().splitlines()
    small = ["3", *lines[1:4], *lines[501:504]]  # 3 matched + 3 mismatched pairs
    (tmp_path / "pairsDevTest.txt").write_text("\n".join(small) + "\n")
    (tmp_path / "lfw-deepfunneled").symlink_to(LFW / "lfw-deepfunneled")
    cache = tmp_path / "run" / "val_pairs.npz"
    v = PairValidator.from_pairs_file(
        tmp_path / "pairsDevTest.txt",
        64,
        32,
        cache,
    )
    assert cache.is_file() and len(v) == 6 and v.crops.shape[1:] == (64, 64, 3)
    assert v.labels.tolist() == [True] * 3 + [False] * 3
    assert v.crops.reshape(len(v.crops), -1).std(axis=1).min() > 5  # real faces, not blanks

    class Detector:  # a second start must not detect again
        def detect_batch(self, images):
            raise AssertionError("aligned twice")

    again = PairValidator.from_pairs_file(tmp_path / "pairsDevTest.txt", 64, 32, cache, Detector())
    assert np.array_equal(again.crops, v.crops)
    with pytest.raises(AssertionError, match="aligned twice"):  # another mode: other crops
        PairValidator.from_pairs_file(tmp_path / "pairsDevTest.txt", 64, 32, cache, Detector(),
                                      alignment="chip")  # fmt: skip

    def embedder(crops):  # mean colour as a (unit) embedding: any callable crops -> rows works
        x = crops.reshape(len(crops), -1, 3).mean(axis=1)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    metrics = v.evaluate(embedder)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["seconds"] >= 0

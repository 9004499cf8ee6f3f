"""facenet train stores the threshold chosen on its validation pairs in the saved model."""

from __future__ import annotations

import csv

import pytest

tf = pytest.importorskip("tensorflow")

from facenet.metadata import ModelInfo  # noqa: E402
from facenet.models.files import read_info  # noqa: E402
from facenet.train import TrainConfig, train  # noqa: E402
from facenet.train.outputs import validated_threshold  # noqa: E402
from tests.test_train import SMALL, needs_data  # noqa: E402


def _state(best_epoch, history, n_pairs=300):
    return {"best_epoch": best_epoch, "history": history, "val_pairs": n_pairs}


def test_the_best_epochs_threshold_is_stored_with_its_record():
    config = TrainConfig(data="d", out="o", val_pairs="lfw")
    figures = [(0.6, 1.3, 0.61), (0.8, 0.4, 0.82), (0.7, 0.5, 0.7)]
    keys = ("val_accuracy", "val_threshold", "val_threshold_accuracy")
    rows = [
        {"epoch": epoch, **dict(zip(keys, row, strict=True))} for epoch, row in enumerate(figures)
    ]
    info = validated_threshold(ModelInfo(), config, _state(1, rows))
    assert info.threshold == 0.4
    record = info.extra["calibration"]
    assert record["accuracy"] == 0.82 and record["n_pairs"] == 300 and record["pairs"] == "lfw"
    assert "epoch 1" in record["protocol"]


def test_a_run_without_validation_keeps_no_threshold():
    config = TrainConfig(data="d", out="o", val_pairs="none")
    info = validated_threshold(ModelInfo(), config, _state(2, [{"epoch": 1}, {"epoch": 2}]))
    assert info.threshold is None and "calibration" not in info.extra


def test_the_log_carries_the_threshold_and_its_accuracy_in_every_row(tmp_path):
    """log.csv has a column for each validation figure (the threshold's accuracy too, what the
    saved model's calibration record quotes); rows without them (a run that does not validate,
    the views trainer) leave them empty, under the same header."""
    from facenet.train.runfiles import LOG_COLUMNS, write_log

    validated = {"epoch": 1, "loss": 0.5, "val_accuracy": 0.8, "val_threshold": 0.42,
                 "val_threshold_accuracy": 0.8125, "val_seconds": 1.5, "seconds": 9.0}  # fmt: skip
    write_log(tmp_path / "log.csv", [{"epoch": 0, "val_accuracy": 0.6}, validated, {"epoch": 2}])
    with (tmp_path / "log.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == LOG_COLUMNS
    assert [r["val_threshold_accuracy"] for r in rows] == ["", "0.8125", ""]
    assert rows[1]["val_threshold"] == "0.42" and rows[2]["val_accuracy"] == ""


@needs_data
def test_a_validated_run_saves_a_model_with_its_threshold(tmp_path):
    config = TrainConfig(**SMALL, out=str(tmp_path / "run"), epochs=1, steps_per_epoch=2,
                         val_pairs="split", val_fraction=0.25, val_pair_count=40)  # fmt: skip
    result = train(config)
    row = next(r for r in result.history if r["epoch"] == result.best_epoch)
    info = read_info(result.model_path)
    assert info.threshold == row["val_threshold"] is not None
    assert 0.0 <= info.threshold <= 4.0
    assert info.extra["calibration"]["n_pairs"] > 0
    logged = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert float(logged[-1]["val_threshold"]) == row["val_threshold"]
    accuracy = float(logged[-1]["val_threshold_accuracy"])
    assert accuracy == row["val_threshold_accuracy"] == info.extra["calibration"]["accuracy"]


@needs_data
def test_a_run_without_validation_names_calibrate(tmp_path):
    from click.testing import CliRunner

    from facenet.cli import main
    from tests.test_train import CELEBA

    out = tmp_path / "cli"
    options = (
        "--input-size 64 --alpha 0.25 --embedding-size 32 --batch-p 4 --batch-k 2 --epochs 1 "
        "--steps-per-epoch 1 --val-pairs none --loss ce --warmup-epochs 0.5"
    )
    result = CliRunner().invoke(main, ["train", str(CELEBA), "--out", str(out), *options.split()])
    assert result.exit_code == 0, result.output
    assert read_info(out / "model.keras").threshold is None
    assert f"facenet calibrate {out / 'model.keras'} --lfw-dir DIR" in result.stderr

"""What a TensorFlow training run writes besides checkpoints: the final model file (with its
training record), TensorBoard scalars and the per-epoch log line."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from ..backbones import get_backbone
from ..calibrate import Calibration, calibrated_info
from ..metadata import ModelInfo
from ..models import build_facenet, save_model
from .config import TrainConfig


def save_final(model, info: ModelInfo, config: TrainConfig, state: dict, out: Path) -> None:
    """The run's model file, with how it was trained in its ModelInfo (float32 weights)."""
    info.extra = {
        "training": {
            "command": config.command,
            "epochs": state["epoch"],
            "epochs_planned": config.epochs,
            "data": str(config.data),
            "loss": config.loss,
            "mining": config.mining,
            "triplet_margin": config.margin,
            "batch": f"{config.batch_p}x{config.batch_k}",
            "seed": config.seed,
            "val_pairs": config.val_pairs,
            "val_accuracy": state["best_accuracy"],
            "distill": config.distill,
        },
        **config.extra,
    }
    info = validated_threshold(info, config, state)
    if config.mixed_precision:  # the model file computes in float32, wherever it runs
        model = _float32_copy(model, config)
    save_model(model, info, out / "model.keras")


def validated_threshold(info: ModelInfo, config: TrainConfig, state: dict) -> ModelInfo:
    """`info` with the threshold of highest accuracy on the validation pairs at the saved
    (best) epoch, recorded as its calibration; `info` unchanged for a run that does not
    validate (its threshold stays None: `facenet calibrate` sets one)."""
    row = next((r for r in state["history"] if r["epoch"] == state["best_epoch"]), {})
    if row.get("val_threshold") is None:
        return info
    calibration = Calibration(
        threshold=float(row["val_threshold"]),
        accuracy=round(float(row["val_threshold_accuracy"]), 4),
        n_pairs=int(state.get("val_pairs", 0)),
        pairs=str(config.val_pairs),
        protocol=f"training validation, epoch {state['best_epoch']}",
    )
    return calibrated_info(info, calibration)


def _float32_copy(model, config: TrainConfig):
    size = config.input_size
    copy = build_facenet(
        config.backbone, (size, size, 3), config.embedding_size, dropout=config.dropout,
        preprocessing=config.preprocessing, pooling=config.pooling,
        **get_backbone(config.backbone).options_from(config),
    )  # fmt: skip
    for layer in copy.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return copy


def write_scalars(writer, row: dict, step: int) -> None:
    """TensorBoard scalars as plain `simple_value` summaries (no tensorboard package needed)."""
    values = [
        tf.compat.v1.Summary.Value(tag=key, simple_value=float(value))
        for key, value in row.items()
        if key != "epoch" and value is not None
    ]
    with writer.as_default(step=step):
        tf.summary.experimental.write_raw_pb(tf.compat.v1.Summary(value=values).SerializeToString())
    writer.flush()


def format_row(row: dict) -> str:
    """An epoch's figures on one log line."""
    return "  ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in row.items() if k != "epoch" and v is not None
    )  # fmt: skip

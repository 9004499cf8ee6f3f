"""Run-folder files shared by the TensorFlow and JAX trainers (no TensorFlow here): the result,
atomic writes and the per-epoch log."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceNetError
from ..outputs import atomic_write_bytes

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "epoch", "loss", "triplet_loss", "ce_loss", "distill_loss", "relation_loss",
    "active_fraction", "pos_dist", "neg_dist",
    "lr", "images_per_s", "val_accuracy", "val_seconds", "seconds",
)  # fmt: skip


@dataclass
class TrainResult:
    out_dir: Path
    model_path: Path | None
    epochs_done: int
    best_accuracy: float | None
    best_epoch: int | None
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    #: stopped by `max_seconds` before the schedule's last step: `--resume` finishes it
    out_of_time: bool = False


def write_atomic(path: Path, data: bytes) -> None:
    """`data` written to `path` atomically (the one atomic writer, `facenet.outputs`)."""
    atomic_write_bytes(path, lambda f: f.write(data))


def write_log(path: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_COLUMNS})
    write_atomic(path, buffer.getvalue().encode())


def sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM raise KeyboardInterrupt (as Ctrl-C does); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def init_from(model, path: str) -> None:
    """Start from a trained model's weights (e.g. to continue the bundled model's training):
    every layer of the source found here by name must match in shape; new heads stay fresh."""
    from ..errors import FaceNetError
    from ..models import load_keras_model

    source, _ = load_keras_model(path)
    names = {layer.name for layer in model.layers}
    copied = 0
    for layer in source.layers:
        if layer.weights and layer.name in names:
            target = model.get_layer(layer.name)
            shapes = [tuple(w.shape) for w in target.weights]
            if shapes != [tuple(w.shape) for w in layer.weights]:
                raise FaceNetError(f"{path}: layer '{layer.name}' does not match this network")
            target.set_weights(layer.get_weights())
            copied += 1
    log.info("started from %s (%d layers)", path, copied)


def save_checkpoint(path: Path, model, optimizer, sampler, state: dict) -> None:
    """`checkpoint.npz`: model and optimiser variables, sampler position and run state,
    written atomically (the TensorFlow trainer's format)."""
    arrays = {f"model_{i:04d}": np.asarray(v) for i, v in enumerate(model.variables)}
    arrays.update({f"opt_{i:04d}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
    meta = {**state, "sampler": sampler.state_dict(), "format": 1}
    buffer = io.BytesIO()
    np.savez(buffer, state=np.array(json.dumps(meta)), **arrays)
    write_atomic(path, buffer.getvalue())


def restore_checkpoint(path: Path, model, optimizer, sampler) -> dict:
    """Load `save_checkpoint`'s file into the model, optimiser and sampler; the run state."""
    with np.load(path) as z:
        meta = json.loads(str(z["state"]))
        model_vars, opt_vars = model.variables, optimizer.variables
        n_model = sum(1 for k in z.files if k.startswith("model_"))
        n_opt = sum(1 for k in z.files if k.startswith("opt_"))
        if n_model != len(model_vars) or n_opt != len(opt_vars):
            raise FaceNetError(
                f"{path}: the checkpoint does not match this configuration "
                f"({n_model}/{n_opt} model/optimiser variables, expected "
                f"{len(model_vars)}/{len(opt_vars)})"
            )
        for i, v in enumerate(model_vars):
            v.assign(z[f"model_{i:04d}"])
        for i, v in enumerate(opt_vars):
            v.assign(z[f"opt_{i:04d}"])
    sampler.load_state_dict(meta.pop("sampler"))
    meta.pop("format", None)
    return meta

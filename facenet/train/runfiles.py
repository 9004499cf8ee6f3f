"""Run-folder files shared by the TensorFlow and JAX trainers (no TensorFlow here): the result,
atomic writes and the per-epoch log."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import signal
import threading
import zipfile
from collections.abc import Callable, Iterator
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
    "lr", "images_per_s", "val_accuracy", "val_threshold", "val_threshold_accuracy",
    "val_seconds", "seconds",
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
    """`log.csv`: the LOG_COLUMNS header, then one row per epoch of `history`, rewritten whole
    (so a resumed run's older rows get the same columns); a figure a row lacks is empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in LOG_COLUMNS})
    write_atomic(path, buffer.getvalue().encode())


@contextlib.contextmanager
def open_npz(path: str | Path, what: str) -> Iterator[Any]:
    """`np.load` of an `.npz` input (a checkpoint, a teacher file): a one-line FaceNetError
    naming the file when it is not one, or lacks an array the reader asks for."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise FaceNetError(f"{path}: not a {what} (.npz) file") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise FaceNetError(f"{path}: not a {what} (.npz) file")
    with archive:
        try:
            yield archive
        except (KeyError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise FaceNetError(f"{path}: not a {what} file ({exc})") from None


class LossNotFinite(FaceNetError):
    """The loss went to NaN or infinity: the epoch is not saved."""


def check_finite_loss(row: dict, epoch: int, saved_epoch: int) -> None:
    """Stop before saving an epoch whose loss is NaN or infinite (weights gone to NaN)."""
    loss = row.get("loss")
    if loss is not None and not math.isfinite(loss):
        kept = f"the checkpoint of epoch {saved_epoch} is kept" if saved_epoch else "nothing saved"
        raise LossNotFinite(
            f"the loss became {loss} in epoch {epoch + 1}: stopped, {kept}; a lower --lr may help"
        )


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
    every layer of the source must be found here by name and match in shape (a weight left
    behind, such as a learnt pooling built without --pooling depthwise, would silently change
    the network); new heads stay fresh."""
    from ..errors import FaceNetError
    from ..models import load_keras_model

    source, _ = load_keras_model(path)
    names = {layer.name for layer in model.layers}
    missing = [layer.name for layer in source.layers if layer.weights and layer.name not in names]
    if missing:
        hint = " (it pools with --pooling depthwise)" if "GDC" in missing else ""
        raise FaceNetError(
            f"{path}: its layers {', '.join(missing[:4])} are not in this network{hint}: build it "
            "with the options that file was trained with"
        )
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
    with open_npz(path, "training checkpoint") as z:
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


#: options a resumed run must share with the run it continues: they shape the network, its
#: inputs, its heads or the sampler's saved position (the rate, schedule, epochs and workers
#: may change; `data` may move to another path)
RESUME_FIXED = (
    "backbone", "input_size", "embedding_size", "alpha", "pooling", "preprocessing", "loss",
    "backend", "alignment", "margin_px", "align", "batch_p", "batch_k", "min_images",
    "max_identities", "val_fraction",
)  # fmt: skip
#: files a new run writes into its folder (a folder holding them but no run is refused)
RUN_FILES = ("model.keras", "log.csv", "config.json", "val_pairs.npz")
OPTION_NAMES = {"margin_px": "align-margin", "alignment": "align-mode"}


def prepare_run_folder(config, checkpoint: str) -> Path:
    """The run folder, created; refused (FaceNetError, before anything is written) when it is
    below a file, holds a checkpoint without `resume`, holds another run's or someone's files
    without a checkpoint, or when `resume` would continue a run with other settings."""
    out = Path(config.out)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise FaceNetError(f"{out}: {blocker} is a file, not a folder")
    if (out / checkpoint).exists():
        if not config.resume:
            raise FaceNetError(f"{out}: holds a checkpoint already; pass --resume or another --out")
        _check_resumable(config, out)
    else:
        if config.resume:
            log.warning("%s: no checkpoint to resume from; starting a new run", out)
        _check_replaceable(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaceNetError(f"{out}: cannot create the run folder ({exc.strerror})") from None
    return out


def _saved_config(out: Path) -> dict | None:
    try:
        saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and {"data", "backbone", "loss"} <= set(saved) else None


def _check_resumable(config, out: Path) -> None:
    saved = _saved_config(out)
    if saved is None:
        return  # nothing to compare with: the checkpoint's own shape check still applies
    now = config.to_dict()
    differ = [k for k in RESUME_FIXED if k in saved and saved[k] != now[k]]
    differ += [k for k in ("teacher", "ce_weight") if bool(saved.get(k)) != bool(now[k])]
    if differ:
        said = ", ".join(
            f"--{OPTION_NAMES.get(k, k.replace('_', '-'))} {saved.get(k)} (now {now[k]})"
            for k in differ
        )
        raise FaceNetError(
            f"{out}: --resume continues a run with other settings: {said}; resume with the run's "
            "settings, or start a new run in another --out"
        )


def _check_replaceable(out: Path) -> None:
    present = [name for name in RUN_FILES if (out / name).exists()]
    if present and _saved_config(out) is None:
        raise FaceNetError(
            f"{out}: not a run folder but holds {', '.join(present)}, which a run would replace; "
            "choose an empty or new --out"
        )

"""davidsandberg/facenet TensorFlow checkpoints (slim Inception-ResNet-v1) -> Keras.

Variables live under `InceptionResnetV1/`: the stem (`Conv2d_1a_3x3`...), `Repeat/block35_k`,
`Mixed_6a`, `Repeat_1/block17_k`, `Mixed_7a`, `Repeat_2/block8_k`, the last `Block8` and
`Bottleneck`. Each conv has `weights` (HWIO, as Keras) and `BatchNorm/{beta,moving_mean,
moving_variance}` (no gamma); the residual projections `Conv2d_1x1` have `weights` and `biases`.
Optimizer slots, moving-average shadows and everything outside the network (`global_step`,
`Logits`, `centers`) are ignored.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metadata import ModelInfo
from .base import (
    Names,
    TensorSource,
    build_inception,
    check_embedding_size,
    load_inception,
    with_embedding_size,
)

SCOPE = "InceptionResnetV1"
MODEL_LEAVES = {"weights", "biases", "gamma", "beta", "moving_mean", "moving_variance"}
BOTTLENECK = f"{SCOPE}/Bottleneck/weights"


def checkpoint_prefix(path: str | os.PathLike) -> str:
    """The checkpoint prefix for a folder, a prefix, or one of its .index/.data/.meta files."""
    path = Path(path)
    if path.is_dir():
        import tensorflow as tf

        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None:
            indexes = sorted(path.glob("*.index"))
            if len(indexes) != 1:
                raise ModelError(
                    f"{path}: expected one checkpoint in the folder; found {len(indexes)}"
                )
            prefix = str(indexes[0].with_suffix(""))
        return prefix
    text = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", str(path))
    if not Path(f"{text}.index").is_file():
        raise ModelError(f"{path}: no checkpoint index ({Path(text).name}.index) beside it")
    return text


def read_checkpoint(path: str | os.PathLike) -> dict:
    import tensorflow as tf

    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # DataLossError, NotFoundError...
        raise ModelError(f"{path}: not a readable TensorFlow checkpoint ({exc})") from None
    shapes = reader.get_variable_to_shape_map()
    return {name: _Lazy(reader, name, shape) for name, shape in shapes.items()}


class _Lazy:
    """A checkpoint tensor read on first use (optimizer slots are never read)."""

    def __init__(self, reader, name, shape):
        self.reader, self.name, self.shape = reader, name, tuple(shape)

    def __array__(self, dtype=None, copy=None):
        value = np.asarray(self.reader.get_tensor(self.name))
        return value if dtype is None else value.astype(dtype)


def ignored(name: str) -> bool:
    return not name.startswith(f"{SCOPE}/") or name.rsplit("/", 1)[-1] not in MODEL_LEAVES


def slim_scope(layer: str) -> str:
    """The slim variable scope of a Keras layer name (below InceptionResnetV1/)."""
    match = re.fullmatch(r"(Block35|Block17|Block8)_(\d+)_(.+)", layer)
    if match:
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        if kind == "Block35":
            block = f"Repeat/block35_{index}"
        elif kind == "Block17":
            block = f"Repeat_1/block17_{index}"
        else:
            block = f"Repeat_2/block8_{index}" if index <= 5 else "Block8"
        return f"{block}/{_branch(rest)}"
    match = re.fullmatch(r"(Mixed_6a|Mixed_7a)_(.+)", layer)
    if match:
        return f"{match.group(1)}/{_branch(match.group(2))}"
    return layer


def _branch(rest: str) -> str:
    return re.sub(r"^(Branch_\d)_", r"\1/", rest)


def names(layer: str, kind: str) -> Names:
    prefix = f"{SCOPE}/{slim_scope(layer)}"
    if kind == "conv_bias":
        return Names(kernel=f"{prefix}/weights", bias=f"{prefix}/biases")
    bn = f"{prefix}/BatchNorm"
    return Names(
        kernel=f"{prefix}/weights",
        gamma=f"{bn}/gamma",
        beta=f"{bn}/beta",
        mean=f"{bn}/moving_mean",
        variance=f"{bn}/moving_variance",
    )


def convert_checkpoint(path: Path, info: ModelInfo, embedding_size: int | None = None):
    """A Keras FaceNet model and its ModelInfo from a davidsandberg/facenet checkpoint."""
    tensors = read_checkpoint(path)
    if BOTTLENECK not in tensors:
        raise ModelError(f"{path}: tensor '{BOTTLENECK}' is missing: not a FaceNet checkpoint")
    found = tensors[BOTTLENECK].shape[-1]
    check_embedding_size(path, found, embedding_size)
    info = with_embedding_size(info, found)
    model = build_inception(info, found)
    load_inception(model, TensorSource(tensors, path, ignored), names, lambda a: a, lambda s: s)
    return model, info

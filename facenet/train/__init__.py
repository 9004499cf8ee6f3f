"""Training FaceNet: triplet loss with online mining, a softmax head, the trainers.

`TrainConfig` needs no TensorFlow; the TensorFlow trainer and losses below are imported on first
use (importing `facenet.train.trainer` or `facenet.train.losses` imports TensorFlow).
`facenet.train.views_trainer` is the consistent-views trainer (`--teacher`, or `--backend jax`:
Keras on JAX, no TensorFlow).
"""

from typing import Any

from .config import MINING, TrainConfig

_LOSSES = (
    "pairwise_squared_distances",
    "select_triplets",
    "softmax_loss",
    "triplet_loss",
    "triplet_loss_with_stats",
)


def __getattr__(name: str) -> Any:
    if name in _LOSSES:
        from . import losses

        return getattr(losses, name)
    if name in ("TrainResult", "train"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'facenet.train' has no attribute {name!r}")


__all__ = [
    "MINING",
    "TrainConfig",
    "TrainResult",
    "train",
    "pairwise_squared_distances",
    "select_triplets",
    "softmax_loss",
    "triplet_loss",
    "triplet_loss_with_stats",
]

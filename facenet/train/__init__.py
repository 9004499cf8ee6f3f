"""Training FaceNet: triplet loss with online mining, a softmax head, the trainer.

Importing this package imports TensorFlow.
"""

from .config import TrainConfig  # noqa: E402
from .losses import (
    MINING,
    pairwise_squared_distances,
    select_triplets,
    softmax_loss,
    triplet_loss,
    triplet_loss_with_stats,
)
from .trainer import TrainResult, train  # noqa: E402

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

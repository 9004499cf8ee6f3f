"""The optimiser side of training: the learning-rate schedule, the optimiser and the
distribution strategy (apart from `trainer.py`, which runs the epochs). TensorFlow is imported
only where it is used, so the Keras-on-JAX trainer shares `base_optimizer`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import keras

from .config import TrainConfig

if TYPE_CHECKING:
    import tensorflow as tf


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine decay to 0 or steps of 0.1 at 50% and 75% of training."""

    def __init__(self, base: float, total_steps: int, warmup_steps: int = 0, kind: str = "cosine"):
        self.base, self.total, self.warmup, self.kind = (
            float(base),
            int(total_steps),
            int(warmup_steps),
            kind,
        )

    def __call__(self, step):
        import tensorflow as tf

        step = tf.cast(step, tf.float32)
        warm = float(max(self.warmup, 1))
        span = float(max(self.total - self.warmup, 1))
        progress = tf.clip_by_value((step - self.warmup) / span, 0.0, 1.0)
        if self.kind == "cosine":
            lr = 0.5 * self.base * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "step":
            lr = (
                self.base
                * tf.where(progress >= 0.5, 0.1, 1.0)
                * tf.where(progress >= 0.75, 0.1, 1.0)
            )
        else:
            lr = tf.constant(self.base, tf.float32)
        if self.warmup > 0:
            lr = tf.where(step < self.warmup, self.base * (step + 1.0) / warm, lr)
        return lr

    def get_config(self):
        """Keras serialisation."""
        return {
            "base": self.base,
            "total_steps": self.total,
            "warmup_steps": self.warmup,
            "kind": self.kind,
        }


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy called `name`: "mirrored" (one host's GPUs), "multi_worker"
    (from TF_CONFIG), else the default."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()  # cluster from TF_CONFIG
    return tf.distribute.get_strategy()


def make_optimizer(config: TrainConfig, schedule) -> keras.optimizers.Optimizer:
    """`base_optimizer`, with loss scaling under mixed precision."""
    opt = base_optimizer(config, schedule)
    if config.mixed_precision:
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def base_optimizer(config: TrainConfig, schedule) -> keras.optimizers.Optimizer:
    """Adam or SGD with Nesterov momentum over `schedule`, with decoupled weight decay (not on
    norms and biases)."""
    wd = config.weight_decay or None
    if config.optimizer == "adam":
        opt = keras.optimizers.Adam(schedule, weight_decay=wd)
    else:
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=wd)
    if wd:
        opt.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return opt


def statistics_sync(model, strategy) -> Callable[[], None]:
    """A function that sets every replica's batch-norm moving statistics to their mean over
    the replicas. Why: Keras 3 updates them on each replica's own batches without
    aggregation, so the replicas (the workers of multi_worker) drift apart and the chief would
    save statistics of its share of the data only; the mean is what TF-Keras 2 read."""
    import tensorflow as tf

    moving = [v for v in model.non_trainable_variables
              if v.path.endswith(("moving_mean", "moving_variance"))]  # fmt: skip
    if strategy.num_replicas_in_sync == 1 or not moving:
        return lambda: None

    def replica_means():
        context = tf.distribute.get_replica_context()
        return context.all_reduce("MEAN", [tf.identity(v.value) for v in moving])

    @tf.function
    def sync():
        means = strategy.experimental_local_results(strategy.run(replica_means))[0]
        for variable, mean in zip(moving, means, strict=True):
            variable.value.assign(mean)

    return sync

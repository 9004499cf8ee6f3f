"""The optimiser side of training: the learning-rate schedule, the optimiser and the
distribution strategy (apart from `trainer.py`, which runs the epochs). TensorFlow is imported
only where it is used, so the Keras-on-JAX trainer shares `base_optimizer`."""

from __future__ import annotations

import math
import time
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


class WallClockCosine:
    """The views trainer's rate for schedule "cosine-time": a linear warm-up over
    `warmup_epochs` of steps, then a cosine to 0 over `max_seconds` of training counted across
    resumes (the run's meta["seconds"]), for a machine whose speed is not known beforehand (a
    lent GPU). Calling it gives the step's rate (None for the other schedules, whose rate the
    optimiser computes) and keeps meta["seconds"] current for the checkpoint."""

    def __init__(self, config: TrainConfig, steps_per_epoch: int, meta: dict):
        self.active = config.schedule == "cosine-time"
        self.base, self.max_seconds = float(config.lr), config.max_seconds
        self.warm = int(config.warmup_epochs * steps_per_epoch)
        self.steps_per_epoch, self.meta = steps_per_epoch, meta
        self.done, self.started = float(meta.get("seconds", 0.0)), time.monotonic()

    def deadline(self) -> float | None:
        """time.monotonic() at which this call's training stops (None: no limit)."""
        if not self.max_seconds:
            return None
        return self.started + (self.max_seconds - self.done if self.active else self.max_seconds)

    def __call__(self) -> float | None:
        elapsed = self.meta["seconds"] = self.done + time.monotonic() - self.started
        if not self.active:
            return None
        step = self.meta["epoch"] * self.steps_per_epoch + self.meta["step"]
        warm = min(1.0, (step + 1) / self.warm) if self.warm else 1.0
        progress = min(elapsed / self.max_seconds, 1.0)
        return self.base * warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def views_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """The views trainer's optimiser: its schedule is a Keras schedule over `total_steps`
    (the TensorFlow trainer's `WarmupSchedule` needs TensorFlow), a constant rate otherwise
    (`cosine-time` sets it per step: `WallClockCosine`)."""
    warm = int(config.warmup_epochs * total_steps / max(config.epochs, 1))
    if config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if warm else config.lr, max(total_steps - warm, 1),
            warmup_target=config.lr if warm else None, warmup_steps=warm,
        )  # fmt: skip
    elif config.schedule == "step":
        bounds = [max(total_steps // 2, 1), max(3 * total_steps // 4, 2)]
        values = [config.lr, config.lr * 0.1, config.lr * 0.01]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay(bounds, values)
    else:
        lr = config.lr
    return base_optimizer(config, lr)

"""The trainer: `train(TrainConfig) -> TrainResult`, behind `facenet train` too.

One run folder holds everything:

- `checkpoint.npz`: model and optimiser variables, epoch, sampler state, history, best accuracy;
  written atomically after every epoch. `resume=True` continues from it (Ctrl-C or SIGTERM lose
  at most the epoch in progress).
- `log.csv` and `tensorboard/`: one row / one set of scalars per epoch.
- `val_pairs.npz`: the validation crops, aligned once.
- `model.keras`: the best model so far by validation accuracy (every epoch when there is no
  validation), in inference form with its ModelInfo, readable by `facenet.FaceNet.load`.
- `config.json`: the configuration of the last start.

The train step is a tf.function over one P x K batch per replica; under `tf.distribute` each
replica gets whole identities (see `facenet.data.sampler`), so mining always sees positives.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from ..backbones import get_backbone
from ..data.dataset import check_decodable
from ..errors import FaceNetError
from ..metadata import ModelInfo
from ..models import build_facenet
from ..models.embedder import KerasEmbedder
from .config import DEFAULT_VAL_PAIRS, TrainConfig
from .losses import softmax_loss, triplet_loss_with_stats
from .optim import WarmupSchedule, make_optimizer, make_strategy, statistics_sync
from .outputs import format_row, save_final, write_scalars
from .runfiles import (
    TrainResult,
    check_finite_loss,
    init_from,
    prepare_run_folder,
    restore_checkpoint,
    save_checkpoint,
    sigterm_as_interrupt,
    write_atomic,
    write_log,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"


def train(
    config: TrainConfig | dict,
    *,
    on_step: Callable[[int, int, dict], None] | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> TrainResult:
    """Train a FaceNet model as `config` says; see the module docstring for the run folder.

    `on_step(epoch, step, stats)` is called after every step (a hook for tests and tools).
    Ctrl-C / SIGTERM stop training: the result has interrupted=True and the last complete
    epoch's checkpoint is kept, for `resume=True`.
    """
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    out = prepare_run_folder(config, CHECKPOINT)
    ckpt_path = out / CHECKPOINT
    strategy = strategy or make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)
    chief = _is_chief(strategy)  # in multi-worker training only the chief writes files
    train_set, val_set, source = _datasets(config, out)
    sampler, steps = _sampler(config, train_set, strategy.num_replicas_in_sync)
    model, optimizer, schedule = _build(config, strategy, train_set.num_classes, steps)
    teacher = _teacher(config, train_set, model)
    if config.init and not ckpt_path.exists():
        init_from(model, config.init)
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_accuracy": None, "best_epoch": None}
    if ckpt_path.exists():
        state = restore_checkpoint(ckpt_path, model, optimizer, sampler)
        log.info("resuming %s at epoch %d", out, state["epoch"] + 1)
    if chief:  # the settings of this start, once it has been checked
        write_atomic(out / "config.json", config.to_json().encode())
    run = _Run(config, out, chief, strategy, train_set, source, sampler, steps, model,
               optimizer, schedule, state)  # fmt: skip
    validator = _validator(config, val_set, out, source) if chief else None
    interrupted = _fit(run, validator, _train_step(model, optimizer, config, strategy, teacher),
                       on_step)  # fmt: skip
    model_path = out / "model.keras"
    return TrainResult(
        out, model_path if model_path.exists() else None, state["epoch"], state["best_accuracy"],
        state["best_epoch"], state["history"], interrupted,
    )  # fmt: skip


@dataclasses.dataclass
class _Run:
    """What the epochs of one training run share."""

    config: TrainConfig
    out: Path
    chief: bool
    strategy: Any
    train_set: Any
    source: str
    sampler: Any
    steps: int
    model: Any
    optimizer: Any
    schedule: Any
    state: dict[str, Any]

    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(
            backbone=c.backbone, input_size=c.input_size, embedding_size=c.embedding_size,
            preprocessing=c.preprocessing, alignment=c.alignment, margin=c.margin_px,
            **get_backbone(c.backbone).options_from(c),
        )  # fmt: skip


def _datasets(config: TrainConfig, out: Path):
    """(training set, validation identities, "aligned" or "context"): the data folder, aligned
    into a crop cache first with `align="mtcnn"`."""
    from ..data.dataset import scan_folder, split_identities

    dataset = scan_folder(config.data, min_images=config.min_images,
                          max_identities=config.max_identities)  # fmt: skip
    source = "aligned"
    if config.align == "none":
        check_decodable(dataset.paths)
    if config.align == "mtcnn":
        from ..data.align import align_cached

        cache = config.align_cache or str(out / "aligned")
        dataset = align_cached(dataset, cache, config.input_size, config.margin_px,
                               show_progress=config.show_progress)  # fmt: skip
        source = "context"
    val_fraction = config.val_fraction or (0.05 if config.val_pairs == "split" else 0.0)
    train_set, val_set = split_identities(dataset, val_fraction, config.seed)
    if train_set.num_classes < 2:
        raise FaceNetError(
            f"{config.data}: {train_set.num_classes} identities to train on; triplets and the "
            "softmax need at least 2"
        )
    log.info("training on %s; validation identities: %d", train_set.describe(), val_set.num_classes)
    return train_set, val_set, source


def _sampler(config: TrainConfig, train_set, replicas: int):
    """The P x K sampler (with extra single-image identities for the softmax when asked) and
    the steps per epoch."""
    from ..data.sampler import PKSampler

    extra = config.batch_extra
    counts = train_set.counts()
    if extra is None:
        small = int((counts < config.batch_k).sum())
        extra = (config.batch_p * config.batch_k) // 4 if config.uses_ce and small else 0
        extra = min(extra, small) // replicas * replicas
    sampler = PKSampler(train_set.labels, config.batch_p, config.batch_k, seed=config.seed,
                        extra=extra, replicas=replicas)  # fmt: skip
    return sampler, config.steps_per_epoch or sampler.steps_per_epoch()


def _build(config: TrainConfig, strategy, num_classes: int, steps: int):
    """(training-form network, built optimiser, schedule), under the strategy's scope and the
    mixed-precision policy when asked (restored afterwards)."""
    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            model = build_facenet(
                config.backbone, (config.input_size, config.input_size, 3), config.embedding_size,
                num_classes=num_classes if config.uses_ce else None,
                dropout=config.dropout, preprocessing=config.preprocessing, pooling=config.pooling,
                **get_backbone(config.backbone).options_from(config),
            )  # fmt: skip
            warmup = int(config.warmup_epochs * steps)
            schedule = WarmupSchedule(config.lr, steps * config.epochs, warmup, config.schedule)
            optimizer = make_optimizer(config, schedule)
            optimizer.build(model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return model, optimizer, schedule


def _teacher(config: TrainConfig, train_set, model):
    """The distillation targets (None without `distill`); the bottleneck's BatchNorm offset
    starts at the teacher's mean."""
    if not config.distill:
        return None
    from .distill import load_teacher_targets

    teacher = load_teacher_targets(
        config.distill, train_set.paths, config.data, config.embedding_size
    )
    log.info("distilling %s: the teacher saw %.1f%% of the training images",
             config.distill, 100 * teacher.coverage)  # fmt: skip
    _bottleneck_norm(model, config.backbone).beta.assign(teacher.offset)
    return teacher


def _fit(run: _Run, validator, step_fn, on_step) -> bool:
    """Run the remaining epochs (validating, checkpointing, logging each); True when
    interrupted (Ctrl-C, SIGTERM)."""
    config, state = run.config, run.state
    embedder = KerasEmbedder(run.model, run.info) if validator is not None else None
    if validator is not None and config.val_initial and not state["history"]:
        row = {"epoch": 0, **validator.figures(embedder)}  # the untrained network: a baseline
        state["history"].append(row)
        log.info("untrained network: %s accuracy %.4f", validator.name, row["val_accuracy"])
    sync_statistics = statistics_sync(run.model, run.strategy)
    writer = tf.summary.create_file_writer(str(run.out / "tensorboard")) if run.chief else None
    restore_signal = sigterm_as_interrupt()
    try:
        for epoch in range(state["epoch"], config.epochs):
            run.sampler.epoch = epoch
            batches = run.sampler.epoch_batches(epoch, run.steps)
            dist = run.strategy.distribute_datasets_from_function(
                _dataset_fn(run.train_set, batches, config, epoch, run.source,
                            run.strategy.num_replicas_in_sync)
            )  # fmt: skip
            row = _run_epoch(step_fn, dist, epoch, run.steps, run.sampler.batch_size, config,
                             on_step)  # fmt: skip
            check_finite_loss(row, epoch, state["epoch"])
            sync_statistics()
            row["lr"] = float(run.schedule(run.optimizer.iterations))
            if validator is not None:
                row.update(validator.figures(embedder))
                state["val_pairs"] = len(validator)
            _end_epoch(run, row, epoch, writer, validated=validator is not None)
    except KeyboardInterrupt:
        if state["epoch"]:
            log.warning("interrupted; the checkpoint of epoch %d is kept: rerun with --resume",
                        state["epoch"])  # fmt: skip
        else:
            log.warning("interrupted before the first epoch ended: nothing was saved")
        return True
    finally:
        restore_signal()
        if writer is not None:
            writer.close()
    return False


def _end_epoch(run: _Run, row: dict, epoch: int, writer, validated: bool) -> None:
    """Record the epoch; save the model when it is the best so far, and the checkpoint."""
    state = run.state
    state["history"].append(row)
    state["epoch"] = epoch + 1
    run.sampler.epoch = epoch + 1
    acc = row.get("val_accuracy")
    best = state["best_accuracy"]
    if not validated or best is None or acc > best:
        state["best_accuracy"], state["best_epoch"] = acc, epoch + 1
        if run.chief:
            save_final(run.model, run.info, run.config, state, run.out)
    if run.chief:
        save_checkpoint(run.out / CHECKPOINT, run.model, run.optimizer, run.sampler, state)
        write_log(run.out / "log.csv", state["history"])
        write_scalars(writer, row, epoch + 1)
    log.info("epoch %d: %s", epoch + 1, format_row(row))


# --- pieces -----------------------------------------------------------------------------------


def _bottleneck_norm(model, backbone: str):
    return model.get_layer(get_backbone(backbone).bottleneck_bn)


def _train_step(model, optimizer, config: TrainConfig, strategy, teacher=None):
    replicas = strategy.num_replicas_in_sync
    variables = model.trainable_variables
    zero = tf.constant(0.0)
    network = model
    if teacher is not None:
        table, mask = tf.constant(teacher.table), tf.constant(teacher.mask)
        if not isinstance(model.output, dict):  # the triplet-only form: expose the bottleneck
            bottleneck = _bottleneck_norm(model, config.backbone).output
            network = keras.Model(model.input, {"embedding": model.output,
                                                "bottleneck": bottleneck})  # fmt: skip

    def replica_step(images, labels, index=None, flipped=None):
        with tf.GradientTape() as tape:
            outputs = network(images, training=True)
            if isinstance(outputs, dict):
                embeddings, logits = outputs["embedding"], outputs.get("logits")
            else:
                embeddings, logits = outputs, None
            embeddings = tf.cast(embeddings, tf.float32)
            if config.uses_triplet:
                tl, stats = triplet_loss_with_stats(
                    labels, embeddings, config.margin, config.mining
                )
            else:
                tl, stats = zero, {}
            ce = softmax_loss(labels, logits, config.label_smoothing) if config.uses_ce else zero
            if teacher is not None:
                from .distill import distillation_loss

                dl = distillation_loss(outputs["bottleneck"], table, mask, index, flipped)
            else:
                dl = zero
            loss = config.triplet_weight * tl + config.ce_weight * ce + config.distill_weight * dl
            scaled = optimizer.scale_loss(loss / replicas)
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        if not stats:  # cross-entropy only: report the triplet statistics all the same
            emb = tf.stop_gradient(embeddings)
            _, stats = triplet_loss_with_stats(labels, emb, config.margin, config.mining)
        return {"loss": loss, "triplet_loss": tl, "ce_loss": ce, "distill_loss": dl, **stats}

    @tf.function(jit_compile=False)
    def step(*batch):
        per_replica = strategy.run(replica_step, args=batch)
        return {k: strategy.reduce("MEAN", v, axis=None) for k, v in per_replica.items()}

    return step


def _dataset_fn(train_set, batches, config: TrainConfig, epoch: int, source: str, replicas: int):
    from ..data.pipeline import Augment, train_dataset

    augment = Augment(greyscale=config.greyscale)

    def fn(context: tf.distribute.InputContext):
        keep = None
        if context.num_input_pipelines > 1:
            local = replicas // context.num_input_pipelines
            start = context.input_pipeline_id * local
            keep = (start, start + local)
        return train_dataset(
            train_set.paths, train_set.labels, batches, image_size=config.input_size,
            augment=augment, seed=config.seed, epoch=epoch, source=source, chunks=replicas,
            keep_chunks=keep, with_views=bool(config.distill),
        )  # fmt: skip

    return fn


def _run_epoch(step_fn, dist, epoch, steps, batch_size, config, on_step) -> dict[str, Any]:
    from tqdm.auto import tqdm

    sums: dict[str, float] = {}
    start = time.perf_counter()
    timed_start, timed_images = None, 0
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="step",
               disable=not config.show_progress, leave=True)  # fmt: skip
    done = 0
    with bar:
        for batch in dist:
            stats = {k: float(v) for k, v in step_fn(*batch).items()}
            done += 1
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            now = time.perf_counter()
            if timed_start is None:  # the first step traces the graph: leave it out of the rate
                timed_start = now
            else:
                timed_images += batch_size
            rate = timed_images / max(now - timed_start, 1e-9) if timed_images else 0.0
            bar.set_postfix(loss=f"{stats['loss']:.3f}",
                            active=f"{stats.get('active_fraction', 0.0):.2f}",
                            img_s=f"{rate:.1f}")  # fmt: skip
            bar.update(1)
            if on_step is not None:
                on_step(epoch, done, stats)
    row: dict[str, Any] = {"epoch": epoch + 1}
    row.update({k: v / max(done, 1) for k, v in sums.items() if k != "num_triplets"})
    row["images_per_s"] = (
        timed_images / max(time.perf_counter() - timed_start, 1e-9) if timed_images else None
    )
    row["seconds"] = time.perf_counter() - start
    return row


def _validator(config: TrainConfig, val_set, out: Path, source: str):
    from .validation import PairValidator

    spec = config.val_pairs
    if spec in (None, "", "none"):
        return None
    cache = out / "val_pairs.npz"
    if spec == "split":
        if val_set.num_classes < 2:
            raise FaceNetError("val_pairs='split' needs validation identities (val_fraction > 0)")
        return PairValidator.from_dataset(val_set, config.val_pair_count, config.input_size, cache,
                                          config.seed, source)  # fmt: skip
    path = Path(spec)
    if not path.is_file() and spec == DEFAULT_VAL_PAIRS:
        log.warning("%s not found: no per-epoch validation (pass --val-pairs)", path)
        return None
    if not path.is_file():
        raise FaceNetError(f"{path}: no such pairs file (pass --val-pairs none to skip validation)")
    return PairValidator.from_pairs_file(path, config.input_size, config.margin_px, cache,
                                         alignment=config.alignment)  # fmt: skip


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief

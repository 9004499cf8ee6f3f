"""The consistent-views trainer: Keras 3, on JAX or on TensorFlow.

Why: distillation wants the student and the teacher to see the *same* augmented view (Beyer et
al. 2022). On a lent GPU (JAX, no TensorFlow) the teacher runs online inside every step
(`facenet train --backend jax --teacher T.keras`); on a CPU it cannot, so its outputs on K stored
views per face (`tools/teacher_views.py`) are regressed instead, each step regenerating one stored
view per face (`view_targets`), on TensorFlow (`facenet train --teacher VIEWS.npz`), whose CPU
convolutions are ~15x faster than XLA's here. KERAS_BACKEND must be set before Keras is imported;
`facenet train --backend jax` runs the training in a child process with it set.

The step: the teacher (any FaceNet-style `.keras` file, at its own input size) computes its
embedding of the view, mapped into the student's target space by `distill.target_projection`
(fitted once on centre views of up to 512 training faces and kept in the checkpoint), or the
stored target is taken; the student's bottleneck is regressed onto the target
(`distill.regression_loss`) and, with --ce-weight > 0, its logits trained by a mixup-weighted
softmax. The step itself is per backend (`view_steps`: a pure `jax.jit` step, or a `tf.function`
GradientTape step); views come from `facenet.data.loader`; nothing else differs.

The run folder is the TensorFlow trainer's: `checkpoint.npz` (weights, optimiser state, position
to the step, projection; written atomically at every epoch end, on Ctrl-C / SIGTERM and when
`max_seconds` runs out), `log.csv`, `config.json` and `model.keras` (inference form plus ModelInfo,
loadable by the TensorFlow path and exportable to ONNX).
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from ..backbones import get_backbone
from ..data.dataset import scan_folder
from ..data.loader import ViewLoader
from ..data.sampler import PKSampler, ShuffleSampler
from ..data.views import ViewSpec
from ..errors import FaceNetError
from ..metadata import ModelInfo
from ..models import build_facenet, load_keras_model, save_model
from .config import TrainConfig
from .distill import regression_loss, relation_loss, target_projection
from .optim import WallClockCosine, views_optimizer
from .runfiles import (
    LossNotFinite,
    TrainResult,
    check_finite_loss,
    init_from,
    open_npz,
    prepare_run_folder,
    sigterm_as_interrupt,
    write_atomic,
    write_log,
)
from .view_steps import device_batch, make_step, values
from .view_targets import ViewTargets

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"
PROJECTION_SAMPLE = 512


def train(config: TrainConfig | dict) -> TrainResult:
    """Train as `config` says (the views trainer); see the module docstring for the run folder."""
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    if keras.backend.backend() != config.backend:
        raise FaceNetError(
            f"backend {config.backend!r} needs KERAS_BACKEND={config.backend} set before Keras "
            f"is imported (`facenet train` sets it); Keras runs on {keras.backend.backend()!r}"
        )
    out = prepare_run_folder(config, CHECKPOINT)
    keras.utils.set_random_seed(config.seed)
    dataset = scan_folder(config.data, min_images=config.min_images,
                          max_identities=config.max_identities)  # fmt: skip
    log.info("training on %s (views trainer on %s; no per-epoch validation: evaluate model.keras "
             "with `facenet evaluate`)", dataset.describe(), config.backend)  # fmt: skip
    return _Run(config, dataset, out).fit()


class _Run:
    """The models, the jitted step and the run's state for one `train` call."""

    def __init__(self, config: TrainConfig, dataset, out: Path):
        self.config, self.dataset, self.out = config, dataset, out
        self.batches = _batch_plan(config, dataset)
        self.steps = config.steps_per_epoch or self.batches.steps_per_epoch()
        stored = bool(config.teacher) and config.teacher.endswith(".npz")
        self.teacher = _load_teacher(config) if config.teacher and not stored else None
        self.stored = ViewTargets(config.teacher, dataset.paths, config.data, config.seed) \
            if stored else None  # fmt: skip
        self.student = build_facenet(
            config.backbone, (config.input_size, config.input_size, 3), config.embedding_size,
            num_classes=dataset.num_classes if config.ce_weight else None,
            dropout=config.dropout, preprocessing=config.preprocessing, pooling=config.pooling,
            **get_backbone(config.backbone).options_from(config),
        )  # fmt: skip
        self.network = _with_bottleneck(self.student, config.backbone)
        self.optimizer = views_optimizer(config, self.steps * config.epochs)
        self.optimizer.build(self.network.trainable_variables)
        sizes = [config.input_size] + ([self.teacher_size] if self.teacher else [])
        spec = ViewSpec(greyscale=config.greyscale, mixup=config.mixup)
        self.loader = ViewLoader(dataset.paths, dataset.labels, sizes, spec=spec,
                                 seed=config.seed, workers=config.workers, cache=True,
                                 targets=self.stored, render=config.render == "host")  # fmt: skip
        self.meta: dict[str, Any] = {"epoch": 0, "step": 0, "images": 0, "history": []}
        self.projection = None

    @property
    def teacher_size(self) -> int:
        return int(self.teacher.input_shape[1])

    def fit(self) -> TrainResult:
        ckpt = self.out / CHECKPOINT
        if ckpt.exists():
            self._restore(ckpt)
            log.info("resuming %s at epoch %d step %d", self.out, self.meta["epoch"] + 1,
                     self.meta["step"])  # fmt: skip
        else:
            self._start()
        write_atomic(self.out / "config.json", self.config.to_json().encode())  # once checked
        interrupted, out_of_time, restore_signal = False, False, sigterm_as_interrupt()
        keep = True
        try:
            out_of_time = self._loop()
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted at epoch %d step %d; saved: rerun with --resume",
                        self.meta["epoch"] + 1, self.meta["step"])  # fmt: skip
        except LossNotFinite:
            keep = False  # the last checkpoint stays as it was, not NaN weights
            raise
        finally:
            restore_signal()
            if keep:
                self._save()
            self.loader.close()
        model = self.out / "model.keras"
        return TrainResult(self.out, model, self.meta["epoch"], None, None,
                           self.meta["history"], interrupted, out_of_time)  # fmt: skip

    def _start(self) -> None:
        """A fresh run: the --init weights, then the teacher's target map; the bottleneck
        BatchNorm's beta starts at the targets' mean (as in the TensorFlow trainer)."""
        if self.config.init:
            init_from(self.student, self.config.init)
        if self.teacher is None and self.stored is None:
            return
        if self.stored is not None:
            _check_dims(self.stored.dims, self.config)
            self.projection, mean = self.stored.projection, self.stored.mean
        else:
            self.projection, mean = self._fit_projection()
        bn = self.network.get_layer(get_backbone(self.config.backbone).bottleneck_bn)
        bn.beta.assign(mean @ self.projection)

    # --- the step -----------------------------------------------------------------------------

    def _objective(self):
        """(student outputs, the online teacher's embedding or None, batch) -> (loss, stats)."""
        config = self.config
        projection = None if self.projection is None else ops.convert_to_tensor(self.projection)

        def objective(outputs, seen, batch):
            zero = ops.convert_to_tensor(0.0, "float32")
            dl = ce = rl = zero
            target = None
            if "target" in batch:  # stored views (tools/teacher_views.py)
                target = batch["target"]
                dl = regression_loss(outputs["bottleneck"], target, batch["weight"])
            elif seen is not None:
                target = ops.stop_gradient(ops.cast(seen, "float32")) @ projection
                dl = regression_loss(outputs["bottleneck"], target)
            if config.relation_weight and target is not None:
                rl = relation_loss(outputs["embedding"], target, config.relation_neighbours)
            if config.ce_weight:
                ce = mixed_softmax_loss(batch["labels"], batch["partner_labels"], batch["mix"],
                                        outputs["logits"], config.label_smoothing)  # fmt: skip
            loss = config.distill_weight * dl + config.relation_weight * rl + config.ce_weight * ce
            stats = {"loss": loss, "ce_loss": ce, "distill_loss": dl, "relation_loss": rl}
            return loss, stats

        return objective

    def _loop(self) -> bool:
        """Train to the schedule's end (False) or until `max_seconds` runs out (True)."""
        from tqdm.auto import tqdm

        config, meta = self.config, self.meta
        crops = self._device_crops()
        step = make_step(self.network, self.optimizer, self.teacher, self._objective(),
                         config.backend, crops)  # fmt: skip
        rate = WallClockCosine(config, self.steps, meta)
        deadline = rate.deadline()
        try:
            for epoch in range(meta["epoch"], config.epochs):
                if meta["step"] >= self.steps:  # stopped after the epoch's last step
                    meta["epoch"], meta["step"] = epoch + 1, 0
                    continue
                plan, start = self.batches.epoch_batches(epoch, self.steps), meta["step"]
                started, sums = time.perf_counter(), {}
                bar = tqdm(total=self.steps, initial=start, unit="step", leave=True,
                           desc=f"epoch {epoch + 1}/{config.epochs}",
                           disable=not config.show_progress)  # fmt: skip
                pending = self.loader.submit(plan[start], epoch, start)
                with bar:
                    for s in range(start, self.steps):
                        if deadline is not None and time.monotonic() > deadline:
                            log.info("max_seconds reached at epoch %d step %d", epoch + 1, s)
                            return True
                        data = pending.result()
                        if s + 1 < self.steps:
                            pending = self.loader.submit(plan[s + 1], epoch, s + 1)
                        stats = step(device_batch(data, rate()))
                        meta["step"], meta["images"] = s + 1, meta["images"] + len(plan[s])
                        sums = {k: sums.get(k, 0.0) + v for k, v in stats.items()}
                        bar.update(1)
                        if (s + 1) % 20 == 0 or s + 1 == self.steps:
                            bar.set_postfix(loss=f"{float(stats['loss']):.4f}")
                step.sync()
                self._end_epoch(epoch, self.steps - start, sums, started)
            return False
        finally:
            step.sync()
            rate()  # the seconds trained, for the checkpoint

    def _device_crops(self) -> np.ndarray | None:
        """Every training crop, for a step that renders the views on the device."""
        if self.config.render != "device":
            return None
        started = time.perf_counter()
        crops = self.loader.all_crops()
        log.info("decoded %d crops for the device (%.0f MiB) in %.1f s", len(crops),
                 crops.nbytes / 2**20, time.perf_counter() - started)  # fmt: skip
        return crops

    def _end_epoch(self, epoch: int, steps_run: int, sums: dict, started: float) -> None:
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update({k: float(v) / max(steps_run, 1) for k, v in sums.items()})
        row["seconds"] = time.perf_counter() - started
        row["images_per_s"] = steps_run * self.batches.batch_size / max(row["seconds"], 1e-9)
        row["lr"] = float(ops.convert_to_numpy(self.optimizer.learning_rate))
        check_finite_loss(row, epoch, self.meta["epoch"])
        self.meta["history"].append(row)
        self.meta["epoch"], self.meta["step"] = epoch + 1, 0
        self._save()
        log.info("epoch %d: %s", epoch + 1, row)

    # --- state and files ----------------------------------------------------------------------

    def _pull(self):
        return (
            values(self.network.trainable_variables),
            values(self.network.non_trainable_variables),
            values(self.optimizer.variables),
        )

    def _push(self, state) -> None:
        trainable, fixed, opt_vars = state
        groups = (self.network.trainable_variables, self.network.non_trainable_variables,
                  self.optimizer.variables)  # fmt: skip
        for variables, stored in zip(groups, (trainable, fixed, opt_vars), strict=True):
            for variable, value in zip(variables, stored, strict=True):
                variable.assign(value)

    def _save(self) -> None:
        """Checkpoint, log and model.keras, each written atomically."""
        arrays = {
            f"{prefix}_{i:04d}": np.asarray(v)
            for prefix, group in zip(("train", "fixed", "opt"), self._pull(), strict=True)
            for i, v in enumerate(group)
        }
        if self.projection is not None:
            arrays["projection"] = self.projection
        buffer = io.BytesIO()
        np.savez(buffer, state=np.array(json.dumps({**self.meta, "format": 1})), **arrays)
        write_atomic(self.out / CHECKPOINT, buffer.getvalue())
        write_log(self.out / "log.csv", self.meta["history"])
        save_model(self.student, self._info(), self.out / "model.keras")

    def _restore(self, path: Path) -> None:
        trainable, fixed, opt_vars = self._pull()
        with open_npz(path, "training checkpoint") as z:
            counts = [sum(k.startswith(p) for k in z.files) for p in ("train_", "fixed_", "opt_")]
            if counts != [len(trainable), len(fixed), len(opt_vars)]:
                raise FaceNetError(f"{path}: the checkpoint does not match this configuration")
            state = tuple(
                [z[f"{prefix}_{i:04d}"] for i in range(n)]
                for prefix, n in zip(("train", "fixed", "opt"), counts, strict=True)
            )
            if self.config.teacher:
                if "projection" not in z.files:
                    raise FaceNetError(f"{path}: a checkpoint of a run without --teacher")
                self.projection = z["projection"]
            self.meta = json.loads(str(z["state"]))
        self.meta.pop("format", None)
        self._push(state)

    def _fit_projection(self) -> tuple[np.ndarray, np.ndarray]:
        """The map from teacher embeddings to targets, and the embeddings' mean, fitted on the
        teacher's view of the centre views of up to PROJECTION_SAMPLE faces."""
        n = len(self.dataset.paths)
        rng = np.random.default_rng(self.config.seed)
        chosen = np.sort(rng.permutation(n)[: min(n, PROJECTION_SAMPLE)])
        centre = ViewLoader(self.dataset.paths, self.dataset.labels, [self.teacher_size],
                            spec=ViewSpec.identity(), workers=self.config.workers)  # fmt: skip
        try:
            parts = [
                ops.convert_to_numpy(self.teacher(centre.batch(chunk, 0, 0)["views"][0]))
                for chunk in np.array_split(chosen, max(1, len(chosen) // 64))
            ]
        finally:
            centre.close()
        desc = np.concatenate(parts).astype(np.float64)
        _check_dims(desc.shape[1], self.config)
        projection = target_projection(desc).astype(np.float32)
        return projection, desc.mean(axis=0).astype(np.float32)

    def _info(self) -> ModelInfo:
        c = self.config
        info = ModelInfo(
            backbone=c.backbone, input_size=c.input_size, embedding_size=c.embedding_size,
            preprocessing=c.preprocessing, alignment=c.alignment, margin=c.margin_px,
            **get_backbone(c.backbone).options_from(c),
        )  # fmt: skip
        info.extra = {
            "training": {
                "command": c.command, "backend": c.backend, "teacher": c.teacher,
                "epochs": self.meta["epoch"], "steps_in_epoch": self.meta["step"],
                "image_steps": self.meta["images"], "epochs_planned": c.epochs,
                "data": str(c.data), "loss": c.loss, "ce_weight": c.ce_weight,
                "distill_weight": c.distill_weight, "relation_weight": c.relation_weight,
                "relation_neighbours": c.relation_neighbours, "mixup": c.mixup,
                "batch": f"{c.batch_p}x{c.batch_k}", "seed": c.seed,
            },
            **c.extra,
        }  # fmt: skip
        return info


# --- pieces -----------------------------------------------------------------------------------


def mixed_softmax_loss(labels, partner_labels, mix, logits, label_smoothing: float = 0.0):
    """Softmax cross-entropy (keras.ops) against mixup targets: weight `mix` on each image's
    own label and 1 - mix on its partner's (mix = 1 for an unmixed view)."""
    logits = ops.cast(logits, "float32")
    classes = logits.shape[-1]
    mix = ops.cast(mix, "float32")[:, None]
    target = mix * ops.one_hot(labels, classes) + (1.0 - mix) * ops.one_hot(partner_labels, classes)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    return ops.mean(-ops.sum(target * ops.log_softmax(logits, axis=-1), axis=-1))


def _batch_plan(config: TrainConfig, dataset):
    """The P x K sampler when the softmax head trains, else a plain shuffle of all faces."""
    counts, extra = dataset.counts(), config.batch_extra
    if extra is None:
        extra = min((config.batch_p * config.batch_k) // 4, int((counts < config.batch_k).sum()))
    if not config.ce_weight:
        return ShuffleSampler(len(dataset), config.batch_p * config.batch_k, config.seed)
    return PKSampler(dataset.labels, config.batch_p, config.batch_k, seed=config.seed,
                     extra=extra)  # fmt: skip


def _check_dims(dims: int, config: TrainConfig) -> None:
    if dims != config.embedding_size:
        raise FaceNetError(f"the teacher gives {dims}-d embeddings; pass --embedding-size {dims}")


def _load_teacher(config: TrainConfig):
    teacher, _ = load_keras_model(config.teacher)
    teacher.trainable = False
    if isinstance(teacher.output, dict):
        teacher = keras.Model(teacher.input, teacher.output["embedding"])
    return teacher


def _with_bottleneck(model, backbone: str):
    """The training form with outputs {"embedding", "bottleneck"[, "logits"]}."""
    if isinstance(model.output, dict):
        return model
    bottleneck = model.get_layer(get_backbone(backbone).bottleneck_bn).output
    return keras.Model(model.input, {"embedding": model.output, "bottleneck": bottleneck})

"""Training configuration: one dataclass, shared by `facenet train` and `facenet.train.train`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..backbones import backbone_names, get_backbone
from ..metadata import ALIGNMENT_MODES, POOLING_MODES, PREPROCESSING_MODES, check_choice

MINING = ("semi_hard", "batch_hard", "batch_all")
LOSSES = ("triplet", "ce", "triplet+ce")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "constant", "cosine-time")
RENDER = ("host", "device")
STRATEGIES = ("none", "mirrored", "multi_worker")
ALIGN = ("none", "mtcnn")
BACKENDS = ("tensorflow", "jax")
#: LFW View 1 test pairs, the default per-epoch check (never used for training).
DEFAULT_VAL_PAIRS = str(
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lfw" / "pairsDevTest.txt"
)


@dataclass
class TrainConfig:
    """Every training option, validated on creation; saved as config.json in the run folder."""

    data: str
    out: str = "runs/facenet"
    backbone: str = "mobilenet"
    input_size: int = 160
    embedding_size: int = 128
    alpha: float = 1.0
    dropout: float = 0.2
    #: the last feature map to one vector: "average" or "depthwise" (metadata.POOLING_MODES)
    pooling: str = "average"
    preprocessing: str = "fixed"
    loss: str = "triplet+ce"
    mining: str = "semi_hard"
    margin: float = 0.2
    triplet_weight: float = 1.0
    ce_weight: float = 1.0
    label_smoothing: float = 0.0
    weight_decay: float = 5e-4
    batch_p: int = 30
    batch_k: int = 4
    #: single images of identities with < K images per batch (softmax only); None: P*K/4 when
    #: the softmax head is trained and such identities exist, else 0.
    batch_extra: int | None = None
    epochs: int = 10
    steps_per_epoch: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    #: "lfw View 1 pairs file" (default), a pairs .txt/.tsv file, "split" (pairs from the
    #: identity-disjoint validation identities) or "none".
    val_pairs: str = DEFAULT_VAL_PAIRS
    val_fraction: float = 0.0
    #: evaluate the untrained network too (history row "epoch 0"), as a baseline
    val_initial: bool = True
    val_pair_count: int = 500
    #: "none": DATA is already aligned (`facenet align`); "mtcnn": detect and align once, cached.
    align: str = "none"
    align_cache: str | None = None
    margin_px: int = 32  # the alignment margin (at 160 px) recorded in the model file
    #: how DATA's crops were cut (`facenet align --mode`), recorded in the model file so users
    #: align their photos the same way
    alignment: str = "crop"
    greyscale: float = 0.1
    #: a teacher descriptor file (tools/teacher_dlib.py) to distil from, or None
    distill: str | None = None
    distill_weight: float = 1.0
    #: a FaceNet model file whose weights start the run (matching layers, by name)
    init: str | None = None
    min_images: int = 1
    max_identities: int | None = None
    resume: bool = False
    #: Keras's backend: "tensorflow" or "jax" (no TensorFlow needed; always the views trainer)
    backend: str = "tensorflow"
    #: a FaceNet-style .keras model run inside every step on the same view, or a
    #: tools/teacher_views.py .npz of its outputs on stored views; given, the views trainer
    #: (facenet.train.views_trainer) trains instead of facenet.train.trainer
    teacher: str | None = None
    #: probability that a view is mixed with another training face (views trainer)
    mixup: float = 0.0
    #: weight of the pairwise-similarity term (distill.relation_loss) beside the regression
    #: onto the teacher's targets (views trainer)
    relation_weight: float = 0.0
    #: the relation term also over each face's this many nearest others by the teacher
    #: (distill.relation_loss; views trainer)
    relation_neighbours: int = 0
    #: stop (checkpoint and model saved) after this many seconds of training (views trainer)
    max_seconds: float | None = None
    #: loader threads (views trainer)
    workers: int = 8
    #: where the views trainer renders views: "host" (PIL in the loader threads) or "device"
    #: (inside the jitted JAX step, from every crop held on the accelerator)
    render: str = "host"
    strategy: str = "none"
    mixed_precision: bool = False
    seed: int = 0
    show_progress: bool = True
    command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("backbone", self.backbone, backbone_names())
        check_choice("preprocessing", self.preprocessing, PREPROCESSING_MODES)
        check_choice("loss", self.loss, LOSSES)
        check_choice("mining", self.mining, MINING)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("align", self.align, ALIGN)
        check_choice("alignment", self.alignment, ALIGNMENT_MODES)
        check_choice("backend", self.backend, BACKENDS)
        check_choice("pooling", self.pooling, POOLING_MODES)
        check_choice("render", self.render, RENDER)
        self._check_backend()
        if self.align == "mtcnn" and self.alignment != "crop":
            raise ValueError(
                f"align='mtcnn' caches crop-mode crops only; align DATA with `facenet align "
                f"--mode {self.alignment}` and train with align='none'"
            )
        if self.batch_k < 2:
            raise ValueError(f"batch_k must be at least 2; got {self.batch_k}")
        if self.batch_p < 1 or self.epochs < 1:
            raise ValueError("batch_p and epochs must be positive")
        if self.uses_triplet and self.batch_p < 2:
            raise ValueError("a triplet loss needs negatives: batch_p at least 2")
        smallest = get_backbone(self.backbone).min_input_size
        if self.input_size < smallest:
            raise ValueError(f"{self.backbone} needs input_size at least {smallest}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Every number in its range (finite): a negative rate or NaN weight would train to
        NaN or nonsense and still save a model."""
        at_least_zero = ("margin", "triplet_weight", "ce_weight", "weight_decay", "warmup_epochs",
                         "distill_weight", "relation_weight", "margin_px")  # fmt: skip
        below_one = ("label_smoothing", "dropout", "val_fraction")
        for name in (*at_least_zero, *below_one, "lr", "alpha", "greyscale", "mixup"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number; got {value}")
        for name in at_least_zero:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0; got {getattr(self, name)}")
        for name in below_one:
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if self.lr <= 0 or self.alpha <= 0:
            raise ValueError(f"lr and alpha must be positive; got {self.lr} and {self.alpha}")
        if not 0 <= self.greyscale <= 1 or not 0 <= self.mixup <= 1:
            raise ValueError("greyscale and mixup are probabilities, in [0, 1]")
        if self.val_fraction and self.val_pairs != "split":
            raise ValueError("val_fraction holds identities out for val_pairs='split' only")

    def _check_neighbours(self) -> None:
        """relation_neighbours: a count of other faces in the batch, with the term it shapes."""
        batch = self.batch_p * self.batch_k
        if not 0 <= self.relation_neighbours < batch:
            raise ValueError(
                f"relation_neighbours must be in [0, {batch - 1}] (the other faces of a batch of "
                f"{batch}); got {self.relation_neighbours}"
            )
        if self.relation_neighbours and not self.relation_weight:
            raise ValueError("relation_neighbours shapes the relation term: pass relation_weight")

    def _check_backend(self) -> None:
        self._check_jax_only()
        if not self.uses_views_trainer:
            views_only = {"mixup": self.mixup or None, "max_seconds": self.max_seconds,
                          "relation_weight": self.relation_weight or None,
                          "relation_neighbours": self.relation_neighbours or None}  # fmt: skip
            used = [k for k, v in views_only.items() if v is not None]
            if used:
                raise ValueError(f"{', '.join(used)}: only with a teacher or backend='jax'")
            return
        if self.uses_triplet:
            raise ValueError(
                "the views trainer (a teacher or backend='jax') trains the softmax head and/or "
                "distillation from --teacher: pass --loss ce (--ce-weight 0 for distillation alone)"
            )
        unsupported = {"distill": self.distill, "strategy": self.strategy != "none" or None,
                       "align": self.align != "none" or None,
                       "mixed_precision": self.mixed_precision or None}  # fmt: skip
        used = [k for k, v in unsupported.items() if v is not None]
        if used:
            raise ValueError(f"{', '.join(used)}: not supported by the views trainer")
        if self.teacher is None and not self.ce_weight:
            raise ValueError("the jax backend needs --teacher or a softmax loss (--ce-weight > 0)")
        if self.teacher is None and self.relation_weight:
            raise ValueError("relation_weight matches a teacher's similarities: pass --teacher")
        self._check_neighbours()
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1; got {self.workers}")

    def _check_jax_only(self) -> None:
        """Rendering on the device and the wall-clock cosine live in the JAX step."""
        if self.backend != "jax" and (self.render == "device" or self.schedule == "cosine-time"):
            raise ValueError("render='device' and schedule='cosine-time' need backend='jax'")
        if self.schedule == "cosine-time" and not self.max_seconds:
            raise ValueError("schedule='cosine-time' runs its cosine over max_seconds: pass it")

    @property
    def uses_views_trainer(self) -> bool:
        """True for facenet.train.views_trainer: backend jax, or a teacher (stored/online views)."""
        return self.backend == "jax" or self.teacher is not None

    @property
    def uses_triplet(self) -> bool:
        """True when the loss has a triplet term."""
        return self.loss in ("triplet", "triplet+ce")

    @property
    def uses_ce(self) -> bool:
        """True when the loss has a softmax (cross-entropy) term."""
        return self.loss in ("ce", "triplet+ce")

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict."""
        return asdict(self)

    def to_json(self) -> str:
        """The options as JSON (sorted keys)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """A config from stored options; unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

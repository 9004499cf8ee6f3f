"""facenet train: train a FaceNet model on a folder-per-identity dataset."""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import subprocess
import sys

import click

from ..backbones import backbone_names
from ..metadata import ALIGNMENT_MODES, POOLING_MODES
from . import UserError
from .conventions import FiniteRange


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder: checkpoint, logs, model.keras.",
)
@click.option(
    "--backbone", type=click.Choice(backbone_names()), default="mobilenet", show_default=True
)
@click.option("--input-size", default=160, show_default=True, type=click.IntRange(min=32))
@click.option("--embedding-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--alpha", default=1.0, show_default=True, help="MobileNet width multiplier.")
@click.option(
    "--pooling",
    type=click.Choice(POOLING_MODES),
    default="average",
    show_default=True,
    help="Last feature map to one vector: global average, or a learnt global depthwise "
    "convolution (starts as the average, so --init from an 'average' model works).",
)
@click.option(
    "--loss",
    type=click.Choice(["triplet", "ce", "triplet+ce"]),
    default="triplet+ce",
    show_default=True,
)
@click.option(
    "--mining",
    type=click.Choice(["semi_hard", "batch_hard", "batch_all"]),
    default="semi_hard",
    show_default=True,
)
@click.option("--margin", default=0.2, show_default=True, help="Triplet margin.")
@click.option("--ce-weight", default=1.0, show_default=True, help="Weight of the softmax loss.")
@click.option("--label-smoothing", default=0.0, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option(
    "--batch-p",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Identities per batch.",
)
@click.option(
    "--batch-k",
    default=4,
    show_default=True,
    type=click.IntRange(min=2),
    help="Images per identity.",
)
@click.option(
    "--batch-extra",
    default=None,
    type=click.IntRange(min=0),
    help="Extra single images of small identities per batch (softmax). Default: P*K/4.",
)
@click.option("--epochs", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--steps-per-epoch", default=None, type=click.IntRange(min=1))
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--warmup-epochs", default=0.0, show_default=True)
@click.option(
    "--schedule",
    type=click.Choice(["cosine", "step", "constant", "cosine-time"]),
    default="cosine",
    show_default=True,
    help="cosine-time: the cosine over --max-seconds of training instead of the epochs, for a "
    "machine whose speed is unknown beforehand (--backend jax).",
)
@click.option(
    "--val-pairs",
    default=None,
    metavar="FILE|split|none",
    help="Pairs checked each epoch. Default: LFW View 1 pairsDevTest.txt.",
)
@click.option(
    "--val-fraction",
    default=0.0,
    show_default=True,
    help="Identities held out of training (used by --val-pairs split).",
)
@click.option(
    "--align",
    type=click.Choice(["none", "mtcnn"]),
    default="none",
    show_default=True,
    help="none: DATA is aligned already (facenet align); mtcnn: align once, cached.",
)
@click.option("--align-cache", default=None, type=click.Path(file_okay=False))
@click.option(
    "--align-margin",
    "margin_px",
    default=32,
    show_default=True,
    help="Alignment margin (pixels at 160) of DATA's crops, recorded in the model file.",
)
@click.option(
    "--align-mode",
    "alignment",
    type=click.Choice(ALIGNMENT_MODES),
    default="crop",
    show_default=True,
    help="How DATA's crops were cut (facenet align --mode), recorded in the model file.",
)
@click.option(
    "--distill",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Teacher descriptors (tools/teacher_dlib.py) to distil from, beside the other losses.",
)
@click.option("--distill-weight", default=1.0, show_default=True)
@click.option(
    "--init",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Start from this model file's weights (e.g. facenet/weights/facenet-mobilenet.keras).",
)
@click.option("--resume", is_flag=True, help="Continue from the run folder's last checkpoint.")
@click.option(
    "--strategy",
    type=click.Choice(["none", "mirrored", "multi_worker"]),
    default="none",
    show_default=True,
)
@click.option("--mixed-precision", is_flag=True, help="float16 compute (GPUs); loss in float32.")
@click.option(
    "--backend",
    type=click.Choice(["tensorflow", "jax"]),
    default="tensorflow",
    show_default=True,
    help="jax: Keras on JAX (the views trainer: softmax and/or --teacher distillation; no "
    "TensorFlow needed).",
)
@click.option(
    "--teacher",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Distil on consistent views (the views trainer): a FaceNet-style .keras model run on "
    "the same view inside every step, or a tools/teacher_views.py .npz of its outputs on stored "
    "views (fast on a CPU).",
)
@click.option("--mixup", default=0.0, show_default=True, help="Mixup probability (views trainer).")
@click.option(
    "--relation-weight",
    default=0.0,
    show_default=True,
    type=FiniteRange(min=0),
    help="Weight of matching the teacher's pairwise similarities within a batch (views trainer).",
)
@click.option(
    "--relation-neighbours",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Weigh each face's this many nearest others (by the teacher) in the relation term as "
    "much as all its pairs: the pairs a threshold decides (views trainer).",
)
@click.option(
    "--max-seconds",
    default=None,
    type=FiniteRange(min=1),
    help="Stop after this much training time, checkpoint and model saved; --resume continues "
    "(views trainer).",
)
@click.option("--workers", default=8, show_default=True, help="Loader threads (views trainer).")
@click.option(
    "--render",
    type=click.Choice(["host", "device"]),
    default="host",
    show_default=True,
    help="Where views are rendered: host (PIL, loader threads) or device (inside the JAX step, "
    "every crop held on the accelerator; --backend jax).",
)
@click.option("--seed", default=0, show_default=True)
def train(data, out, **options):
    """Train on DATA (<identity>/<image> folders): triplet loss with online mining + softmax."""
    from ..train.config import TrainConfig

    if options["val_pairs"] is None:
        options.pop("val_pairs")
    try:
        config = TrainConfig(data=data, out=out, command=shlex.join(["facenet", *sys.argv[1:]]),
                             **options)  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _require_backend(config.backend)
    if config.uses_views_trainer:
        if os.environ.get("KERAS_BACKEND", "tensorflow") != config.backend:
            # Keras reads KERAS_BACKEND once, when first imported: train in a child process
            env = {**os.environ, "KERAS_BACKEND": config.backend}
            child = subprocess.Popen([sys.executable, "-m", "facenet", *sys.argv[1:]], env=env)
            sys.exit(_wait(child))
        from ..train.views_trainer import train as run
    else:
        from ..train import train as run
    result = run(config)
    if result.interrupted:
        click.echo(
            f"interrupted after epoch {result.epochs_done}; continue with --resume", err=True
        )
        sys.exit(130)
    if result.out_of_time:
        click.echo(
            f"--max-seconds ran out {result.epochs_done} of {config.epochs} epochs in "
            f"(saved: {result.model_path}); continue with --resume",
            err=True,
        )
        return
    if result.best_accuracy is None:
        click.echo(f"trained {result.epochs_done} epochs; model: {result.model_path}")
        click.echo(f"note: a run without validation pairs saves no threshold; choose one: "
                   f"facenet calibrate {result.model_path} --lfw-dir DIR -o OUT.keras",
                   err=True)  # fmt: skip
        return
    click.echo(
        f"trained {result.epochs_done} epochs; best validation accuracy "
        f"{result.best_accuracy:.4f} (epoch {result.best_epoch}); model: {result.model_path}"
    )


#: backend -> (the modules it imports, the extra that installs them)
BACKEND_NEEDS = {"tensorflow": (("tensorflow", "keras"), "tf"), "jax": (("jax", "keras"), "jax")}


def _require_backend(backend: str) -> None:
    """One line naming the extra to install when the backend's packages are absent (the light
    install has neither), rather than an ImportError traceback from inside the trainer."""
    modules, extra = BACKEND_NEEDS[backend]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(
            f"training with --backend {backend} needs {' and '.join(missing)}: "
            f"pip install 'facenet-keras[{extra}]'"
        )


def _wait(child: subprocess.Popen) -> int:
    """The child's exit status. Ctrl-C reaches the child too (same process group); SIGTERM, sent
    to this process alone (`timeout`, systemd, Slurm), is passed on. Either way wait for the
    child to save its checkpoint rather than leave it training."""
    previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)

"""facenet evaluate lfw | pairs: verification accuracy of a model on a pair protocol."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import click

from ..metadata import ALIGNMENT_MODES
from . import model_option
from .conventions import (
    FiniteRange,
    batch_size_option,
    emit,
    finish,
    progress_option,
    want_progress,
    warn_uncalibrated,
)

LFW_ENV = "FACENET_LFW_DIR"


#: The options every `facenet evaluate` command takes (a list, applied by `_common`).
COMMON_OPTIONS = [
    model_option,
    click.option(
        "--out",
        "-o",
        "out_dir",
        required=True,
        type=click.Path(file_okay=False),
        help="Folder for report.json, roc.png and distances.png, written all or none (one that "
        "cannot be written, e.g. a full disk: one Error line, exit 2).",
    ),
    click.option(
        "--embeddings",
        "embeddings_file",
        type=click.Path(dir_okay=False),
        help="Evaluate precomputed embeddings (npz: arrays `paths` and `embeddings`, "
        "or one array per relative image path) instead of a model; --flip, --alignment, "
        "--no-face-wrong, --batch-size, --cache-dir and --no-cache are then usage errors "
        "(exit 2).",
    ),
    click.option(
        "--distance",
        type=click.Choice(["euclidean", "cosine"]),
        default="euclidean",
        show_default=True,
        help="Squared L2, or 1 - cosine similarity.",
    ),
    click.option(
        "--flip",
        is_flag=True,
        help="Flip test-time augmentation: embed the crop and its mirror, add, normalise.",
    ),
    click.option(
        "--alignment",
        type=click.Choice(ALIGNMENT_MODES),
        default=None,
        help="Override the alignment recorded in the model.",
    ),
    click.option(
        "--no-face-wrong",
        is_flag=True,
        help="Count pairs with an image where no "
        "face is found as wrong answers (default: embed its centred crop).",
    ),
    click.option(
        "--threshold",
        type=FiniteRange(0, 4),
        default=None,
        help="Fixed threshold for 'accuracy at threshold' (default: the model's).",
    ),
    click.option(
        "--limit",
        type=click.IntRange(min=2),
        default=None,
        help="Evaluate about N pairs only, the first of each class in every fold (a quick check).",
    ),
    batch_size_option(note="; with --embeddings, a usage error"),
    click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Embedding cache folder (default $FACENET_CACHE_DIR or ~/.cache/facenet); one "
        "that cannot be created or written (read-only, disk full) turns the cache off with a "
        "warning, and the evaluation goes on.",
    ),
    click.option(
        "--no-cache",
        is_flag=True,
        help="Neither read nor write the embedding cache (a model's; with --embeddings: a "
        "usage error).",
    ),
    click.option(
        "--raw",
        is_flag=True,
        help="With --embeddings: do not L2-normalise them (without: a usage error, exit 2).",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON line."),
    progress_option,
]


def _common(f):
    """Apply `COMMON_OPTIONS` to a command, in order."""
    for option in reversed(COMMON_OPTIONS):
        f = option(f)
    return f


@click.group()
def evaluate() -> None:
    """Verification accuracy on LFW or any pair list: 10-fold accuracy, VAL@FAR, ROC, EER.

    Exit status: 0 done; 1 some images failed (listed; their pairs count as wrong); 2 a usage
    error, or --out cannot be written (disk full, read-only: "Error: cannot write OUT/FILE
    (reason)"; report.json, roc.png and distances.png are written all or none, so the
    previous ones in --out stay as they were).
    """


@evaluate.command()
@click.option(
    "--lfw-dir",
    type=click.Path(file_okay=False),
    default=None,
    help=f"LFW folder: the pairs files and lfw-deepfunneled/ (default ${LFW_ENV} or ./lfw).",
)
@click.option(
    "--view",
    type=click.Choice(["2", "dev-train", "dev-test"]),
    default="2",
    show_default=True,
    help="View 2 (pairs.txt, 10 folds) or a View 1 list.",
)
@click.option(
    "--folds",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="View 1 only: cut into this many balanced folds (1 = one fold).",
)
@_common
def lfw(lfw_dir, view, folds, **options):
    """LFW verification (View 2 by default), 10-fold."""
    from ..evaluate.protocols import lfw_pairs

    given = click.get_current_context().get_parameter_source("folds")
    if view == "2" and given is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--folds is for the View 1 lists; View 2 has its own folds")
    lfw_dir = lfw_dir or os.environ.get(LFW_ENV) or "lfw"
    pairs = lfw_pairs(lfw_dir, view, n_folds=None if view == "2" else folds)
    if pairs.n_folds < folds and view != "2":
        click.echo(f"warning: {len(pairs)} pairs make only {pairs.n_folds} balanced folds, "
                   f"not {folds}", err=True)  # fmt: skip
    _run(pairs, **options)


@evaluate.command()
@click.argument("pair_list", type=click.Path(dir_okay=False))
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder the image paths are relative to (default: the list's folder).",
)
@_common
def pairs(pair_list, root, **options):
    """Evaluate a TSV pair list: fold<TAB>label<TAB>path_a<TAB>path_b (label 1 = same)."""
    from ..evaluate.protocols import read_pair_tsv

    _run(read_pair_tsv(pair_list, root), **options)


def _refuse_model_options(model_path, flip, alignment, no_face_wrong, cache_dir, no_cache) -> None:
    """With --embeddings, the options of a model's embedding are usage errors, not ignored."""
    if model_path:
        raise click.UsageError("give --model or --embeddings, not both")
    if flip or alignment:  # they change how a model embeds: no model here
        raise click.UsageError("--flip and --alignment need a model, not --embeddings")
    source = click.get_current_context().get_parameter_source("batch_size")
    given = [name for name, value in (("--no-face-wrong", no_face_wrong),
             ("--batch-size", source is not click.core.ParameterSource.DEFAULT),
             ("--cache-dir", cache_dir is not None),
             ("--no-cache", no_cache)) if value]  # fmt: skip
    if given:
        verb = "needs" if len(given) == 1 else "need"
        raise click.UsageError(f"{' and '.join(given)} {verb} a model, not --embeddings")


def _run(
    pairs,
    *,
    model_path,
    out_dir,
    embeddings_file,
    distance,
    flip,
    alignment,
    no_face_wrong,
    threshold,
    limit,
    batch_size,
    cache_dir,
    no_cache,
    raw,
    as_json,
    progress,
):
    if embeddings_file:
        _refuse_model_options(model_path, flip, alignment, no_face_wrong, cache_dir, no_cache)
    elif raw:  # a model's embeddings are always L2-normalised
        raise click.UsageError("--raw needs --embeddings (a model's vectors are always normalised)")
    options = {"distance": distance, "flip": flip, "alignment": alignment,
               "no_face_wrong": no_face_wrong, "normalize": not raw, "batch_size": batch_size,
               "cache_dir": cache_dir, "use_cache": not no_cache,
               "progress": want_progress(progress)}  # fmt: skip
    with _out_folder(out_dir):  # a bad --out fails now, not after the embedding
        report = _evaluate(pairs, embeddings_file, model_path, limit, threshold, out_dir, options)
    if as_json:
        emit(json.loads(Path(out_dir, "report.json").read_text(encoding="utf-8")))
    else:
        click.echo(report["summary"])
        click.echo(f"wrote {', '.join(report['files'].values())}", err=True)
    failed = sorted(report["failures"]["failed_images"])
    finish(report["timing"]["n_images"] - len(failed), failed, "image")


@contextlib.contextmanager
def _out_folder(out_dir: str) -> Iterator[None]:
    """Make --out (and its parents) now; when the run then fails or is interrupted, remove
    again the folders it made, if still empty: an error leaves nothing behind."""
    from ..outputs import check_output_folder, make_folder

    path = check_output_folder(out_dir).absolute()
    made = [p for p in (path, *path.parents) if not p.exists()]
    make_folder(path)
    try:
        yield
    except BaseException:
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone: leave it
                break
        raise


def _evaluate(pairs, embeddings_file, model_path, limit, threshold, out_dir, options: dict):
    """The report of one run (written to `out_dir`), after the warnings about the pairs."""
    from ..evaluate.protocols import balanced_subset
    from ..evaluate.run import evaluate_pairs

    if limit is not None:
        pairs = balanced_subset(pairs, limit)
    if pairs.labels.size and pairs.labels.all() == pairs.labels.any():
        kind = "same" if pairs.labels[0] else "different"
        click.echo(f"warning: every pair is '{kind}': the accuracy is that of one class; the "
                   "ROC, EER and VAL@FAR need both", err=True)  # fmt: skip
    missing = pairs.missing_files() if embeddings_file is None else []
    if missing:
        click.echo(
            f"warning: {len(missing)} images not found under {pairs.root} "
            f"(e.g. {missing[0]}); their pairs count as wrong",
            err=True,
        )
    model = None if embeddings_file is not None else _load_model(model_path, threshold)
    return evaluate_pairs(pairs, model=model, embeddings_file=embeddings_file,
                          threshold=threshold, out_dir=out_dir, **options)  # fmt: skip


def _load_model(model_path, threshold):
    """The model to embed with; a warning when it will decide at the customary threshold."""
    from ..api import FaceNet

    model = FaceNet.load(model_path)
    warn_uncalibrated(model, threshold)
    return model

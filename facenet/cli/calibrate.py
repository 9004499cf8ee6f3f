"""facenet calibrate: choose a model's verification threshold on development pairs."""

from __future__ import annotations

import os

import click

from . import UserError
from .conventions import (
    batch_size_option,
    emit,
    finish,
    json_option,
    progress_option,
    want_progress,
)
from .evaluate import LFW_ENV


@click.command()
@click.argument("model", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option(
    "--lfw-dir", type=click.Path(file_okay=False), default=None,
    help=f"LFW folder: the pairs files and lfw-deepfunneled/ (default ${LFW_ENV}, unless "
    "--pairs is given).",
)  # fmt: skip
@click.option(
    "--view", type=click.Choice(["dev-train", "dev-test", "2"]), default="dev-train",
    show_default=True,
    help="The LFW View 1 list to calibrate on (View 2, the test view: a usage error).",
)  # fmt: skip
@click.option(
    "--pairs", "pair_list", type=click.Path(dir_okay=False), default=None,
    help="A TSV pair list instead of LFW: fold<TAB>label<TAB>path_a<TAB>path_b (1 = same).",
)  # fmt: skip
@click.option(
    "--root", type=click.Path(file_okay=False), default=None,
    help="With --pairs: the folder its paths are relative to (default: the list's folder).",
)  # fmt: skip
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="The calibrated copy of MODEL (same suffix; never MODEL itself).")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing --out.")
@batch_size_option()
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Embedding cache folder (default $FACENET_CACHE_DIR or ~/.cache/facenet).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the embedding cache.")
@json_option
@progress_option
def calibrate(model, lfw_dir, view, pair_list, root, out, force, batch_size, cache_dir, no_cache,
              as_json, progress):  # fmt: skip
    """Choose MODEL's verification threshold on development pairs; write a copy with it.

    The pairs are embedded through the whole pipeline, exactly as `facenet evaluate` does, and
    the squared-L2 threshold of highest accuracy on them is stored in the copy's ModelInfo with
    the pair list, its size and the accuracy there. LFW View 1 (pairsDevTrain.txt) by default;
    View 2 (pairs.txt) is the test view and is refused. MODEL: a .keras, .onnx or .tflite
    file, or a bundled model's name (its file's format). The copy also records the id of the
    model whose embeddings it makes (MODEL's, or the one MODEL records if it is a calibrated
    copy itself): galleries and people libraries made with MODEL accept the copy.

    Exit status: 0 written; 1 written, but some images failed (listed; their pairs count as
    wrong); 2 a usage error (View 2, another format, an existing --out without --force, --out
    that cannot be written), nothing written.
    """
    from ..api import FaceNet
    from ..calibrate import calibrate as choose
    from ..calibrate import calibrated_info, check_calibration_paths, check_pairs, write_calibrated
    from ..catalog import resolve

    pairs = _pairs(lfw_dir, view, pair_list, root)
    check_pairs(pairs)  # before the model is loaded
    path, name = resolve(model)  # a bundled model's name: its file
    model = str(path)
    out = check_calibration_paths(model, out, force=force)
    if not os.path.isfile(model):
        raise UserError(f"{model}: no such model file")
    loaded = FaceNet.load(name or model)  # by name: the copy records the bundled model's name
    calibration, report = choose(
        pairs, loaded, batch_size=batch_size, cache_dir=cache_dir, use_cache=not no_cache,
        progress=want_progress(progress),
    )  # fmt: skip
    write_calibrated(model, calibrated_info(loaded.info, calibration, of=loaded), out)
    if as_json:
        emit({"model": model, "out": str(out), **calibration.record()})
    else:
        click.echo(
            f"{calibration.protocol}: {calibration.n_pairs} pairs, best accuracy "
            f"{100 * calibration.accuracy:.2f}% at threshold {calibration.threshold:.4f}"
        )
        click.echo(f"wrote {out}")
    failed = sorted(report["failures"]["failed_images"])
    finish(report["timing"]["n_images"] - len(failed), failed, "image")


def _pairs(lfw_dir, view, pair_list, root):
    """The pair list asked for: --pairs, or an LFW View 1 list (never View 2)."""
    from ..calibrate import check_not_test_view
    from ..evaluate.protocols import lfw_pairs, read_pair_tsv

    if pair_list and lfw_dir:
        raise UserError("give --lfw-dir or --pairs, not both")
    if view == "2":
        message = "LFW View 2 (pairs.txt) is the test view; calibrate on View 1 (--view dev-train)"
        raise UserError(message)
    given = click.get_current_context().get_parameter_source("view")
    if pair_list and given is not click.core.ParameterSource.DEFAULT:
        raise UserError("--view is for --lfw-dir; a --pairs list is used as it is")
    if pair_list:
        check_not_test_view(pair_list)
        return read_pair_tsv(pair_list, root)
    if root:
        raise UserError("--root is for --pairs; an LFW folder has its own images")
    lfw_dir = lfw_dir or os.environ.get(LFW_ENV)
    if not lfw_dir:
        raise UserError(f"give --lfw-dir DIR (or set ${LFW_ENV}) or --pairs LIST")
    return lfw_pairs(lfw_dir, view, n_folds=1)

"""facenet cluster."""

from __future__ import annotations

import click

from . import model_option
from .conventions import (
    FiniteRange,
    emit,
    finish,
    json_option,
    photo_path,
    progress_option,
    want_progress,
    warn_uncalibrated,
)
from .gallery import load_model


@click.command()
@click.argument("inputs", metavar="PHOTOS_OR_DIRS...", nargs=-1, required=True, type=photo_path())
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--method",
    type=click.Choice(["agglomerative", "dbscan", "chinese_whispers"]),
    default="agglomerative",
    show_default=True,
)
@click.option(
    "--threshold", type=FiniteRange(0, 4, min_open=True), default=None,
    help="Override the model's threshold (a squared-L2 distance in (0, 4]).",
)  # fmt: skip
@click.option(
    "--min-size", default=1, show_default=True, type=click.IntRange(min=1),
    help="Clusters with fewer faces go to noise/.",
)  # fmt: skip
@model_option
@progress_option
@json_option
def cluster(inputs, out, method, threshold, min_size, model_path, progress, as_json):
    """Group every face in PHOTOS_OR_DIRS by person; write one folder of face crops per
    cluster, clusters.json and an index.html contact sheet to --out (a new or empty folder).

    No face in any photo: nothing is written, exit status 2; so too when --out cannot be
    written (disk full, read-only: one line, "Error: cannot write OUT (reason)", and no
    half-written folder). Inside a folder given, --out and
    earlier outputs of this command (folders holding clusters.json and index.html) are
    skipped: their crops are not photos.

    With --json, one line per photo: its faces, each with its cluster (-1 = noise) and crop.
    """
    from ..clustering.photos import cluster_photos, find_photos
    from ..errors import FaceNetError

    photos = find_photos(inputs, exclude=out)
    if not photos:
        raise FaceNetError("no photos found in the given inputs")
    model = load_model(model_path)
    warn_uncalibrated(model, threshold)
    report = cluster_photos(
        model, photos, out, method=method, threshold=threshold, min_size=min_size,
        progress=want_progress(progress),
    )  # fmt: skip
    if as_json:
        for row in report.rows:
            emit(row)
    else:
        for row in report.rows:
            if "error" in row:
                click.echo(f"{row['photo']}\terror: {row['error']}", err=True)
    click.echo(report.summary(), err=as_json)
    done = sum(1 for row in report.rows if "error" not in row)
    finish(done if report.faces else 0, report.unreadable, "photo", "no face in any photo")

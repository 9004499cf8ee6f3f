"""`facenet align`: crop the faces of a whole dataset, keeping its layout."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..metadata import ALIGNMENT_MODES


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option(
    "--size", default=160, show_default=True, type=click.IntRange(8, 4096), help="Crop side (px)."
)
@click.option(
    "--margin",
    default=32.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="FaceNet margin in px at size 160, scaled with --size (crop mode).",
)
@click.option("--mode", type=click.Choice(ALIGNMENT_MODES), default="crop", show_default=True)
@click.option(
    "--keep-fallback",
    is_flag=True,
    help="Save a centred square crop when no face is found (listed in the report).",
)
@click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=None, help="Processes [CPU count]."
)
@click.option("--min-face-size", default=20.0, show_default=True, type=click.FloatRange(min=1))
@click.option(
    "--no-pad-retry",
    is_flag=True,
    help="Do not look again in an edge-padded copy when no face is found.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def align(
    src, dst, size, margin, mode, keep_fallback, workers, min_face_size, no_pad_retry, no_progress
):
    """Align the images under SRC (folder per identity, or flat) into DST as PNG face crops.

    Resumable: images already aligned are skipped. Writes DST/align_report.json and prints
    its counts as one JSON line.
    """
    from ..detect import MTCNN
    from ..detect.aligner import align_dataset

    report = align_dataset(
        src,
        dst,
        size=size,
        margin=margin,
        mode=mode,
        keep_fallback=keep_fallback,
        workers=workers,
        pad_retry=not no_pad_retry,
        progress=not no_progress,
        detector=MTCNN(min_face_size=min_face_size),
    )
    click.echo(json.dumps({"report": str(Path(dst) / "align_report.json"), **report["counts"]}))

"""`facenet align`: crop the faces of a whole dataset, keeping its layout."""

from __future__ import annotations

from pathlib import Path

import click

from ..metadata import ALIGNMENT_MODES
from ..text import plural
from .conventions import FiniteRange, emit, finish, json_option, progress_option, want_progress


@click.command()
@click.argument("src", type=click.Path())  # str: click's Path type would turn "" into "."
@click.argument("dst", type=click.Path())
@click.option(
    "--size", default=160, show_default=True, type=click.IntRange(8, 4096), help="Crop side (px)."
)
@click.option(
    "--margin",
    default=32.0,
    show_default=True,
    type=FiniteRange(min=0),
    help="FaceNet margin in px at size 160, scaled with --size (crop mode).",
)
@click.option("--mode", type=click.Choice(ALIGNMENT_MODES), default="crop", show_default=True)
@click.option(
    "--keep-fallback",
    is_flag=True,
    help="Save a centred square crop when no face is found (listed in the report).",
)
@click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=None,
    help="Worker processes [CPU count].",
)  # fmt: skip
@click.option("--min-face-size", default=20.0, show_default=True, type=FiniteRange(min=1))
@click.option(
    "--no-pad-retry",
    is_flag=True,
    help="Do not look again in an edge-padded copy when no face is found.",
)
@progress_option
@json_option
def align(
    src, dst, size, margin, mode, keep_fallback, workers, min_face_size, no_pad_retry, progress,
    as_json,
):  # fmt: skip
    """Align the images under SRC (folder per identity, or flat) into DST as PNG face crops.
    DST must lie outside SRC, or later runs would take the crops as images, and be new, empty
    or an earlier align's output (it holds align_report.json).

    Resumable: images already aligned are skipped. Writes DST/align_report.json and prints
    its counts (with --json: one line per image that was not aligned, then the counts).
    Exit status 1 when some images gave no crop, 2 when none did.
    """
    from ..detect import make_detector
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
        progress=want_progress(progress),
        detector=make_detector(min_face_size=min_face_size),
    )
    counts = report["counts"]
    failed = [*report["no_face"], *(u["path"] for u in report["unreadable"])]
    if as_json:
        for path in report["no_face"]:
            emit({"image": path, "error": "no face found"})
        for item in report["unreadable"]:
            emit({"image": item["path"], "error": item["error"] or "unreadable"})
        emit({"report": str(Path(dst) / "align_report.json"), **counts})
    else:
        click.echo(
            f"{counts['aligned']} of {plural(counts['images'], 'image')} aligned "
            f"({counts['fallback']} centre-crop fallbacks, {counts['no_face']} without a face, "
            f"{counts['unreadable']} unreadable); report {Path(dst) / 'align_report.json'}"
        )
    ignored = counts.get("ignored_files", 0)
    others = f" ({plural(ignored, 'other file')} ignored)" if ignored else ""
    finish(
        counts["aligned"] + counts["fallback"],
        [str(f) for f in failed],
        "image",
        nothing=f"no images under {src}{others}",
    )

"""facenet gallery enroll G --from-parquet DIR: enrol a batch run's output, no re-embedding."""

from __future__ import annotations

import click

from ..text import plural
from .conventions import emit, finish
from .embed_batch import named


def enroll_parquet(
    gallery_path: str, out: str, name: str | None, all_faces: bool, as_json: bool
) -> None:
    """Run `enroll_from_parquet` on an opened gallery and report per the CLI conventions."""
    from ..batch import require_extra
    from ..gallery import Gallery

    require_extra("local", "--from-parquet")  # pyarrow: not "--engine local", never given
    from ..batch.enroll import enroll_from_parquet

    with Gallery.open(gallery_path) as g:
        report = enroll_from_parquet(g, out, name=name, all_faces=all_faces)
    if as_json:
        for source, person, face_id in report.enrolled:
            emit({"photo": source, "person": person, "face_id": face_id})
        for source, reason in report.skipped:
            emit({"photo": source, "error": reason})
    else:
        for source, reason in report.skipped:
            click.echo(f"skipped: {named(source, reason)}", err=True)
    people = len({person for _, person, _ in report.enrolled})
    click.echo(
        f"enrolled {plural(len(report.enrolled), 'face')} of {plural(people, 'person', 'people')} "
        f"from {out} (no re-embedding)",
        err=as_json,
    )
    finish(len(report.enrolled), [s for s, _ in report.skipped], "photo")

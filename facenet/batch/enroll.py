"""Enrol a batch run's Parquet output into a gallery without embedding anything again."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ..errors import GalleryError
from .records import read_output


@dataclass
class ParquetEnrollReport:
    """Faces enrolled (source, person, face id) and photos skipped (path, reason)."""

    enrolled: list[tuple[str, str, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def enroll_from_parquet(
    gallery, out: str | os.PathLike, *, name: str | None = None, all_faces: bool = False
) -> ParquetEnrollReport:
    """Add the embeddings of a `facenet embed --engine` output to `gallery` through
    `Gallery.add_embeddings`: per photo its most prominent face (every face with all_faces,
    as source `PATH#K`), as `name` or else the photo's folder name (the `--folder` rule).
    Sources already in the gallery are skipped, so a rerun adds nothing twice; rows of
    another model than the gallery's are refused before anything is added."""
    table = read_output(out)
    faces = table.filter(pc.is_null(table.column("error")))
    ids = set(faces.column("model_id").to_pylist())
    if ids - {gallery.model_id}:
        other = ", ".join(sorted(i[:12] for i in ids - {gallery.model_id}))
        raise GalleryError(
            f"{out}: embedded by model id {other}; the gallery's model is "
            f"{gallery.model_name!r} (id {gallery.model_id[:12]}): embed again with that model"
        )
    report = ParquetEnrollReport()
    failed = table.filter(pc.invert(pc.is_null(table.column("error"))))
    for path, error in zip(*(failed.column(c).to_pylist() for c in ("path", "error")), strict=True):
        report.skipped.append((path, error))
    if not all_faces:
        faces = faces.filter(faces.column("prominent"))
    paths = faces.column("path").to_pylist()
    numbers = faces.column("face").to_pylist()
    vectors = np.asarray(
        faces.column("embedding").combine_chunks().flatten().to_numpy(), np.float32
    ).reshape(len(paths), -1)
    known = {f.source for f in gallery.faces()}
    groups: dict[str, list[int]] = defaultdict(list)
    sources = [f"{p}#{k}" if all_faces else p for p, k in zip(paths, numbers, strict=True)]
    for row, (path, source) in enumerate(zip(paths, sources, strict=True)):
        if source in known:
            report.skipped.append((source, "already in the gallery"))
        else:
            groups[name or Path(path).parent.name].append(row)
    for person, rows in groups.items():
        chosen = [sources[r] for r in rows]
        face_ids = gallery.add_embeddings(person, vectors[rows], chosen)
        report.enrolled += zip(chosen, [person] * len(rows), face_ids, strict=True)
    return report

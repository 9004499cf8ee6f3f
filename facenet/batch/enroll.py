"""Enrol a batch run's Parquet output into a gallery without embedding anything again."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import GalleryError
from ..gallery.validation import check_name
from ..metadata import same_embeddings
from ..types import Face
from .records import read_output, schema

#: the columns enrolment reads: a folder that lacks one is refused, before anything is added
FACE = ["box", "score", "landmarks"]  # where the face is: kept so a migration can re-embed it
NEEDED = ["path", "face", "prominent", *FACE, "embedding", "model_id", "error"]
#: columns read when there: null in parts written before them
LATER = ["src_folder", "embeddings_of"]
#: why a photo directly in the folder SRC (no sub-folder to name its person) is not enrolled
LOOSE = "loose in the input folder: give --name or use sub-folders per person"


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
    as source `PATH#K`), as `name` or else the photo's folder name; without `name`, photos
    directly in a folder SRC (in rows that record it) are skipped, as `--folder` does.
    A face already in the gallery (the main one as PATH or as PATH#K) or met twice in OUT (a
    batch Ray ran twice) is added once, so a rerun adds nothing twice; rows of a model that
    makes other embeddings than the gallery's (`same_embeddings`: a calibrated copy makes the
    same), or not of facenet's schema, are refused before anything is added; a
    face whose embedding is not a finite non-zero vector, or whose folder is no valid name,
    is skipped and listed."""
    name = None if name is None else check_name(name)
    table = _checked(gallery, out)
    report = ParquetEnrollReport()
    failed = table.filter(pc.is_valid(table.column("error")))
    pairs = zip(*(failed.column(c).to_pylist() for c in ("path", "error")), strict=True)
    report.skipped += dict.fromkeys(pairs)  # a batch written twice lists its failures once
    faces = table.filter(pc.is_null(table.column("error")))
    if not all_faces:
        faces = faces.filter(pc.fill_null(faces.column("prominent"), False))
    stored = gallery.faces()
    known = {f.source for f in stored}
    photos = {f.photo for f in stored if f.photo}
    vectors = _vectors(faces.column("embedding"), gallery.embedding_size)
    usable = np.all(np.isfinite(vectors), axis=1) & np.any(vectors != 0, axis=1)
    groups: dict[str, list[int]] = defaultdict(list)
    sources, seen = [], set()
    columns = (faces.column(c).to_pylist() for c in ("path", "face", "prominent", "src_folder"))
    for row, (path, k, main, src) in enumerate(zip(*columns, strict=True)):
        source = f"{path}#{k}" if all_faces else path
        sources.append(source)
        # the main face is PATH without --all-faces and PATH#K with it: one face, one entry
        aliases = {f"{path}#{k}", path} if main else {f"{path}#{k}"}
        if aliases & seen:
            continue  # the same face twice in OUT (a batch written twice): enrolled once
        seen |= aliases
        loose = name is None and src is not None and os.path.dirname(path) == src
        person = name or Path(path).parent.name
        enrolled = bool(aliases & known) or (main and _resolved(path) in photos)
        why = _refusal(enrolled, bool(usable[row]), person, loose)
        if why is not None:
            report.skipped.append((source, why))
            continue
        groups[check_name(person)].append(row)
    for person, rows in groups.items():
        chosen = [sources[r] for r in rows]
        located = [_face(faces, r) for r in rows]
        face_ids = gallery.add_embeddings(person, vectors[rows], chosen, faces=located)
        report.enrolled += zip(chosen, [person] * len(rows), face_ids, strict=True)
    return report


def _checked(gallery, out: str | os.PathLike) -> pa.Table:
    """OUT's rows in facenet's schema for the gallery's embedding size, or a GalleryError
    before anything is added: another model's rows would mix two embedding spaces."""
    table = read_output(out, [*NEEDED, *LATER])  # LATER: null in parts written before them
    faces = table.filter(pc.is_null(table.column("error")))
    made = zip(*(faces.column(c).to_pylist() for c in ("model_id", "embeddings_of")), strict=True)
    ours = (gallery.model_id, gallery.embeddings_of)
    other = sorted({str(i)[:12] for i, of in made if not same_embeddings(str(i), of, *ours)})
    if other:
        raise GalleryError(
            f"{out}: embedded by model id {', '.join(other)}; the gallery's model is "
            f"{gallery.model_name!r} (id {gallery.model_id[:12]}): embed again with that model "
            "(or a copy `facenet calibrate` wrote of it)"
        )
    full = schema(gallery.embedding_size)
    expected = pa.schema([full.field(n) for n in [*NEEDED, *LATER]])
    try:
        return table.select(expected.names).cast(expected)
    except (pa.ArrowException, ValueError) as exc:
        raise GalleryError(f"{out}: not a `facenet embed` output of this model ({exc})") from None


def _vectors(column: pa.ChunkedArray, size: int) -> np.ndarray:
    """The embeddings as an n x size float32 matrix, a missing one as a row of NaN."""
    missing = pa.scalar([float("nan")] * size, column.type)
    flat = pc.fill_null(column, missing).combine_chunks().flatten()
    return np.asarray(flat.to_numpy(zero_copy_only=False), np.float32).reshape(-1, size)


def _resolved(path: str) -> str | None:
    """A local photo's absolute path as the gallery stores it (None for a URI)."""
    return None if "://" in path else str(Path(path).resolve())


def _face(faces: pa.Table, row: int) -> Face | None:
    """Where a row's face is in its photo (box, score, landmarks), so the gallery keeps the
    photo and another model can embed the face again (`gallery migrate`)."""
    box, score, points = (faces.column(c)[row].as_py() for c in FACE)
    if box is None:
        return None
    landmarks = None if points is None else np.asarray(points, np.float64).reshape(5, 2)
    return Face(box=tuple(box), score=float(score or 0.0), landmarks=landmarks)


def _refusal(known: bool, usable: bool, person: str, loose: bool) -> str | None:
    """Why a face row is not enrolled (already there, unusable embedding, loose in SRC, no
    valid person name from its folder), or None."""
    if known:
        return "already in the gallery"
    if not usable:
        return "its embedding is missing, not finite or zero"
    if loose:  # the folder SRC itself would name one person for photos of many
        return LOOSE
    try:
        check_name(person)
    except GalleryError as exc:
        return f"no person name from its folder ({exc}); give --name"
    return None

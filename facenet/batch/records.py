"""What both batch engines write: one Parquet row per face or per failed image.

The local and the Ray engine run the same `embed_batch` on the same batches of paths and
write each result with `write_part`, so their output has one schema and differs only in how
batches are scheduled. A part is written to a hidden temporary file and renamed into place,
so a part either exists whole or not at all; `done_paths` reads back which paths a folder
already holds, which is what makes a run resumable; `forget_failures` drops the failure rows of
paths to be tried again.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import FaceNetError, ImageError
from ..images import load_image, pixel_groups
from ..metadata import embedding_origin, same_embeddings

#: the error of an image read well that shows no face
NO_FACE = "no face found"
PART_GLOB = "part-*.parquet"
#: columns added after parts were first written: a part without one reads it as null
OPTIONAL = ("src_folder", "embeddings_of")


def schema(embedding_size: int) -> pa.Schema:
    """The output schema; face columns are null on failure rows, `error` null on face rows."""
    f32 = pa.float32()
    return pa.schema(
        [
            ("path", pa.string()),
            # SRC when it was a folder (photos directly in it name no person), else null
            ("src_folder", pa.string()),
            ("face", pa.int32()),
            ("faces_in_photo", pa.int32()),
            ("prominent", pa.bool_()),
            ("box", pa.list_(f32, 4)),
            ("landmarks", pa.list_(f32, 10)),
            ("score", f32),
            ("eye_distance", f32),
            ("image_width", pa.int32()),
            ("image_height", pa.int32()),
            ("embedding", pa.list_(f32, embedding_size)),
            ("model", pa.string()),
            ("model_id", pa.string()),
            # the model whose embeddings model_id makes, as a calibrated copy records it, else
            # model_id (`facenet calibrate`; null in parts written before this column)
            ("embeddings_of", pa.string()),
            ("error", pa.string()),
        ]
    )


def decode(path: str) -> np.ndarray:
    """An upright RGB array from a local path or a URI pyarrow can open (s3://, gs://...)."""
    if "://" not in path:
        return load_image(path)
    from PIL import Image

    try:
        fs, inner = pa.fs.FileSystem.from_uri(path)
        with fs.open_input_stream(inner) as stream:
            data = stream.read()
        return load_image(Image.open(io.BytesIO(data)), path)
    except (OSError, pa.ArrowException) as exc:
        raise ImageError(f"{path}: {exc}") from None


def embed_batch(model, paths: Sequence[str], src_folder: str | None = None) -> pa.Table:
    """Decode, detect, align and embed a batch of image paths: a table of face rows and of
    failure rows (unreadable image, no face), in the order of `paths`; every row records
    `src_folder`, the folder SRC they were listed from (None for a path list). Photos are
    decoded and detected a group at a time (`images.pixel_groups`): only crops outlive them."""
    from ..detect.crops import aligned

    info = model.info
    cut = aligned(info.input_size, info.alignment, info.margin)  # the model's own crops
    rows_of: dict[str, list[dict]] = {}  # decode failures are recorded as they are met
    crops_of: dict[str, list[np.ndarray]] = {}
    for group in pixel_groups(_decoded(paths, rows_of), array=lambda item: item[1]):
        detected = model.detector.detect_batch([rgb for _, rgb in group])
        for (path, rgb), faces in zip(group, detected, strict=True):
            rows_of[path], crops_of[path] = _faces_of(path, rgb, faces, cut)
    rows = [row for path in paths for row in rows_of[path]]
    crops = [crop for path in paths for crop in crops_of.get(path, [])]
    vectors = iter(model.embed_crops(np.stack(crops)) if crops else [])
    shared = {"src_folder": src_folder, "model": model.name or info.name}
    shared["model_id"], shared["embeddings_of"] = model.model_id, embedding_origin(model)
    for row in rows:
        if row.get("error") is None:
            row["embedding"] = next(vectors)
        row.update(shared)
    return pa.Table.from_pylist(rows, schema=schema(model.embedding_size))


def _decoded(paths: Sequence[str], rows_of: dict) -> Iterator[tuple[str, np.ndarray]]:
    """(path, RGB) of each path that decodes; a failure row in `rows_of` for each that does not."""
    for path in paths:
        try:
            yield path, decode(path)
        except (FaceNetError, OSError) as exc:
            rows_of[path] = [{"path": path, "error": str(exc)}]


def _faces_of(path: str, rgb: np.ndarray, faces, cut) -> tuple[list[dict], list[np.ndarray]]:
    """(rows, crops) of one photo's detected faces; a failure row when there is none."""
    from ..detect import most_prominent

    if not faces:
        return [{"path": path, "error": NO_FACE}], []
    best = most_prominent(faces, rgb.shape)
    rows = [_face_row(path, k, faces, rgb.shape, face is best) for k, face in enumerate(faces)]
    return rows, [cut(rgb, face) for face in faces]


def _face_row(path: str, k: int, faces, shape, prominent: bool) -> dict:
    face = faces[k]
    marks = None if face.landmarks is None else np.asarray(face.landmarks, np.float32)
    eyes = None if marks is None else float(np.linalg.norm(marks[0] - marks[1]))
    return {
        "path": path,
        "face": k,
        "faces_in_photo": len(faces),
        "prominent": prominent,
        "box": [float(v) for v in face.box],
        "landmarks": None if marks is None else marks.reshape(-1).tolist(),
        "score": float(face.score),
        "eye_distance": eyes,
        "image_width": int(shape[1]),
        "image_height": int(shape[0]),
    }


#: every column of `schema`, in order
_FIELDS = schema(1)
_COLUMNS = _FIELDS.names


def write_part(table: pa.Table, out: str | os.PathLike) -> Path:
    """Write one part atomically: a hidden temporary file renamed to part-<uuid>.parquet."""
    return _write_atomic(table, Path(out) / f"part-{uuid.uuid4().hex}.parquet")


def _write_atomic(table: pa.Table, target: Path) -> Path:
    """`table` at `target` (a new part, or one replaced): written to a hidden temporary file
    beside it, then renamed over it, so `target` is the old part or the new one, never half."""
    out = target.parent
    tmp = out / f".tmp-{target.name}"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, target)
    except OSError as exc:  # disk full, quota, permissions: one line, not pyarrow's traceback
        raise FaceNetError(
            f"{out}: cannot write a part ({_first_line(exc)}); the parts written so far are "
            "kept: run again to resume"
        ) from None
    finally:  # gone once renamed; else half a part (an error, Ctrl-C)
        tmp.unlink(missing_ok=True)
    return target


def forget_failures(out: str | os.PathLike, paths: set[str]) -> set[str]:
    """Remove the failure rows of `paths` from the parts of `out`, so that the next run embeds
    those paths again (`--retry-failed`); returns the paths whose failures were removed. Each
    part is rewritten atomically (`_write_atomic`; one of failures only is deleted), and a
    failure is removed before its path is embedded again: interrupted in between, the path is
    simply not done yet, so it never has a failure row and face rows at once."""
    wanted = pa.array(sorted(paths), pa.string())
    forgotten: set[str] = set()
    for part in parts(out):
        table = read_part(part, ["path", "error"])
        drop = pc.and_(pc.is_valid(table["error"]), pc.is_in(table["path"], value_set=wanted))
        if not pc.any(drop).as_py():
            continue
        forgotten.update(table["path"].filter(drop).to_pylist())
        kept = read_part(part).filter(pc.invert(drop))  # every column, as the part has them
        if len(kept):
            _write_atomic(kept, part)
        else:
            part.unlink()
    return forgotten


def remove_leftovers(out: str | os.PathLike) -> None:
    """Remove the temporary files of parts a killed run was writing (`parts` ignores them):
    one run writes into a folder at a time."""
    for tmp in Path(out).glob(f".tmp-{PART_GLOB}"):
        tmp.unlink(missing_ok=True)


def parts(out: str | os.PathLike) -> list[Path]:
    """The finished parts of an output folder (temporary files of a killed run excluded)."""
    return sorted(p for p in Path(out).glob(PART_GLOB) if p.is_file())


def read_part(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One part, or a one-line FaceNetError naming it when it is damaged or not a part of
    `facenet embed` (another tool's part-*.parquet): a resume or an enrolment would otherwise
    end in pyarrow's traceback. An `OPTIONAL` column the part predates is left out."""
    try:
        if columns is not None:
            held = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in held or c not in OPTIONAL]
        return pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise FaceNetError(
            f"{path}: not a readable `facenet embed` part ({_first_line(exc)}); move it out of "
            "the folder"
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_output(out: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """Every row of an output folder, as one table (of `columns`, else of every column); an
    `OPTIONAL` column is null in the rows of parts written before it existed."""
    files = parts(out)
    if not files:
        raise FaceNetError(f"{out}: no part-*.parquet files (not an `facenet embed` output)")
    columns = columns or _COLUMNS
    tables = [read_part(f, columns) for f in files]
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except pa.ArrowException as exc:
        raise FaceNetError(f"{out}: parts of different schemas ({exc})") from None
    for name in (c for c in OPTIONAL if c in columns and c not in table.column_names):
        field = _FIELDS.field(name)
        table = table.append_column(field, pa.nulls(len(table), field.type))
    return table


def done_paths(out: str | os.PathLike, model_id: str, embeddings_of: str | None = None) -> set[str]:
    """The paths an output folder already holds (faces or failures): skipped on resume. A
    folder written with a model that makes other embeddings than `model_id` (which records
    `embeddings_of`) is refused: resuming would mix two embedding spaces. One written by a
    calibrated copy of the model, or by the model the copy is of, resumes (`same_embeddings`)."""
    done: set[str] = set()
    for f in parts(out):
        table = read_part(f, ["path", "model", "model_id", "embeddings_of"])
        made = (_values(table, c) for c in ("model", "model_id", "embeddings_of"))
        for name, held, of in zip(*made, strict=True):
            if held is not None and not same_embeddings(held, of, model_id, embeddings_of):
                raise FaceNetError(
                    f"{out} holds embeddings of model {name!r} (id {held}), not of this one "
                    f"(id {model_id}) nor of a calibrated copy of it: write to another folder"
                )
        done.update(table.column("path").to_pylist())
    return done


def _values(table: pa.Table, column: str) -> list:
    """A column's values; None for each row of a part written before the column existed."""
    if column not in table.column_names:
        return [None] * len(table)
    return table.column(column).to_pylist()


def summarise(table: pa.Table) -> pa.Table:
    """One row per image of a batch's table: path, faces found, error (null when embedded)."""
    out: dict[str, dict] = {}
    for path, error in zip(
        table.column("path").to_pylist(), table.column("error").to_pylist(), strict=True
    ):
        row = out.setdefault(path, {"path": path, "faces": 0, "error": error})
        row["faces"] += error is None
    return pa.Table.from_pylist(
        list(out.values()),
        schema=pa.schema([("path", pa.string()), ("faces", pa.int32()), ("error", pa.string())]),
    )

"""The inputs of a batch run: a folder of images, or a Parquet/CSV list of paths or URIs."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import FaceNetError

#: the column a path list is read from; else its first column
PATH_COLUMN = "path"


def list_sources(src: str | os.PathLike) -> list[str]:
    """Every image path of SRC, local ones made absolute: the image files under a folder
    (recursively, sorted), or the `path` column (else the first column) of a .parquet or .csv
    file with a header row, in file order."""
    src = Path(src)
    if src.is_dir():
        from ..images import IMAGE_SUFFIXES

        files = (p for p in src.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return sorted(os.path.abspath(p) for p in files if p.is_file())
    if not src.is_file():
        raise FaceNetError(f"{src}: no such file or folder")
    suffix = src.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise FaceNetError(f"{src}: give a folder of images, or a .parquet or .csv list of paths")
    table = _read_table(src, suffix)
    if table.num_columns == 0:
        raise FaceNetError(f"{src}: no columns")
    column = table.column(PATH_COLUMN if PATH_COLUMN in table.column_names else 0)
    return [_absolute(str(p)) for p in column.to_pylist() if p]


def _absolute(path: str) -> str:
    """Local paths made absolute (workers do not share the caller's directory); URIs kept."""
    return path if "://" in path else os.path.abspath(path)


def _read_table(src: Path, suffix: str):
    import pyarrow as pa
    import pyarrow.csv as csv
    import pyarrow.parquet as pq

    try:
        if suffix == ".parquet":
            return pq.read_table(src)
        return csv.read_csv(src, convert_options=csv.ConvertOptions(strings_can_be_null=False))
    except (OSError, pa.ArrowException) as exc:
        raise FaceNetError(f"{src}: unreadable ({exc})") from None

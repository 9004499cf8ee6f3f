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
        # a broken link is kept, to fail as "no such file", not to vanish from the counts
        return sorted(os.path.abspath(p) for p in files if p.is_file() or _broken_link(p))
    if not src.is_file():
        raise FaceNetError(f"{src}: no such file or folder")
    suffix = src.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise FaceNetError(f"{src}: give a folder of images, or a .parquet or .csv list of paths")
    table = _read_table(src, suffix)
    if table.num_columns == 0:
        raise FaceNetError(f"{src}: no columns")
    name = PATH_COLUMN if PATH_COLUMN in table.column_names else table.column_names[0]
    if suffix == ".csv" and _looks_like_path(name):  # its first photo would be lost silently
        raise FaceNetError(f"{src}: its first line {name!r} is a path: add a header line 'path'")
    values = table.column(name).to_pylist()
    if any(p is not None and not isinstance(p, str) for p in values):
        raise FaceNetError(f"{src}: column {name!r} holds {table.column(name).type}, not paths")
    return [_absolute(p) for p in values if p]


def source_folder(src: str | os.PathLike) -> str | None:
    """SRC made absolute when it is a folder, else None: recorded in every row so that
    enrolment can tell photos directly in it (no person's folder) from those in sub-folders."""
    return os.path.abspath(src) if Path(src).is_dir() else None


def _looks_like_path(name: str) -> bool:
    """A CSV header that is a photo's path: the file has no header line."""
    from ..images import IMAGE_SUFFIXES

    return "/" in name or "\\" in name or Path(name).suffix.lower() in IMAGE_SUFFIXES


def _broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


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
        with csv.open_csv(src) as reader:  # its column names, to read every column as text
            names = reader.schema.names
        text = dict.fromkeys(names, pa.string())  # "0001" stays "0001", not the number 1
        convert = csv.ConvertOptions(column_types=text, strings_can_be_null=False)
        return csv.read_csv(src, convert_options=convert)
    except (OSError, pa.ArrowException) as exc:
        raise FaceNetError(f"{src}: unreadable ({exc})") from None

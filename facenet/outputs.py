"""Files and folders the user names as outputs: checked before any work, written atomically.

One place for what every command writing a user-chosen path needs, so none of them replaces
what it must not: a path that is a folder where a file is wanted, lies under a file, is one of
the command's inputs, or is not a regular file (a device such as /dev/null: renaming a file
over it would replace the device) is refused with a one-line OutputError before any work. An
existing file is replaced only where the caller allows it (`facenet export` asks for
`--force`). Files are written to a hidden temporary file beside the target and renamed into
place, so a failure leaves the old file or none, never half a file or the temporary one; the
files of one output (a report and its plots) are written all or none (`write_files`). An OS
error while writing is one line, `cannot write PATH (reason)` (`writing`, an OutputError:
exit status 2 on the command line).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError


def check_output_file(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    replace: bool = True,
) -> Path:
    """`path` as a file to write, or an OutputError saying why not; with `replace=False` an
    existing file is refused too (its message names `--force`)."""
    path = _not_empty(path)
    _check_ancestors(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: not a regular file; refusing to replace it")
    if path.exists() and _is_one_of(path, inputs):
        raise OutputError(f"{path}: is one of the inputs; choose another output")
    if path.exists() and not replace:
        raise OutputError(f"{path} already exists; --force replaces it")
    return path


def check_output_folder(
    path: str | os.PathLike, *, replace: bool = True, marker: str | None = None
) -> Path:
    """`path` as a folder to write into, or an OutputError saying why not. With
    `replace=False` an existing folder is refused (its message names `--force`); with `marker`,
    an existing folder must hold that file: only a folder this kind of output made is
    replaced, never, say, a folder of photos."""
    path = _not_empty(path)
    _check_ancestors(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: not a folder")
    if path.is_dir() and not replace:
        raise OutputError(f"{path} already exists; --force replaces it")
    if path.is_dir() and marker and any(path.iterdir()) and not (path / marker).is_file():
        raise OutputError(f"{path}: holds no {marker}; refusing to replace it")
    return path


def make_folder(path: str | os.PathLike) -> Path:
    """Create the folder `path` (and its parents); an OS error is a one-line OutputError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    return path


def write_file(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """`atomic_write_bytes` for a user-named output: an OS error (no such place, read-only,
    disk full) is a one-line OutputError, and no temporary file is left."""
    path = Path(path)
    write_files({path: write})
    return path


def write_files(files: Mapping[Path, Callable[[BinaryIO], object]]) -> None:
    """Write the files of one output (a report and its plots) all or none: each to a temporary
    file beside it, then all moved into place. An OS error (disk full, a read-only folder) is
    a one-line OutputError naming the file, and leaves the old files as they were, none of the
    new ones and no temporary file."""
    for path in files:  # a folder in the way fails its rename: before any file has moved
        if path.is_dir() and not path.is_symlink():
            raise OutputError(f"cannot write {path} ({os.strerror(errno.EISDIR)})")
    staged: list[tuple[Path, Path]] = []
    try:
        for path, write in files.items():
            with writing(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                staged.append((write_temporary(path, write), path))
        for tmp, path in staged:  # renames: a full disk has failed above, if at all
            with writing(path):
                os.replace(tmp, path)
    finally:
        for tmp, _ in staged:  # gone once moved
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OS error while writing the output `path` (a file, or a folder written as one)
    into the one-line OutputError every command prints: `cannot write PATH (reason)`."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({exc.strerror or exc})") from None


def atomic_write_bytes(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(file)` on a temporary file beside `path`, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temporary(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_temporary(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(file)` on a new hidden temporary file beside `path`, flushed to disk; its
    path (removed again if anything fails)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with mode 0o666 honours the umask (mkstemp would make a 0600 file).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _not_empty(path: str | os.PathLike) -> Path:
    """`path` as a Path, or an OutputError when it is "": Path("") is the current folder, so
    `-o "$OUT"` with OUT unset would write there."""
    if os.fspath(path) == "":
        raise OutputError("the output path is empty (an unset shell variable?)")
    return Path(path)


def _check_ancestors(path: Path) -> None:
    """The nearest existing folder above `path` must be a folder, not a file."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{path}: {parent} is not a folder")
            return
        if parent.is_symlink():  # a dangling link: mkdir would fail on it
            raise OutputError(f"{path}: {parent} is a broken link")


def _is_one_of(path: Path, inputs: Iterable[str | os.PathLike]) -> bool:
    """Whether `path` is the same file as one of `inputs` (through links too)."""
    target = path.stat()
    for item in inputs:
        try:
            st = os.stat(item)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


__all__ = [
    "atomic_write_bytes",
    "check_output_file",
    "check_output_folder",
    "make_folder",
    "write_file",
    "write_files",
    "write_temporary",
    "writing",
]

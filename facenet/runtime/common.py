"""What the exported-model runtimes share: the metadata key, the thread count and reading the
ModelInfo an export carries. Apart from `runtime/__init__.py` so that the runtimes import it
without importing their own package's entry point (no import cycle).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError
from ..metadata import ModelInfo

#: The metadata key under which ModelInfo JSON is stored in exported files.
METADATA_KEY = "facenet"


def num_threads() -> int:
    """Threads for inference: $FACENET_NUM_THREADS, else the cores this process may use."""
    value = os.environ.get("FACENET_NUM_THREADS")
    if value:
        try:
            threads = int(value)
        except ValueError:
            raise ValueError(f"FACENET_NUM_THREADS must be an integer; got {value!r}") from None
        if threads < 1:
            raise ValueError(f"FACENET_NUM_THREADS must be positive; got {threads}")
        return threads
    return available_cpus()


def available_cpus() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def info_from_text(text: str | bytes | None, path: Path) -> ModelInfo:
    """Parse embedded ModelInfo JSON, falling back to a `<file>.json` sidecar."""
    if text is None:
        sidecar = sidecar_path(path)
        if not sidecar.is_file():
            raise ModelError(
                f"{path}: not a FaceNet export (no '{METADATA_KEY}' metadata in the file and no "
                f"{sidecar.name} beside it); export it with `facenet export`"
            )
        text = sidecar.read_text()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return ModelInfo.from_json(text)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: damaged FaceNet metadata ({exc})") from None


def sidecar_path(path: Path) -> Path:
    """`<file>.json`: where an export without embedded metadata keeps its ModelInfo."""
    return path.with_name(path.name + ".json")

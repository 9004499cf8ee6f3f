"""Batch embedding of photo archives into Parquet: `facenet embed SRC --out DIR --engine ...`.

Two engines behind one call, `embed_to_folder`: `local` (this process) and `ray` (a Ray Data
pipeline, on this machine or a cluster). Both write the schema of `records.schema`: one row
per face (path, face index, box, landmarks, detector score, eye distance, embedding, model)
and one row per failed image (path, error). A run skips the paths the folder already holds;
with `retry_failed`, not those it holds as failures (their rows are replaced).
Needs the `[ray]` extra (pyarrow; ray for the Ray engine).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FaceNetError
from ..images import MAX_BATCH_SIZE, check_batch_size

ENGINES = ("local", "ray")
#: Ray actors when none are asked for (fewer when there are fewer CPUs)
DEFAULT_WORKERS = 2
#: an --out ending so names a file: refused unless it is a folder already
FILE_SUFFIXES = (".npz", ".npy", ".parquet", ".csv", ".json", ".jsonl", ".txt")


@dataclass
class BatchReport:
    """What a run did: images embedded, faces written, failures (path, error), skipped, and
    (--retry-failed) failures of earlier runs tried again."""

    total: int = 0
    skipped: int = 0
    embedded: int = 0
    faces: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    retried: int = 0


def embed_to_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | None = None,
    engine: str = "local",
    address: str | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    on_image: Callable[[dict], None] | None = None,
    retry_failed: bool = False,
) -> BatchReport:
    """Embed every image of SRC (a folder, or a .parquet/.csv list of paths) into Parquet
    parts in OUT, resuming where OUT left off; `on_image` gets one dict per image: (path,
    faces, error) once done, (path, skipped="already done", error=None) first for each one
    OUT held already, so a caller can account for every input. `retry_failed`: the images OUT
    holds as failures (unreadable, no face) are embedded again, their failure rows replaced by
    what this run finds. Why one entry point: the CLI, the tests and the benchmark compare
    engines by this call alone. `workers` (Ray actors, default `DEFAULT_WORKERS`) above the
    CPUs is capped: with a warning when given, silently when not."""
    _check_options(engine, batch_size, workers)
    require_extra(engine)
    from ..api import FaceNet

    loaded = FaceNet.load(model)  # a bad --model fails here, not in every Ray worker
    from .sources import list_sources, source_folder

    paths = list(dict.fromkeys(list_sources(src)))  # a path listed twice is embedded once
    out = _out_folder(out)
    report = BatchReport(total=len(paths))
    todo = _todo(paths, out, loaded, report, on_image, retry_failed)
    if not todo:
        return report
    on_batch = _collect(report, on_image)
    if engine == "local":
        from .local import run_local

        run_local(todo, str(out), loaded, batch_size, on_batch, source_folder(src))
    else:
        from .ray_engine import run_ray

        # workers do not share this directory: a model file goes by its absolute path
        ref = loaded.name or os.path.abspath(loaded.source)
        actors = DEFAULT_WORKERS if workers is None else workers
        run_ray(todo, str(out), ref, batch_size, actors, address, on_batch, source_folder(src),
                warn=workers is not None)  # fmt: skip
    return report


def _todo(
    paths: list[str],
    out: Path,
    model,
    report: BatchReport,
    on_image: Callable[[dict], None] | None,
    retry_failed: bool,
) -> list[str]:
    """The paths to embed: those OUT does not hold yet (each one it holds is counted as
    skipped, and reported to `on_image`), with `retry_failed` also those it holds as failures
    (their failure rows removed first: `forget_failures`). A killed run's temporary parts are
    removed; OUT written with a model that makes other embeddings than `model` is refused."""
    from ..metadata import embedding_origin
    from .records import done_paths, forget_failures, remove_leftovers

    remove_leftovers(out)  # a killed run's half-written parts
    # checks the model before any part is rewritten
    done = done_paths(out, model.model_id, embedding_origin(model))
    if retry_failed:
        retried = forget_failures(out, done & set(paths))
        done -= retried
        report.retried = len(retried)
    todo = [p for p in paths if p not in done]
    report.skipped = len(paths) - len(todo)
    for path in (p for p in paths if p in done and on_image is not None):
        on_image({"path": path, "skipped": "already done", "error": None})  # --json: a line each
    return _refuse_non_utf8(todo, report, on_image)


def _collect(report: BatchReport, on_image: Callable[[dict], None] | None):
    """The engines' `on_batch`: each batch's per-image summary counted into `report`, and
    handed to `on_image` row by row."""

    def on_batch(summary) -> None:
        for row in summary.to_pylist():
            if row["error"] is None:
                report.embedded += 1
                report.faces += row["faces"]
            else:
                report.failures.append((row["path"], row["error"]))
            if on_image is not None:
                on_image(row)

    return on_batch


def _check_options(engine: str, batch_size: int, workers: int | None) -> None:
    """A one-line FaceNetError for an engine, batch size or worker count out of range."""
    if engine not in ENGINES:
        raise FaceNetError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    check_batch_size(batch_size, MAX_BATCH_SIZE)
    if workers is not None and workers < 1:
        raise FaceNetError(f"workers must be at least 1; got {workers}")


def _out_folder(out: str | os.PathLike) -> Path:
    """OUT, absolute and made if need be, or a one-line FaceNetError."""
    if "://" in str(out):  # Path() would make a local folder named "s3:" and write there
        raise FaceNetError(f"{out}: --out is a folder (shared by the nodes), not a URI")
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise FaceNetError(f"{out}: exists and is not a folder")
    if not out.exists() and out.suffix.lower() in FILE_SUFFIXES:  # e.npz: a folder named so
        raise FaceNetError(
            f"{out}: with --engine, --out is a folder of Parquet parts, not a {out.suffix} file "
            "(without --engine, `facenet embed` writes one .npz)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file on the way, no permission: one line, not a traceback
        raise FaceNetError(f"{out}: cannot make the output folder ({exc.strerror})") from None
    return out


def _refuse_non_utf8(
    paths: list[str], report: BatchReport, on_image: Callable[[dict], None] | None
) -> list[str]:
    """`paths` less those that are not valid UTF-8 text, each reported as a failed image:
    Parquet stores a path as UTF-8, so one such name would fail its whole batch. Not written
    to OUT, they are reported again by each run until renamed."""
    from ..errors import ImageError
    from ..images import require_utf8_path

    kept = []
    for path in paths:
        try:
            require_utf8_path(path)
        except ImageError as exc:
            report.failures.append((path, str(exc)))
            if on_image is not None:
                on_image({"path": path, "faces": 0, "error": str(exc)})
            continue
        kept.append(path)
    return kept


def require_extra(engine: str, option: str | None = None) -> None:
    """A one-line error, not an ImportError, when the [ray] extra is missing; it names `option`
    (default `--engine ENGINE`), the option the user gave."""
    import importlib.util

    needed = ["pyarrow"] + (["ray"] if engine == "ray" else [])
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise FaceNetError(
            f"{option or f'--engine {engine}'} needs {', '.join(missing)}: "
            "pip install 'facenet-keras[ray]'"
        )

"""facenet embed SRC --out DIR --engine local|ray: batch embedding into Parquet parts.

Called by `facenet embed` when `--engine` is given (without it, `embed` writes one .npz).
"""

from __future__ import annotations

import sys

import click

from ..text import plural
from .conventions import emit, finish


def run_batch(
    sources: tuple[str, ...],
    out: str,
    model_path: str | None,
    engine: str,
    address: str | None,
    batch_size: int,
    workers: int | None,
    progress: bool,
    as_json: bool,
    *,
    retry_failed: bool = False,
) -> None:
    """Check the batch mode's arguments, run the engine, report per the CLI conventions."""
    from ..batch import embed_to_folder

    if len(sources) != 1:
        raise click.UsageError("--engine takes one SRC: a folder, or a .parquet/.csv list")
    if engine == "local" and (workers is not None or address is not None):
        raise click.UsageError("--workers and --address go with --engine ray")
    bar = _Bar(progress)

    def on_image(row: dict) -> None:
        bar.update()
        if as_json:
            emit({k: v for k, v in row.items() if v is not None})
        elif row["error"] is not None:
            bar.write(f"failed: {named(row['path'], row['error'])}")

    try:
        report = embed_to_folder(
            sources[0], out, model=model_path, engine=engine, address=address,
            batch_size=batch_size, workers=workers, on_image=on_image, retry_failed=retry_failed,
        )  # fmt: skip
    finally:
        bar.close()
    skipped = f", {report.skipped} already in {out} (skipped)" if report.skipped else ""
    retried = f", {plural(report.retried, 'earlier failure')} tried again" if retry_failed else ""
    click.echo(
        f"{engine}: embedded {plural(report.embedded, 'image')} ({plural(report.faces, 'face')}) "
        f"into {out}{skipped}{retried}",
        err=as_json,
    )
    failed = [path for path, _ in report.failures]
    finish(report.embedded + report.skipped, failed, "image", nothing=f"no images in {sources[0]}")


def named(path: str, error: str) -> str:
    """The error naming its file once (image errors name it already)."""
    return error if error.startswith(path) else f"{path}: {error}"


class _Bar:
    """A tqdm bar on stderr when asked for; plain stderr lines otherwise."""

    def __init__(self, show: bool):
        from tqdm.auto import tqdm

        self._bar = tqdm(unit="img", desc="embed", disable=not show)

    def update(self) -> None:
        self._bar.update(1)

    def write(self, line: str) -> None:
        # sys.stderr escapes a non-UTF-8 file name; click.get_text_stream's stream would raise
        self._bar.write(line, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()

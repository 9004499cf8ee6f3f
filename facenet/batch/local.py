"""The single-process engine: one model, batches of paths embedded one after another."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa

from .records import embed_batch, summarise, write_part


def run_local(
    paths: Sequence[str],
    out: str,
    model,
    batch_size: int,
    on_batch: Callable[[pa.Table], None],
    src_folder: str | None = None,
) -> None:
    """Embed `paths` in batches in this process with a loaded `FaceNet`, writing one part per
    batch into `out`; `on_batch` gets each batch's per-image summary (path, faces, error)."""
    for start in range(0, len(paths), batch_size):
        table = embed_batch(model, paths[start : start + batch_size], src_folder)
        write_part(table, out)
        on_batch(summarise(table))

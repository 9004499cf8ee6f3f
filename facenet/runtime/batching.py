"""Shared input handling for the exported-model embedders (numpy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def prepare(crops: np.ndarray, size: int, dtype: np.dtype) -> np.ndarray:
    """Check crops are (n, size, size, 3) and give them the network's input dtype, contiguous."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
        raise ValueError(f"crops must have shape (n, {size}, {size}, 3); got {crops.shape}")
    if crops.dtype != dtype:
        if dtype == np.uint8:
            crops = np.clip(np.rint(crops), 0, 255)
        crops = crops.astype(dtype)
    return np.ascontiguousarray(crops)


def run_fixed_batch(
    run: Callable[[np.ndarray], np.ndarray], crops: np.ndarray, batch: int
) -> np.ndarray:
    """Run a network compiled for exactly `batch` rows: chunk, zero-pad the tail, drop padding."""
    parts = []
    for start in range(0, len(crops), batch):
        chunk = crops[start : start + batch]
        rows = len(chunk)
        if rows < batch:
            pad = np.zeros((batch - rows, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        parts.append(run(chunk)[:rows])
    return np.concatenate(parts)


def unit_rows(out: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length: int8 graphs quantise the final normalisation too."""
    out = out.astype(np.float32, copy=False)
    norms = np.sqrt(np.einsum("ij,ij->i", out, out))[:, None]
    return out / np.maximum(norms, 1e-12)

"""Embedding throughput of a loaded model on this machine (aligned crops, no detection)."""

from __future__ import annotations

import statistics
import time

import numpy as np


def throughput(model, batch_size: int, *, seconds: float = 1.0, rounds: int = 3) -> float:
    """Median images/s of `model.embed_crops` at `batch_size` over `rounds` timed runs.

    One untimed warm-up call first (graph compilation, thread pools); each round repeats the
    call for at least `seconds`.
    """
    size = model.input_size
    crops = np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3), np.uint8)
    model.embed_crops(crops, batch_size=batch_size)
    rates = []
    for _ in range(rounds):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or done == 0:
            model.embed_crops(crops, batch_size=batch_size)
            done += batch_size
        rates.append(done / elapsed)
    return statistics.median(rates)

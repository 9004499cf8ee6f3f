"""Hand memory freed by a request back to the operating system.

Why: glibc's malloc keeps freed blocks in its arenas (one per thread that allocated), so after
a burst of large photos the server's resident memory stayed at its peak (4 GB against 294 MB at
start, in a review) although nothing was held any more. Three measures, each measured with
benchmarks/server_memory.py:

- a fixed mmap threshold of 4 MiB: every block that large (photos, detector canvases and
  activations of large photos) is its own mapping, given back when freed. glibc's default
  threshold rises to the size of the largest block freed (up to 32 MiB), after which such
  blocks come from the arenas and fragment them (resident memory stayed 22% over its baseline
  after 20 hostile requests). It was 1 MiB, which made an ordinary photo's arrays and the
  detector's activations fresh mappings, page-faulted on every request: 1.71x the CPU time per
  verify of glibc's default; at 4 MiB 1.16x, at 16 MiB 1.06x (benchmarks/server_malloc.py).
  16 MiB left memory 1.39x its baseline after a burst (requests now run on 8 threads, each
  with its own malloc arena); 4 MiB 1.04x (benchmarks/server_memory.py, docs/performance.md).
  Limiting the arenas to two instead also held memory (1.02x), but the server's throughput
  at 8 clients then swung between 0.6x and 1.4x the library's from run to run, which looked
  like threads waiting on the two arenas' locks;
- `malloc_trim(0)` once the server goes idle (`IdleTrim`: no request in the model for
  `IDLE_TRIM_S`): returns the free pages of every arena. It ran after every request, which made
  the next request fault its memory in again (a quarter slower under load).
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another libc: nothing to trim
        return None
    return libc if hasattr(libc, "malloc_trim") else None


#: mallopt parameter numbers (malloc.h) and the values set.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20


def configure_malloc() -> None:
    """Serve blocks of MMAP_THRESHOLD bytes and more by their own mappings, for the whole
    process (glibc only; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_memory() -> None:
    """Return free heap pages to the system (glibc only; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


#: Seconds without a request in the model after which free heap pages go back to the system.
IDLE_TRIM_S = 0.2


class IdleTrim:
    """Counts requests in the model; `release_memory` runs `delay` seconds after the last one
    left, unless another came in meanwhile (a burst ends with its memory returned, a steady
    stream of requests does not fault its memory in again every time)."""

    def __init__(self, delay: float = IDLE_TRIM_S, release=release_memory):
        self._delay = delay
        self._release = release
        self._lock = threading.Lock()
        self._running = 0
        self._generation = 0

    def enter(self) -> None:
        with self._lock:
            self._running += 1
            self._generation += 1

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running:
                return
            generation = self._generation
        timer = threading.Timer(self._delay, self._trim_if_idle, args=(generation,))
        timer.daemon = True
        timer.start()

    def _trim_if_idle(self, generation: int) -> None:
        with self._lock:
            idle = self._running == 0 and self._generation == generation
        if idle:
            self._release()

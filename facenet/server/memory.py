"""Hand memory freed by a request back to the operating system.

Why: glibc's malloc keeps freed blocks in its arenas (one per thread that allocated), so after
a burst of large photos the server's resident memory stayed at its peak (4 GB against 294 MB at
start, in a review) although nothing was held any more. Two measures, both measured with
benchmarks/server_memory.py:

- a fixed mmap threshold of 1 MiB: every block that large (photos, arrays, upload bodies) is
  its own mapping, given back when freed. glibc's default threshold rises to the size of the
  largest block freed (up to 32 MiB), after which such blocks come from the arenas and
  fragment them (resident memory stayed 22% over its baseline after 20 hostile requests);
- `malloc_trim(0)` after every inference call: returns the free pages of every arena (a few
  milliseconds).
"""

from __future__ import annotations

import ctypes
import functools
import sys


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl or another libc: nothing to trim
        return None
    return libc if hasattr(libc, "malloc_trim") else None


#: mallopt parameter number (malloc.h) and the value set.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20


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

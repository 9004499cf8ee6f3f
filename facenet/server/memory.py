"""Hand memory freed by a request back to the operating system.

Why: glibc's malloc keeps freed blocks in its arenas (one per thread that allocated), so after
a burst of large photos the server's resident memory stayed at its peak (4 GB against 294 MB at
start, in a review) although nothing was held any more. `malloc_trim(0)` returns the free pages
of every arena; it costs about a millisecond, so it runs after every inference call.
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


def release_memory() -> None:
    """Return free heap pages to the system (glibc only; a no-op elsewhere)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)

"""Embedding cache: one folder per (model contents, alignment, flip) holding npz chunks.

Layout: ``<cache dir>/embeddings/<key>/chunk-<time>-<n>.npz``, each with arrays `keys` (image
content digests), `embeddings` (float32 rows) and `no_face` (bool: the face detector found
nothing and the centred crop was embedded). Chunks are written atomically (a temporary file
then `os.replace`), so an interrupted run keeps every chunk finished before the interruption,
and the next run embeds only what is missing. `compact()` merges the chunks into one.

Images are identified by a digest of their bytes, so moving or renaming a dataset keeps its
cache; a changed image gets a new entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..outputs import atomic_write_bytes

log = logging.getLogger(__name__)

CACHE_ENV = "FACENET_CACHE_DIR"
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """`$FACENET_CACHE_DIR`, else ``~/.cache/facenet``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "facenet"


def image_digest(path: str | os.PathLike) -> str:
    """A stable id of an image file's contents (blake2b, 32 hex digits)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model_id: str, alignment: str, flip: bool) -> str:
    return f"v{CACHE_VERSION}-{model_id}-{alignment}-{'flip' if flip else 'noflip'}"


class EmbeddingCache:
    """Embeddings of one model configuration, keyed by image digest."""

    def __init__(self, directory: str | os.PathLike, key: str):
        self.folder = Path(directory).expanduser() / "embeddings" / key
        self.key = key
        self._counter = 0
        #: set by `turn_off`: nothing more is written (the cache only saves time)
        self.off = False

    def turn_off(self, doing: str, exc: OSError) -> None:
        """Write nothing more, with one warning: `doing` (e.g. "create") failed with `exc`."""
        log.warning("embedding cache off: cannot %s %s (%s)", doing, self.folder,
                    exc.strerror or exc)  # fmt: skip
        self.off = True

    def load(self) -> dict[str, tuple[np.ndarray, bool]]:
        """digest -> (embedding, no_face) for every readable chunk (unreadable ones are skipped)."""
        out: dict[str, tuple[np.ndarray, bool]] = {}
        for chunk in sorted(self.folder.glob("chunk-*.npz")):
            try:
                with np.load(chunk, allow_pickle=False) as data:
                    keys, emb, no_face = data["keys"], data["embeddings"], data["no_face"]
            except Exception as exc:  # a damaged chunk costs re-embedding, never a crash
                log.warning("ignoring unreadable cache chunk %s (%s)", chunk, exc)
                continue
            for k, e, nf in zip(keys.tolist(), emb, no_face.tolist(), strict=True):
                out[k] = (e, bool(nf))
        return out

    def add(self, keys: list[str], embeddings: np.ndarray, no_face: np.ndarray) -> None:
        """Write one chunk atomically; a failure (disk full, read-only) turns the cache off."""
        if not keys or self.off:
            return
        self._counter += 1
        name = f"chunk-{time.time_ns():020d}-{os.getpid()}-{self._counter:05d}.npz"
        try:
            self._write(self.folder / name, keys, embeddings, no_face)
        except OSError as exc:
            self.turn_off("write to", exc)

    def compact(self) -> None:
        """Merge all chunks into one (written before the old ones are removed); a failure
        turns the cache off, every chunk still readable."""
        if self.off:
            return
        try:
            self._compact()
        except OSError as exc:
            self.turn_off("compact", exc)

    def _compact(self) -> None:
        chunks = sorted(self.folder.glob("chunk-*.npz"))
        if len(chunks) < 2:
            return
        entries = self.load()
        keys = list(entries)
        emb = np.stack([entries[k][0] for k in keys]).astype(np.float32)
        no_face = np.array([entries[k][1] for k in keys], dtype=bool)
        self._counter += 1
        merged = self.folder / f"chunk-{time.time_ns():020d}-{os.getpid()}-{self._counter:05d}.npz"
        self._write(merged, keys, emb, no_face)
        for chunk in chunks:
            try:
                chunk.unlink()
            except FileNotFoundError:
                pass

    @staticmethod
    def _write(path: Path, keys, embeddings, no_face) -> None:
        def write(f):
            np.savez(
                f,
                keys=np.array(keys, dtype=str),
                embeddings=np.asarray(embeddings, dtype=np.float32),
                no_face=np.asarray(no_face, dtype=bool),
            )

        atomic_write_bytes(path, write)

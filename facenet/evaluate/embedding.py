"""The embedding stage of an evaluation: images -> unit vectors, through the public API.

Each image goes through the model's detector and alignment (`FaceNet.align`). An image where no
face is found is not dropped: its centred crop (`facenet.detect.center_crop`) is embedded and
the image is flagged `no_face`, so the caller can report it and, if asked, count its pairs as
wrong answers. An image that cannot be read gets a NaN row and its message in `failed`.

Results are cached per model file contents, alignment and flip option (see `cache.py`), so a
second run with other metric options embeds nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import FaceNetError, ImageError
from ..images import MAX_BATCH_SIZE, check_batch_size, load_image
from .cache import EmbeddingCache, cache_key, default_cache_dir, image_digest

log = logging.getLogger(__name__)

#: Write the cache at least every this many newly embedded images.
CACHE_CHUNK = 256


@dataclass
class Embedded:
    """Embeddings of a list of images (paths relative to an image root)."""

    paths: list[str]
    embeddings: np.ndarray  # (n, d) float32, NaN rows where unusable
    no_face: np.ndarray  # bool (n,): embedded from the centred crop, no face found
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it has a NaN row
    n_cached: int = 0
    seconds: float = 0.0
    source: str = "model"

    def index(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}


def with_alignment(model, alignment: str | None):
    """`model`, or the same model aligning faces with `alignment` instead of the mode recorded
    in its file."""
    if alignment is None or alignment == model.info.alignment:
        return model
    return model.with_alignment(alignment)


def embed_images(
    model,
    paths: list[str],
    root: str | os.PathLike,
    *,
    flip: bool = False,
    alignment: str | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> Embedded:
    """Embed the images at `root / p` for each p in `paths` with a loaded `facenet.FaceNet`.

    flip: horizontal-flip test-time augmentation (embed the crop and its mirror, add, normalise).
    alignment: override the model's alignment mode (one of `ALIGNMENT_MODES`).
    The cache (default `default_cache_dir()`) is read first and written in atomic chunks while
    embedding, so Ctrl-C loses at most the images in flight.
    """
    start = time.perf_counter()
    check_batch_size(batch_size, MAX_BATCH_SIZE)
    model = with_alignment(model, alignment)
    root = Path(root)
    n, dim = len(paths), model.info.embedding_size
    emb = np.full((n, dim), np.nan, dtype=np.float32)
    no_face = np.zeros(n, dtype=bool)
    failed: dict[str, str] = {}

    digests = _digests(paths, root, failed)
    cache = _open_cache(model, flip, cache_dir) if use_cache else None
    todo, n_cached = _from_cache(cache, digests, emb, no_face)

    rows = _Rows(paths, digests, emb, no_face, failed)
    _embed_missing(model, root, rows, todo, flip, batch_size, cache, progress)
    if cache is not None and todo:
        cache.compact()
    return Embedded(
        list(paths), emb, no_face, failed, n_cached, time.perf_counter() - start, "model"
    )


def _open_cache(model, flip: bool, cache_dir) -> EmbeddingCache | None:
    """The cache, or None with a warning when its folder cannot be made (under a file,
    read-only): it only saves time, and failing at its first write would lose the run (a
    later write that fails turns it off the same way: `EmbeddingCache.turn_off`)."""
    key = cache_key(model.model_id, model.info.alignment, flip)
    cache = EmbeddingCache(default_cache_dir() if cache_dir is None else cache_dir, key)
    try:
        cache.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        cache.turn_off("create", exc)
        return None
    return cache


@dataclasses.dataclass
class _Rows:
    """The result being filled: per path its digest, embedding row and no-face flag."""

    paths: list[str]
    digests: list[str | None]
    emb: np.ndarray
    no_face: np.ndarray
    failed: dict[str, str]


def _embed_missing(model, root: Path, rows: _Rows, todo, flip, batch_size, cache, progress):
    """Embed the rows in `todo`, adding them to the cache in atomic chunks (Ctrl-C keeps what
    is done)."""
    paths, digests, emb, no_face, failed = (
        rows.paths, rows.digests, rows.emb, rows.no_face, rows.failed
    )  # fmt: skip
    pending: list[int] = []

    def flush() -> None:
        if cache is not None and pending:
            cache.add([digests[i] for i in pending], emb[pending], no_face[pending])
        pending.clear()

    bar = tqdm(total=len(todo), disable=not progress, unit="img", desc="embedding", file=sys.stderr)
    try:
        for s in range(0, len(todo), batch_size):
            batch = todo[s : s + batch_size]
            done = _embed_batch(model, [root / paths[i] for i in batch], flip)
            for i, (row, nf, err) in zip(batch, done, strict=True):
                if err is not None:
                    failed[paths[i]] = err
                    continue
                emb[i], no_face[i] = row, nf
                pending.append(i)
            if len(pending) >= CACHE_CHUNK:
                flush()
            bar.update(len(batch))
    finally:
        bar.close()
        flush()  # also on Ctrl-C: finished rows are kept


def _digests(paths: list[str], root: Path, failed: dict[str, str]) -> list[str | None]:
    """Each file's content digest (the cache key); None, noted in `failed`, when unreadable."""
    digests: list[str | None] = []
    for p in paths:
        try:
            digests.append(image_digest(root / p))
        except OSError as exc:
            digests.append(None)
            failed[p] = f"cannot read file ({exc.strerror or exc})"
    return digests


def _from_cache(cache, digests, emb: np.ndarray, no_face: np.ndarray) -> tuple[list[int], int]:
    """Fill the rows the cache knows; (indices still to embed, how many came from the cache)."""
    known = cache.load() if cache is not None else {}
    todo: list[int] = []
    n_cached = 0
    for i, d in enumerate(digests):
        if d is None:
            continue
        if d in known:
            emb[i], no_face[i] = known[d]
            n_cached += 1
        else:
            todo.append(i)
    return todo, n_cached


def _embed_batch(model, files: list[Path], flip: bool):
    """[(embedding, no_face, error)] for one batch of image files."""
    rgbs, errors = [], []
    for f in files:
        try:
            rgbs.append(load_image(f))
            errors.append(None)
        except ImageError as exc:
            rgbs.append(None)
            errors.append(str(exc))
    ok = [i for i, r in enumerate(rgbs) if r is not None]
    out = [(None, False, e) for e in errors]
    if not ok:
        return out
    faces = model.crops([rgbs[i] for i in ok], on_missing="center")
    missing = [face.fallback for face in faces]
    batch = np.stack([face.crop for face in faces]).astype(np.uint8, copy=False)
    vectors = model.embed_crops(batch, batch_size=len(batch)).astype(np.float64)
    if flip:
        vectors = vectors + model.embed_crops(
            np.ascontiguousarray(batch[:, :, ::-1]), batch_size=len(batch)
        )
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for j, i in enumerate(ok):
        out[i] = (vectors[j].astype(np.float32), missing[j], None)
    return out


def load_embeddings_file(
    path: str | os.PathLike,
    paths: list[str],
    *,
    normalize: bool = True,
    root: str | os.PathLike | None = None,
) -> Embedded:
    """Embeddings made by any system, for the images `paths` (relative to the image root).

    The npz holds either arrays `paths` (strings) and `embeddings` (n, d), or one array per
    image keyed by its path: relative to the image root, or absolute under `root` (what
    `facenet embed` writes when given absolute paths). Images absent from the file, or with a
    NaN row (or an all-zero one, which has no direction to normalise), are failed images
    (their pairs are wrong answers); when no image has a usable row it raises FaceNetError
    (the file was made for other images, say). Rows are L2-normalised unless
    `normalize=False`.
    """
    start = time.perf_counter()
    path = Path(path)
    table = _read_embedding_table(path, root)
    dim = next(iter(table.values())).size
    emb = np.full((len(paths), dim), np.nan, dtype=np.float64)
    failed: dict[str, str] = {}
    for i, p in enumerate(paths):
        vec = table.get(_norm_key(p))
        if vec is None:
            failed[p] = "not in the embeddings file"
        elif not np.all(np.isfinite(vec)):
            failed[p] = "NaN embedding in the file (no face)"
        elif normalize and not np.any(vec):
            failed[p] = "all-zero embedding in the file (no direction to normalise)"
        else:
            emb[i] = vec
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    if paths and len(failed) == len(paths):
        raise FaceNetError(_nothing_usable(path, table, paths, failed))
    if failed:
        log.warning("%s: %d of %d images have no usable embedding", path, len(failed), len(paths))
    return Embedded(
        list(paths),
        emb.astype(np.float32),
        np.zeros(len(paths), dtype=bool),
        failed,
        0,
        time.perf_counter() - start,
        f"file:{path}",
    )


def _nothing_usable(path: Path, table: dict, paths: list[str], failed: dict[str, str]) -> str:
    """Why no image of the pairs has an embedding: other paths, or unusable rows."""
    if any(why != "not in the embeddings file" for why in failed.values()):
        example = next(p for p in paths if failed[p] != "not in the embeddings file")
        return (
            f"{path}: none of the {len(paths)} images has a usable embedding "
            f"(e.g. {example}: {failed[example]})"
        )
    return (
        f"{path}: none of the {len(paths)} images has a usable embedding (the file holds "
        f"e.g. {next(iter(table), '')!r}, the pairs want e.g. {paths[0]!r}; paths must be "
        "relative to the image root or absolute under it)"
    )


def _read_embedding_table(path: Path, root: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """The file's vectors keyed by normalised image path; FaceNetError if unreadable or ragged."""
    try:
        data = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FaceNetError(f"{path}: no such embeddings file") from None
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
        raise FaceNetError(f"{path}: not a readable npz file ({exc or 'empty'})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy: one bare array, no paths
        raise FaceNetError(f"{path}: one array, not an npz of `paths` and `embeddings`")
    try:
        with data:
            table = _npz_table(path, data)
    except (ValueError, TypeError) as exc:  # object (pickled) arrays, strings, not numbers
        raise FaceNetError(
            f"{path}: cannot read its arrays ({exc}); save `paths` as strings (not objects) "
            "and the embeddings as numbers"
        ) from None
    table = _keyed(path, table, root)
    dims = {v.size for v in table.values()}
    if len(dims) > 1:
        raise FaceNetError(f"{path}: embeddings of different lengths {sorted(dims)}")
    if not dims:
        raise FaceNetError(f"{path}: no embeddings in the file")
    return table


def _keyed(path: Path, rows: list, root) -> dict[str, np.ndarray]:
    """The rows keyed by normalised path; one image given two different vectors (listed
    twice, or as `./a.jpg` and `a.jpg`) is refused: which one a pair used would be a guess."""
    table: dict[str, np.ndarray] = {}
    for name, vector in rows:
        key = _norm_key(name, root)
        held = table.setdefault(key, vector)
        if held is not vector and not np.array_equal(held, vector, equal_nan=True):
            raise FaceNetError(f"{path}: {key} is given two different embeddings")
    return table


def _npz_table(path: Path, data) -> list[tuple[str, np.ndarray]]:
    """(path, vector) rows from either npz layout (see `load_embeddings_file`)."""
    if "paths" in data.files and "embeddings" in data.files:
        names = [str(p) for p in data["paths"].tolist()]
        matrix = np.asarray(data["embeddings"], dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != len(names):
            raise FaceNetError(
                f"{path}: 'embeddings' must be (n, d) with one row per entry of 'paths'"
            )
        return list(zip(names, matrix, strict=True))
    return [(k, np.asarray(data[k], dtype=np.float64).reshape(-1)) for k in data.files]


def _norm_key(p: str, root: str | os.PathLike | None = None) -> str:
    """Compare paths as POSIX strings without a leading './'; absolute paths under `root`
    become relative to it."""
    if root is not None and os.path.isabs(p):
        try:
            p = Path(os.path.abspath(p)).relative_to(Path(os.path.abspath(root))).as_posix()
        except ValueError:
            pass
    key = str(p).replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key

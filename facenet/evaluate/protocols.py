"""Pair protocols: LFW View 1 / View 2 `pairs*.txt` files and a generic TSV pair list.

Every reader returns a `PairList`: image paths relative to an image root, a same/different
label and a fold id per pair. No image is opened here.

Formats:

- LFW View 2 (`pairs.txt`): first line ``10 300`` (folds, pairs per class per fold), then per
  fold 300 matched lines ``name i j`` followed by 300 mismatched lines ``name1 i name2 j``.
- LFW View 1 (`pairsDevTrain.txt`, `pairsDevTest.txt`): first line ``N``, then N matched and
  N mismatched lines. It has no folds: with ``n_folds=10`` (the default) the matched and the
  mismatched pairs are each cut, in file order, into 10 consecutive blocks of (nearly) equal
  size and block k of each forms fold k, so every fold is balanced; ``n_folds=1`` keeps it one
  fold (threshold-free metrics and accuracy at a fixed threshold only).
- LFW image paths: ``<Name>/<Name>_<i:04d>.jpg`` under the image root (`lfw-deepfunneled/`).
- Generic TSV: ``fold<TAB>label<TAB>path_a<TAB>path_b`` per line, label 1 = same person and
  0 = different; paths relative to an image root (absolute paths are kept as they are).
  Blank lines, lines starting with ``#`` and a header line whose first field is ``fold`` are
  skipped. Fold ids are any integers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FaceNetError

LFW_VIEWS = {"2": "pairs.txt", "dev-train": "pairsDevTrain.txt", "dev-test": "pairsDevTest.txt"}
LFW_IMAGE_DIRS = ("lfw-deepfunneled", "lfw", "lfw_funneled", "lfw-funneled")


class PairListError(FaceNetError, ValueError):
    """A pair list file is missing or malformed."""


@dataclass
class PairList:
    """Pairs of images with labels and folds. Paths are relative to `root` (POSIX style)."""

    paths_a: list[str]
    paths_b: list[str]
    labels: np.ndarray  # bool, True = same person
    folds: np.ndarray  # int
    root: Path
    name: str = "pairs"
    source: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=bool)
        self.folds = np.asarray(self.folds, dtype=np.int64)
        n = len(self.paths_a)
        if not (len(self.paths_b) == self.labels.size == self.folds.size == n):
            raise ValueError("paths_a, paths_b, labels and folds must have one length")
        self.root = Path(self.root)

    def __len__(self) -> int:
        return len(self.paths_a)

    @property
    def n_folds(self) -> int:
        """How many folds the pairs are split into."""
        return int(np.unique(self.folds).size)

    def images(self) -> list[str]:
        """Every image referenced, once, in order of first appearance."""
        pairs = zip(self.paths_a, self.paths_b, strict=True)
        return list(dict.fromkeys(p for pair in pairs for p in pair))

    def resolve(self, rel: str) -> Path:
        """The absolute path of an image named relative to the root."""
        return self.root / rel

    def missing_files(self) -> list[str]:
        """The images of the list that are not on disk."""
        return [p for p in self.images() if not self.resolve(p).is_file()]

    def subset(self, index) -> PairList:
        """The pairs at `index` (an int array, slice or bool mask), same root."""
        idx = np.arange(len(self))[index]
        return PairList(
            [self.paths_a[i] for i in idx],
            [self.paths_b[i] for i in idx],
            self.labels[idx],
            self.folds[idx],
            self.root,
            self.name,
            self.source,
            dict(self.extra),
        )


# --------------------------------------------------------------------------- LFW


def lfw_image_path(name: str, number: int | str) -> str:
    """LFW's file name for image `number` of `name`: `Name/Name_0001.jpg`."""
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_lfw_pairs(
    pairs_file: str | os.PathLike, root: str | os.PathLike, n_folds: int | None = None
) -> PairList:
    """Read an LFW pairs file (View 2 ``pairs.txt`` or a View 1 ``pairsDev*.txt``).

    `n_folds` applies to View 1 files only (default 10, see the module docstring); View 2
    files carry their own folds.
    """
    path = Path(pairs_file)
    rows, folds_in_file, per_class, view = _lfw_header(path)
    paths_a, paths_b, labels, folds = [], [], [], []
    for k, (lineno, parts) in enumerate(rows):
        fold, within = divmod(k, 2 * per_class)
        same = within < per_class
        a, b = _lfw_pair(path, lineno, parts, same)
        paths_a.append(a)
        paths_b.append(b)
        labels.append(same)
        folds.append(fold)
    labels_arr = np.array(labels, dtype=bool)
    folds_arr = np.array(folds, dtype=np.int64)
    if view == "1":
        folds_arr = stratified_folds(labels_arr, 10 if n_folds is None else n_folds)
    elif n_folds not in (None, folds_in_file):
        raise PairListError(f"{path}: View 2 has {folds_in_file} fixed folds; cannot use {n_folds}")
    return PairList(
        paths_a,
        paths_b,
        labels_arr,
        folds_arr,
        Path(root),
        name=f"lfw-{path.stem}",
        source=str(path),
        extra={"lfw_view": view},
    )


def _lfw_header(path: Path) -> tuple[list, int, int, str]:
    """(pair rows as (line number, fields), folds in the file, pairs per class and fold,
    "1" or "2"): the file read and its header checked against its length."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise PairListError(f"{path}: no such pairs file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PairListError(f"{path}: cannot read ({exc})") from None
    rows = [(i + 1, line.split()) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise PairListError(f"{path}: empty pairs file")
    _, head = rows[0]
    try:
        counts = [int(v) for v in head]
    except ValueError:
        raise PairListError(f"{path}: line 1 must be '<folds> <pairs>' or '<pairs>'") from None
    if len(counts) == 2:
        folds_in_file, per_class = counts
        view = "2"
    elif len(counts) == 1:
        folds_in_file, per_class = 1, counts[0]
        view = "1"
    else:
        raise PairListError(f"{path}: line 1 must be '<folds> <pairs>' or '<pairs>'")
    if min(counts) < 1:
        raise PairListError(f"{path}: line 1 must announce at least one fold and one pair")
    body = rows[1:]
    expected = folds_in_file * 2 * per_class
    if len(body) != expected:
        raise PairListError(
            f"{path}: header announces {expected} pairs "
            f"({folds_in_file} x 2 x {per_class}) but the file has {len(body)}"
        )
    return body, folds_in_file, per_class, view


def _lfw_pair(path: Path, lineno: int, parts: list[str], same: bool) -> tuple[str, str]:
    """The two image paths of one pairs-file line (matched or mismatched, as its place says)."""
    if same and len(parts) == 3:
        people, numbers = [parts[0], parts[0]], parts[1:]
    elif not same and len(parts) == 4:
        people, numbers = parts[0::2], parts[1::2]
    else:
        kind = "matched 'name i j'" if same else "mismatched 'name1 i name2 j'"
        raise PairListError(f"{path}:{lineno}: expected a {kind} pair, got {' '.join(parts)!r}")
    try:
        values = [int(n) for n in numbers]
    except ValueError:
        raise PairListError(f"{path}:{lineno}: image numbers must be integers") from None
    if min(values) < 1:  # `Name_-001.jpg` would only be reported missing, later
        raise PairListError(f"{path}:{lineno}: image numbers start at 1")
    a, b = (lfw_image_path(p, n) for p, n in zip(people, values, strict=True))
    _check_no_nul(path, lineno, a + b)
    return a, b


def _check_no_nul(path: Path, lineno: int, text: str) -> None:
    """PairListError for a NUL byte in an image path: no file name holds one, and opening it
    would fail inside the OS call (a ValueError, not a failed image)."""
    if "\0" in text:
        raise PairListError(f"{path}:{lineno}: image path holds a NUL byte")


def stratified_folds(labels: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold ids cutting matched and mismatched pairs, each in order, into `n_folds` blocks."""
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1; got {n_folds}")
    labels = np.asarray(labels, dtype=bool)
    folds = np.zeros(labels.size, dtype=np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(labels == cls)
        folds[idx] = np.arange(idx.size) * n_folds // max(idx.size, 1)
    return folds


def find_lfw(lfw_dir: str | os.PathLike, view: str = "2") -> tuple[Path, Path]:
    """(pairs file, image root) for an LFW folder holding the pairs files and the images.

    `lfw_dir` may hold `lfw-deepfunneled/` (or `lfw/`...) beside the pairs files, or be the image
    folder itself with the pairs files inside it or its parent.
    """
    if view not in LFW_VIEWS:
        raise ValueError(f"view must be one of {', '.join(LFW_VIEWS)}; got {view!r}")
    base = Path(lfw_dir).expanduser()
    if not base.is_dir():
        raise PairListError(f"{base}: LFW folder not found (pass --lfw-dir or set FACENET_LFW_DIR)")
    fname = LFW_VIEWS[view]
    pairs = next((p for p in (base / fname, base.parent / fname) if p.is_file()), None)
    if pairs is None:
        raise PairListError(f"{base}: no {fname} in it or its parent")
    root = next((base / d for d in LFW_IMAGE_DIRS if (base / d).is_dir()), base)
    return pairs, root


def lfw_pairs(lfw_dir: str | os.PathLike, view: str = "2", n_folds: int | None = None) -> PairList:
    """The LFW pairs of `view` ("2", "dev-train" or "dev-test") found under `lfw_dir`."""
    pairs, root = find_lfw(lfw_dir, view)
    out = read_lfw_pairs(pairs, root, n_folds)
    out.name = f"lfw-view{view}" if view == "2" else f"lfw-{view}"
    return out


# --------------------------------------------------------------------------- TSV


def read_pair_tsv(path: str | os.PathLike, root: str | os.PathLike | None = None) -> PairList:
    """Read a ``fold<TAB>label<TAB>path_a<TAB>path_b`` list; `root` defaults to its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PairListError(f"{path}: no such pair list") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PairListError(f"{path}: cannot read ({exc})") from None
    paths_a, paths_b, labels, folds = [], [], [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rstrip("\r\n").split("\t")
        if parts[0].strip().lower() == "fold" and not paths_a:
            continue
        if len(parts) != 4:
            raise PairListError(
                f"{path}:{lineno}: expected 4 tab-separated fields "
                f"(fold, label, path_a, path_b), got {len(parts)}"
            )
        fold, label, a, b = (p.strip() for p in parts)
        try:
            fold_id = int(fold)
            np.int64(fold_id)  # OverflowError: too large for the fold array
        except (ValueError, OverflowError):
            raise PairListError(f"{path}:{lineno}: fold must be an integer, got {fold!r}") from None
        if label not in ("0", "1"):
            raise PairListError(
                f"{path}:{lineno}: label must be 1 (same) or 0 (different), got {label!r}"
            )
        if not a or not b:
            raise PairListError(f"{path}:{lineno}: empty image path")
        _check_no_nul(path, lineno, a + b)
        paths_a.append(a)
        paths_b.append(b)
        labels.append(label == "1")
        folds.append(fold_id)
    if not paths_a:
        raise PairListError(f"{path}: no pairs in the file")
    return PairList(
        paths_a,
        paths_b,
        np.array(labels, bool),
        np.array(folds, np.int64),
        Path(root) if root is not None else path.parent,
        name=path.stem,
        source=str(path),
    )


def write_pair_tsv(pairs: PairList, path: str | os.PathLike) -> None:
    """Write `pairs` as a TSV pair list (with a header line) that `read_pair_tsv` reads back."""
    lines = ["fold\tlabel\tpath_a\tpath_b"]
    for a, b, y, f in zip(pairs.paths_a, pairs.paths_b, pairs.labels, pairs.folds, strict=True):
        lines.append(f"{int(f)}\t{int(y)}\t{a}\t{b}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def balanced_subset(pairs: PairList, n: int) -> PairList:
    """About `n` pairs: the first ceil(n / (2 x folds)) matched and as many mismatched pairs of
    every fold, in file order (a quick check that keeps every fold and both classes)."""
    if n < 1:
        raise ValueError(f"n must be positive; got {n}")
    if n >= len(pairs):
        return pairs
    ids = np.unique(pairs.folds)
    per = -(-n // (2 * ids.size))
    keep = np.zeros(len(pairs), dtype=bool)
    for f in ids:
        for cls in (True, False):
            keep[np.flatnonzero((pairs.folds == f) & (pairs.labels == cls))[:per]] = True
    return pairs.subset(keep)

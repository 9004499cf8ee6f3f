"""Folder-per-identity face datasets: `<root>/<identity>/<image>`, one folder per person.

No TensorFlow here. Identities are sorted by folder name and labelled 0..N-1; images are sorted
within each folder. `split_identities` gives an identity-disjoint validation split, and
`make_pairs` builds same/different pairs from it for View 1-style checks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DatasetError, DatasetNotFoundError
from ..images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

#: the formats the TensorFlow input pipeline decodes (`tf.io.decode_image`)
TF_DECODABLE = ("JPEG", "PNG", "GIF", "BMP", "WEBP")


@dataclass
class FaceDataset:
    """Image paths with integer identity labels (index into `classes`)."""

    paths: list[str]
    labels: np.ndarray
    classes: list[str]
    root: Path | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.paths) != self.labels.size:
            raise ValueError("paths and labels must have one length")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> np.ndarray:
        """Images per identity, indexed by label."""
        return np.bincount(self.labels, minlength=self.num_classes)

    def subset_identities(self, identities) -> FaceDataset:
        """The images of the given labels, relabelled 0..len(identities)-1 in that order."""
        identities = [int(i) for i in identities]
        remap = {old: new for new, old in enumerate(identities)}
        keep = [i for i, y in enumerate(self.labels) if int(y) in remap]
        return FaceDataset(
            [self.paths[i] for i in keep],
            np.array([remap[int(self.labels[i])] for i in keep], dtype=np.int64),
            [self.classes[i] for i in identities],
            self.root,
            dict(self.extra),
        )

    def describe(self) -> str:
        counts = self.counts()
        return (
            f"{len(self)} images of {self.num_classes} identities "
            f"({int((counts >= 2).sum())} with 2+ images)"
        )


def scan_folder(
    root: str | os.PathLike,
    *,
    min_images: int = 1,
    max_identities: int | None = None,
    max_per_identity: int | None = None,
) -> FaceDataset:
    """Read `<root>/<identity>/<image>`; identities with fewer than `min_images` are left out.

    `max_identities` keeps the first identities (in sorted folder order) that pass `min_images`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"{root}: no such dataset folder")
    paths: list[str] = []
    labels: list[int] = []
    classes: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(
            str(f) for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if max_per_identity is not None:
            files = files[:max_per_identity]
        if len(files) < max(min_images, 1):
            continue
        label = len(classes)
        classes.append(folder.name)
        paths.extend(files)
        labels.extend([label] * len(files))
        if max_identities is not None and len(classes) >= max_identities:
            break
    if not classes:
        raise DatasetError(f"{root}: no identity folders with images (layout <identity>/<image>)")
    return FaceDataset(paths, np.array(labels, np.int64), classes, root)


def split_identities(
    dataset: FaceDataset, val_fraction: float = 0.05, seed: int = 0, min_val_images: int = 2
) -> tuple[FaceDataset, FaceDataset]:
    """(train, val) with disjoint identities; val is drawn among identities with at least
    `min_val_images` images (so it can form positive pairs)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction}")
    counts = dataset.counts()
    eligible = np.flatnonzero(counts >= min_val_images)
    n_val = int(round(val_fraction * dataset.num_classes))
    n_val = min(n_val, len(eligible))
    rng = np.random.default_rng(seed)
    val_ids = np.sort(rng.permutation(eligible)[:n_val])
    train_ids = np.setdiff1d(np.arange(dataset.num_classes), val_ids)
    return dataset.subset_identities(train_ids), dataset.subset_identities(val_ids)


def make_pairs(
    dataset: FaceDataset, n_pairs: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to `n_pairs` same-identity and as many different-identity pairs of image indices.

    Returns (index_a, index_b, same) arrays; deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    by_id = [np.flatnonzero(dataset.labels == c) for c in range(dataset.num_classes)]
    multi = [ids for ids in by_id if len(ids) >= 2]
    if not multi or dataset.num_classes < 2:
        raise ValueError("need at least one identity with 2 images and 2 identities for pairs")
    pos: set[tuple[int, int]] = set()
    for _ in range(n_pairs * 20):
        if len(pos) >= n_pairs:
            break
        ids = multi[rng.integers(len(multi))]
        a, b = rng.choice(ids, 2, replace=False)
        pos.add((int(min(a, b)), int(max(a, b))))
    neg: set[tuple[int, int]] = set()
    for _ in range(n_pairs * 20):
        if len(neg) >= len(pos):
            break
        ca, cb = rng.choice(dataset.num_classes, 2, replace=False)
        a, b = rng.choice(by_id[ca]), rng.choice(by_id[cb])
        neg.add((int(min(a, b)), int(max(a, b))))
    pairs = sorted(pos) + sorted(neg)
    same = np.array([True] * len(pos) + [False] * len(neg))
    a, b = (np.array(v, np.int64) for v in zip(*pairs, strict=True))
    return a, b, same


def check_decodable(paths: list[str]) -> None:
    """Every image decodes whole and is in a format the TensorFlow pipeline reads: a bad file is
    named here, not found by a failing step deep inside tf.data. A JPEG is decoded at 1/8 scale
    (all of its data is still read, so a truncated file fails): ~0.3 ms an image."""
    for path in paths:
        try:
            with Image.open(path) as image:
                kind = image.format
                image.draft("RGB", (32, 32))
                image.load()
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise DatasetError(
                f"{path}: not a readable image (damaged or truncated); remove it from the data"
            ) from None
        if kind not in TF_DECODABLE:
            raise DatasetError(
                f"{path}: {kind} images are not read by the TensorFlow trainer; convert the data "
                "to JPEG or PNG (`facenet align` writes PNG)"
            )

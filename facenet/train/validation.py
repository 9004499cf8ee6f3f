"""The per-epoch verification check: pairs aligned once, cached, embedded every epoch.

LFW View 1 (`pairsDevTest.txt`) by default: its images are detected and aligned once with the
project's MTCNN and the crop the model file records, then kept as an npz in the run folder.
Each epoch embeds the crops with the compiled inference graph and reports the 10-fold accuracy
of `facenet.evaluate.metrics.evaluate_embeddings`. LFW is only ever evaluated on, never trained on.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data.dataset import FaceDataset, make_pairs
from ..data.pipeline import eval_images
from ..evaluate.protocols import LFW_IMAGE_DIRS, read_lfw_pairs, read_pair_tsv, stratified_folds
from ..evaluate.verification import evaluate_embeddings

log = logging.getLogger(__name__)


class PairValidator:
    """Aligned uint8 crops and the pairs over them (indices into the crops)."""

    def __init__(self, crops, index_a, index_b, labels, folds, name: str = "pairs"):
        self.crops = np.asarray(crops, np.uint8)
        self.index_a = np.asarray(index_a, np.int64)
        self.index_b = np.asarray(index_b, np.int64)
        self.labels = np.asarray(labels, bool)
        self.folds = np.asarray(folds, np.int64)
        self.name = name

    def __len__(self) -> int:
        return len(self.labels)

    def embed(self, embedder, batch_size: int = 64) -> np.ndarray:
        """Every crop's embedding (`embedder`: crops -> unit rows), in batches."""
        return np.concatenate(
            [
                embedder(self.crops[i : i + batch_size])
                for i in range(0, len(self.crops), batch_size)
            ]
        )

    def evaluate(self, embedder, batch_size: int = 64) -> dict:
        """Embed every crop with `embedder` (crops -> unit rows) and score the pairs."""
        start = time.perf_counter()
        emb = self.embed(embedder, batch_size)
        out = evaluate_embeddings(emb[self.index_a], emb[self.index_b], self.labels, self.folds)
        out["seconds"] = time.perf_counter() - start
        return out

    def figures(self, embedder, batch_size: int = 64) -> dict[str, float]:
        """An epoch's validation figures for the log: the 10-fold accuracy, the threshold of
        highest accuracy on all the pairs (what the saved model will decide with) and the
        accuracy there, and the seconds taken."""
        metrics = self.evaluate(embedder, batch_size)
        return {
            "val_accuracy": float(metrics["accuracy"]),
            "val_threshold": round(float(metrics["best_threshold"]), 4),
            "val_threshold_accuracy": float(metrics["best_accuracy"]),
            "val_seconds": float(metrics["seconds"]),
        }

    # --- building and caching ---------------------------------------------------------------

    def save(self, path: Path, key: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, crops=self.crops, a=self.index_a, b=self.index_b, labels=self.labels,
                     folds=self.folds, key=key, name=self.name)  # fmt: skip
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, key: str) -> PairValidator | None:
        if not path.is_file():
            return None
        with np.load(path) as z:
            if str(z["key"]) != key:
                return None
            return cls(z["crops"], z["a"], z["b"], z["labels"], z["folds"], str(z["name"]))

    @classmethod
    def from_pairs_file(
        cls, pairs_file: str | os.PathLike, image_size: int, margin: float, cache: Path,
        detector=None, alignment: str = "crop",
    ) -> PairValidator:  # fmt: skip
        """LFW pairs (`pairs*.txt`) or a TSV pair list; images aligned with MTCNN once."""
        pairs_file = Path(pairs_file)
        key = f"{pairs_file.resolve()}|{image_size}|{margin}|{alignment}"
        cached = cls.load(cache, key)
        if cached is not None:
            return cached
        if pairs_file.suffix == ".tsv":
            pairs = read_pair_tsv(pairs_file)
        else:
            base = pairs_file.parent
            root = next((base / d for d in LFW_IMAGE_DIRS if (base / d).is_dir()), base)
            pairs = read_lfw_pairs(pairs_file, root)
        images = pairs.images()
        where = {p: i for i, p in enumerate(images)}
        crops = _align_files([pairs.resolve(p) for p in images], image_size, margin, detector,
                             alignment)  # fmt: skip
        out = cls(crops, [where[p] for p in pairs.paths_a], [where[p] for p in pairs.paths_b],
                  pairs.labels, pairs.folds, pairs.name)  # fmt: skip
        out.save(cache, key)
        return out

    @classmethod
    def from_dataset(
        cls, dataset: FaceDataset, n_pairs: int, image_size: int, cache: Path, seed: int = 0,
        source: str = "aligned",
    ) -> PairValidator:  # fmt: skip
        """Same/different pairs of held-out identities; crops as the training pipeline sees them."""
        a, b, same = make_pairs(dataset, n_pairs, seed)
        used = np.unique(np.concatenate([a, b]))
        key = f"split|{len(dataset)}|{dataset.paths[0]}|{n_pairs}|{image_size}|{seed}|{source}"
        cached = cls.load(cache, key)
        if cached is not None:
            return cached
        where = {int(i): k for k, i in enumerate(used)}
        crops = eval_images([dataset.paths[i] for i in used], image_size, source)
        out = cls(crops, [where[int(i)] for i in a], [where[int(i)] for i in b], same,
                  stratified_folds(same, 10), "split")  # fmt: skip
        out.save(cache, key)
        return out


def _align_files(
    files: list[Path], image_size: int, margin: float, detector=None, alignment: str = "crop"
) -> np.ndarray:
    from tqdm.auto import tqdm

    from ..detect import make_detector
    from ..detect.crops import aligned, face_crops
    from ..images import load_image

    detector = detector or make_detector()
    crops = np.zeros((len(files), image_size, image_size, 3), np.uint8)
    missing = 0
    for start in tqdm(range(0, len(files), 16), desc="align val pairs", unit="batch",
                      disable=not log.isEnabledFor(logging.INFO)):  # fmt: skip
        chunk = files[start : start + 16]
        rgbs = [load_image(f) for f in chunk]
        faces = face_crops(rgbs, detector, aligned(image_size, alignment, margin), image_size)
        for k, face in enumerate(faces):
            missing += face.fallback
            crops[start + k] = face.crop
    if missing:
        log.warning(
            "no face found in %d of %d validation images: centre-cropped", missing, len(files)
        )
    return crops

"""A closed-set face classifier over embeddings: a linear SVM or k-nearest neighbours.

Train it on a folder-per-identity tree (`root/<name>/<photo>`), save it, and predict who is in
new photos, with a probability. The saved file records the embedding model's id (and the one
it is a calibrated copy of) and refuses any model that makes other embeddings (`same_embeddings`:
a calibrated copy of the model, or the model a copy was calibrated from, is taken).

When to use this rather than the gallery (`facenet.gallery`): a classifier always answers with
one of the people it was trained on, so it suits a fixed, closed set where every face is
known to belong to someone in it (sorting a family's photos, say), and it can use many photos
per person to draw its boundaries. The gallery's open-set identification suits almost
everything else: people who were never enrolled come out as "unknown" (by the model's
calibrated distance threshold), people are added, renamed or removed without retraining, and
one photo per person is enough. A classifier's probability is not a distance: a stranger can
get a high probability for the nearest class. So the classifier keeps its training embeddings
and `predict` rejects (answers "unknown") a face farther than `max_distance` (squared L2;
the CLI's default is the model's verification threshold) from every training face of the
predicted person; `min_probability` adds a cruder probability floor.

Classifier files are pickles (joblib): load only files you trust.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FaceNetError, ImageError
from .images import IMAGE_SUFFIXES, ImageInput, load_image
from .metadata import check_choice, embedding_origin, same_embeddings
from .outputs import check_output_file, write_file
from .types import Face

log = logging.getLogger(__name__)

KINDS = ("svm", "knn")
FORMAT = "facenet-classifier/1"
UNKNOWN = "unknown"


class ClassifierError(FaceNetError):
    """The classifier cannot be trained, loaded or used as asked."""


@dataclass(frozen=True)
class Prediction:
    """The predicted person (or "unknown"), its probability, the distance from the face to
    the nearest training face of the most probable person (None for files saved without
    them), and that person when the prediction was rejected."""

    label: str
    probability: float
    distance: float | None = None
    nearest: str | None = None

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "probability": round(self.probability, 5),
            "distance": None if self.distance is None else round(self.distance, 5),
            "nearest": self.nearest,
        }


@dataclass
class TrainingSet:
    embeddings: np.ndarray
    labels: list[str]
    sources: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


class FaceClassifier:
    """A scikit-learn classifier on unit embeddings, tied to the model that made them."""

    def __init__(
        self,
        estimator,
        kind: str,
        model_id: str,
        model_name: str,
        embedding_size: int,
        references: tuple[np.ndarray, np.ndarray] | None = None,
        embeddings_of: str = "",
    ):
        self.estimator = estimator
        #: the model whose embeddings the model makes, as a calibrated copy records it ("": itself)
        self.embeddings_of = embeddings_of
        #: training embeddings and their labels, for the distance reject (None: an old file)
        self.references = references
        self.kind = kind
        self.model_id = model_id
        self.model_name = model_name
        self.embedding_size = embedding_size

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.estimator.classes_]

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        labels: Sequence[str],
        *,
        kind: str = "svm",
        model=None,
        model_id: str = "",
        model_name: str = "",
        neighbors: int = 5,
        seed: int = 0,
    ) -> FaceClassifier:
        """Train on embeddings (n x d) and their labels. `model` (or model_id/model_name) is
        the embedding model, recorded so that predictions refuse any other.

        svm: linear SVC with sigmoid-calibrated probabilities (cross-validated: every person
        needs at least 2 embeddings). knn: distance-weighted k nearest neighbours.
        """
        check_choice("kind", kind, KINDS)
        x = _unit_rows(embeddings)
        labels = [str(label) for label in labels]
        if len(labels) != len(x):
            raise ClassifierError(f"{len(x)} embeddings but {len(labels)} labels")
        counts = Counter(labels)
        if len(counts) < 2:
            raise ClassifierError("a classifier needs at least two people")
        if kind == "svm":
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import SVC

            fewest = min(counts.values())
            if fewest < 2:
                lonely = sorted(k for k, v in counts.items() if v < 2)[:5]
                raise ClassifierError(
                    f"the SVM needs at least 2 photos per person to calibrate its "
                    f"probabilities ({', '.join(lonely)} ... have 1); use kind 'knn' (--kind "
                    "knn) or add photos"
                )
            estimator = CalibratedClassifierCV(
                SVC(kernel="linear", C=1.0, random_state=seed),
                method="sigmoid",
                cv=min(5, fewest),
                ensemble=False,
            )
        else:
            from sklearn.neighbors import KNeighborsClassifier

            estimator = KNeighborsClassifier(n_neighbors=min(neighbors, len(x)), weights="distance")
        estimator.fit(x, np.asarray(labels))
        origin = ""
        if model is not None:
            model_id, model_name = model.model_id, getattr(model.info, "name", "")
            origin = embedding_origin(model)
        references = (x.astype(np.float32), np.asarray(labels))
        return cls(estimator, kind, model_id, model_name, x.shape[1], references, origin)

    def predict(
        self,
        embeddings: np.ndarray,
        min_probability: float = 0.0,
        max_distance: float | None = None,
    ) -> list[Prediction]:
        """The most probable person for each embedding; "unknown" below `min_probability`, or
        when the face is farther than `max_distance` (squared L2) from every training face of
        that person (None: no distance reject)."""
        x = _unit_rows(embeddings)
        if x.shape[1] != self.embedding_size:
            raise ClassifierError(
                f"embeddings are {x.shape[1]}-d; this classifier expects {self.embedding_size}-d"
            )
        if len(x) == 0:
            return []
        probabilities = self.estimator.predict_proba(x)
        best = probabilities.argmax(axis=1)
        classes = self.classes
        out = []
        for vector, row, i in zip(x, probabilities, best, strict=True):
            p, label = float(row[i]), classes[i]
            distance = self._distance(vector, label)
            far = max_distance is not None and distance is not None and distance > max_distance
            if p < min_probability or far:
                out.append(Prediction(UNKNOWN, p, distance, nearest=label))
            else:
                out.append(Prediction(label, p, distance))
        return out

    def _distance(self, vector: np.ndarray, label: str) -> float | None:
        """Squared L2 from a unit vector to the nearest training face of `label`."""
        if self.references is None:
            return None
        x, labels = self.references
        own = x[labels == label]
        return float(np.min(np.sum((own - vector) ** 2, axis=1))) if len(own) else None

    def check_model(self, model) -> None:
        """ClassifierError unless `model` makes the embeddings it was trained on: its model, a
        calibrated copy of it, or the model it is a copy of (`same_embeddings`)."""
        ours = (self.model_id, self.embeddings_of)
        if self.model_id and not same_embeddings(model.model_id, embedding_origin(model), *ours):
            raise ClassifierError(
                f"this classifier was trained on embeddings of model {self.model_name!r} "
                f"(id {self.model_id[:12]}); the given model is "
                f"{getattr(model.info, 'name', '?')!r} (id {model.model_id[:12]}): use the model "
                "it was trained with (--model), or retrain it"
            )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the classifier to `path` atomically; a path that is a folder, a device or
        under a file is a one-line OutputError (see `facenet.outputs`)."""
        import joblib

        data = {
            "format": FORMAT,
            "kind": self.kind,
            "model_id": self.model_id,
            "model_name": self.model_name,
            "embeddings_of": self.embeddings_of,
            "embedding_size": self.embedding_size,
            "estimator": self.estimator,
            "references": self.references,
        }
        return write_file(check_output_file(path), lambda f: joblib.dump(data, f))

    @classmethod
    def load(cls, path: str | os.PathLike, model=None) -> FaceClassifier:
        """Load a saved classifier (a trusted file only: it is a pickle); with `model`, check it
        is the one the classifier was trained for."""
        import joblib

        path = Path(path)
        if not path.is_file():
            raise ClassifierError(f"{path}: no such classifier file")
        try:
            data = joblib.load(path)
        except Exception as exc:
            raise ClassifierError(f"{path}: not a facenet classifier ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ClassifierError(f"{path}: not a facenet classifier file")
        classifier = cls(
            data["estimator"], data["kind"], data["model_id"], data["model_name"],
            int(data["embedding_size"]), data.get("references"), data.get("embeddings_of") or "",
        )  # fmt: skip
        if model is not None:
            classifier.check_model(model)
        return classifier


def training_items(root: str | os.PathLike) -> list[tuple[str, Path]]:
    """(person, photo) for every photo of a folder-per-identity tree, listed without opening
    any: what `training_set` embeds, and what an output file must not replace."""
    root = Path(root)
    if not root.is_dir():
        raise ClassifierError(f"{root}: not a directory")
    items = [
        (folder.name, file)
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for file in sorted(folder.iterdir())
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise ClassifierError(f"{root}: no images found in its sub-folders (one per person)")
    return items


def training_set(model, root: str | os.PathLike, *, progress: bool = False) -> TrainingSet:
    """Embed the most prominent face of every photo of a folder-per-identity tree. Photos
    without a face, or unreadable, are skipped and listed."""
    from .detect.align import most_prominent

    items = training_items(root)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, unit="photo", desc="embedding")
    vectors, labels, sources, skipped = [], [], [], []
    for name, file in items:
        try:
            image = load_image(file)
            faces = model.represent(image)
        except ImageError as exc:
            skipped.append((str(file), f"unreadable: {exc}"))
            continue
        if not faces:
            skipped.append((str(file), "no face found"))
            continue
        vectors.append(most_prominent(faces, image.shape).embedding)
        labels.append(name)
        sources.append(str(file))
    dim = int(model.info.embedding_size)
    x = np.asarray(vectors, np.float32).reshape(-1, dim)
    return TrainingSet(x, labels, sources, skipped)


def train(
    model, root: str | os.PathLike, *, kind: str = "svm", neighbors: int = 5, progress: bool = False
) -> tuple[FaceClassifier, TrainingSet]:
    """Train a classifier on a folder-per-identity tree; returns it and what it was trained on."""
    data = training_set(model, root, progress=progress)
    classifier = FaceClassifier.fit(
        data.embeddings, data.labels, kind=kind, model=model, neighbors=neighbors
    )
    return classifier, data


def predict_photo(
    classifier: FaceClassifier,
    model,
    image: ImageInput,
    min_probability: float = 0.0,
    max_distance: float | None = None,
) -> list[tuple[Face, Prediction]]:
    """Every face of a photo with its predicted person (see `FaceClassifier.predict`)."""
    classifier.check_model(model)
    faces = model.represent(image)
    if not faces:
        return []
    predictions = classifier.predict(
        np.stack([f.embedding for f in faces]), min_probability, max_distance
    )
    return list(zip(faces, predictions, strict=True))


def _unit_rows(embeddings) -> np.ndarray:
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ClassifierError(f"embeddings must be an n x d array; got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ClassifierError("embeddings contain NaN or infinite values")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

"""A persistent face gallery: enrol people, then identify every face in a photo.

Storage is one SQLite file (the truth: people, faces, embeddings, which model made them) and a
FAISS index beside it (`<gallery>.faiss`, a cache). Each batch of enrolled faces is written in
one transaction, and the index records which faces it holds (count, sum and maximum of their
ids): on open, an index that is missing or disagrees with the database is repaired (faces added
since it was saved) or rebuilt, so a process killed at any point leaves a usable gallery.

Example:
    >>> from facenet import FaceNet
    >>> from facenet.gallery import Gallery
    >>> model = FaceNet.load("model.keras")
    >>> gallery = Gallery.create("people.db", model)
    >>> gallery.enroll("Ada", ["ada1.jpg", "ada2.jpg"]).summary()
    'enrolled 2 faces of 1 person; skipped 0 photos'
    >>> [(f.name, f.distance) for f in gallery.identify("group.jpg")]
    [('Ada', 0.41), ('unknown', 1.73)]
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ..errors import GalleryError, ImageError
from ..images import ImageInput, describe, load_image
from ..metadata import DEFAULT_K, DEFAULT_THRESHOLD
from ..text import plural
from ..types import Face
from .crops import StoredCrop, cut_crop
from .index import FaceIndex, IndexState
from .store import Store
from .validation import UNKNOWN, check_metadata, check_name

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


class EmbeddingModel(Protocol):
    """What the gallery needs from a model (`facenet.FaceNet` provides it)."""

    model_id: str

    @property
    def info(self) -> Any: ...  # ModelInfo: name, embedding_size, verification_threshold

    def represent(self, image: ImageInput) -> list[Face]: ...


# -- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    metadata: dict
    faces: int
    created: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FaceRecord:
    id: int
    person: str
    source: str | None
    content_hash: str
    box: tuple[float, float, float, float] | None
    score: float | None
    model_id: str
    created: str
    embedding: np.ndarray = field(compare=False, repr=False)
    #: The five landmarks (photo coordinates) and the photo's absolute path, when known.
    landmarks: list | None = None
    photo: str | None = None

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "embedding"}
        out["box"] = list(self.box) if self.box else None
        return out


@dataclass(frozen=True)
class Match:
    """A gallery person close to a query face: their nearest enrolled face and its distance."""

    name: str
    distance: float
    face_id: int
    person_id: int

    def to_dict(self) -> dict:
        return {"name": self.name, "distance": round(self.distance, 5), "face_id": self.face_id}


@dataclass(frozen=True)
class IdentifiedFace:
    """One face of a photo and who it is: `name` is the best match, or "unknown" when its
    distance is above the threshold (or the gallery is empty)."""

    face: Face
    name: str
    distance: float | None
    threshold: float
    matches: list[Match]

    @property
    def known(self) -> bool:
        return self.name != UNKNOWN

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.face.box],
            "score": round(float(self.face.score), 5),
            "name": self.name,
            "distance": None if self.distance is None else round(self.distance, 5),
            "threshold": self.threshold,
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class Enrolled:
    person: str
    source: str
    face_id: int
    faces_in_photo: int


@dataclass(frozen=True)
class Skipped:
    person: str
    source: str
    reason: str


@dataclass
class EnrollReport:
    """What an enrolment did, photo by photo. Photos with several faces enrol the most
    prominent one (largest box) and are listed in `notes`."""

    enrolled: list[Enrolled] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return [
            f"{e.source}: {e.faces_in_photo} faces found; enrolled the most prominent one"
            for e in self.enrolled
            if e.faces_in_photo > 1
        ]

    def summary(self) -> str:
        people = len({e.person for e in self.enrolled})
        return (
            f"enrolled {plural(len(self.enrolled), 'face')} of "
            f"{plural(people, 'person', 'people')}; skipped {plural(len(self.skipped), 'photo')}"
        )

    def to_dict(self) -> dict:
        return {
            "enrolled": [e.__dict__ for e in self.enrolled],
            "skipped": [s.__dict__ for s in self.skipped],
            "notes": self.notes,
            "summary": self.summary(),
        }


# -- the gallery ----------------------------------------------------------------------------


class Gallery:
    """A persistent gallery of people and their face embeddings, with identification.

    Create with `Gallery.create(path, model)`; reopen with `Gallery.open(path, model)`. The model
    is needed to enrol and identify photos; listing, renaming, merging, removing and `search`
    with ready embeddings work without one. A model other than the gallery's is refused.
    Use as a context manager, or call `close()`, to save the index.
    """

    def __init__(self, path: Path, store: Store, model: EmbeddingModel | None):
        self.path = path
        self._store = store
        self._lock = threading.RLock()
        meta = store.meta()
        self.model_id: str = meta["model_id"]
        self.model_name: str = meta.get("model_name", "")
        self.model_path: str = meta.get("model_path", "")
        self.embedding_size: int = int(meta["embedding_size"])
        self._stored_threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
        calibrated = meta.get("calibrated_threshold")
        #: Set by `facenet gallery calibrate` on this gallery's own faces; overrides the model's.
        self.calibrated_threshold: float | None = None if calibrated is None else float(calibrated)
        self.model = None
        self._index: FaceIndex | None = None
        #: How the index was obtained on open: "loaded", "repaired (+N faces)" or "rebuilt (...)".
        self.index_status = "not loaded"
        self._closed = False
        if model is not None:
            self.attach(model)

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | os.PathLike, model: EmbeddingModel, model_path: str | os.PathLike = ""
    ) -> Gallery:
        """Create an empty gallery at `path` (a SQLite file) for `model`'s embeddings.

        The model (`model_path`, else the bundled model's name, else its file) is recorded so
        that the CLI can reload it later.
        """
        path = Path(path)
        if path.exists():
            raise GalleryError(f"{path}: already exists (open it, or choose another path)")
        if not path.parent.exists():
            raise GalleryError(f"{path.parent}: no such directory")
        _check_model(model)
        source = os.fspath(
            model_path or _catalog_name(model) or getattr(model, "source", None) or ""
        )
        store = Store(path)
        try:
            store.migrate()
            with store.transaction() as db:
                store.set_meta(
                    db,
                    {
                        "model_id": model.model_id,
                        "model_name": getattr(model.info, "name", ""),
                        "embedding_size": int(model.info.embedding_size),
                        "threshold": _open_set_threshold(model),
                        "model_path": _model_reference(source),
                    },
                )
        except BaseException:
            store.close()
            raise
        return cls(path, store, model)

    @classmethod
    def open(cls, path: str | os.PathLike, model: EmbeddingModel | None = None) -> Gallery:
        """Open an existing gallery; with `model`, check it is the gallery's model and load the
        index (repairing or rebuilding it from the database if needed)."""
        path = Path(path)
        if not path.is_file():
            raise GalleryError(f"{path}: no such gallery (create it with `facenet gallery create`)")
        try:
            store = Store(path)
            if not store.is_gallery():
                raise GalleryError(f"{path}: not a facenet gallery")
            store.migrate()
            if "model_id" not in store.meta():
                raise GalleryError(f"{path}: gallery records no model (incomplete creation?)")
        except Exception as exc:
            if isinstance(exc, GalleryError):
                raise
            raise GalleryError(f"{path}: cannot open gallery ({exc})") from None
        return cls(path, store, model)

    def attach(self, model: EmbeddingModel) -> None:
        """Use `model` for enrolment and identification; it must be the gallery's model."""
        _check_model(model)
        if model.model_id != self.model_id or int(model.info.embedding_size) != self.embedding_size:
            raise GalleryError(
                f"{self.path}: this gallery holds embeddings of model {self.model_name!r} "
                f"(id {self.model_id[:12]}, {self.embedding_size}-d); the given model is "
                f"{getattr(model.info, 'name', '?')!r} (id {model.model_id[:12]}, "
                f"{model.info.embedding_size}-d). Use the gallery's model, or create a new "
                "gallery and enrol again"
            )
        self.model = model
        self.sync_index()

    def close(self) -> None:
        """Save the index and close the database; closing again does nothing."""
        with self._lock:
            if self._closed:
                return
            if self._index is not None:
                self._save_index()
            self._store.close()
            self._closed = True

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Gallery({str(self.path)!r}, people={self._store.person_count()}, faces={len(self)})"
        )

    @property
    def threshold(self) -> float:
        """Squared-L2 distance at or below which a match is a known person: the gallery's own
        calibration if it has one, else the model's identification threshold."""
        if self.calibrated_threshold is not None:
            return self.calibrated_threshold
        if self.model is not None:
            return _open_set_threshold(self.model)
        return self._stored_threshold

    def calibrate(self, far: float = 0.01, *, save: bool = True) -> dict:
        """Choose the identification threshold on this gallery's own faces for a per-probe
        false-accept rate `far` (see `facenet.evaluate.openset.calibrate_gallery`); with
        `save`, identification uses it from now on."""
        from ..evaluate.openset import calibrate_gallery

        ids, vectors = [], []
        for chunk_ids, chunk in self._store.embeddings():
            ids.append(chunk_ids)
            vectors.append(chunk)
        if not ids:
            raise GalleryError(f"{self.path}: no faces to calibrate on")
        ids = np.concatenate(ids)
        owners = self._store.names_for(ids.tolist())
        labels = np.array([owners[int(i)][0] for i in ids])
        if len(set(labels.tolist())) < 2:
            raise GalleryError(f"{self.path}: calibration needs at least two people")
        result = calibrate_gallery(np.concatenate(vectors), labels, far)
        result["previous_threshold"] = self.threshold
        if save:
            with self._lock, self._store.transaction() as db:
                self._store.set_meta(db, {"calibrated_threshold": result["threshold"]})
            self.calibrated_threshold = result["threshold"]
        return result

    # -- people -------------------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of enrolled faces."""
        return self._store.aggregate()[0]

    def people(self) -> list[Person]:
        return [_person(r) for r in self._store.people()]

    def person(self, name: str) -> Person:
        for p in self.people():
            if p.name == name:
                return p
        raise GalleryError(f"no person named {name!r} in the gallery")

    def faces(self, name: str | None = None) -> list[FaceRecord]:
        """The faces of `name` (every face when None), oldest first."""
        person_id = None if name is None else self._person_id(name)
        return [_face_record(r) for r in self._store.faces(person_id)]

    def unsearched_faces(self) -> int:
        """Faces kept with another model's embedding (a migration could not re-embed them, see
        `facenet.gallery.migrate`): listed, never matched."""
        return len(self) - self._store.aggregate(model_id=self.model_id)[0]

    def has_face(self, face_id: int) -> bool:
        return self._store.face(int(face_id)) is not None

    def thumbnail(self, face_id: int, size: int = 112) -> bytes | None:
        """A square JPEG of an enrolled face, cut from the crop kept with it; None when there is
        no such face, or it was enrolled before crops were kept (and not migrated since)."""
        row = self._store.crop(face_id)
        if row is None:
            return None
        crop = StoredCrop.from_row(row["image"], row["geometry"])
        return crop.thumbnail(json.loads(row["box"]), size)

    def add_person(self, name: str, metadata: dict | None = None) -> Person:
        name = check_name(name)
        with self._lock, self._store.transaction() as db:
            if self._store.person(name) is not None:
                raise GalleryError(f"a person named {name!r} already exists")
            self._store.add_person(db, name, check_metadata(metadata))
        return self.person(name)

    def rename(self, old: str, new: str) -> Person:
        new = check_name(new)
        with self._lock, self._store.transaction() as db:
            person_id = self._person_id(old)
            if self._store.person(new) is not None:
                raise GalleryError(
                    f"a person named {new!r} already exists (use merge to combine the two)"
                )
            db.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))
        return self.person(new)

    def merge(self, src: str, dst: str) -> Person:
        """Move every face of `src` to `dst`, then delete `src`; metadata is combined, `dst`'s
        values winning. Both must exist."""
        if src == dst:
            raise GalleryError(f"cannot merge {src!r} into itself")
        with self._lock, self._store.transaction() as db:
            src_row, dst_row = self._person_row(src), self._person_row(dst)
            metadata = {**json.loads(src_row["metadata"]), **json.loads(dst_row["metadata"])}
            db.execute(
                "UPDATE faces SET person_id = ? WHERE person_id = ?", (dst_row["id"], src_row["id"])
            )
            self._store.update_metadata(db, dst_row["id"], metadata)
            db.execute("DELETE FROM people WHERE id = ?", (src_row["id"],))
        return self.person(dst)

    def remove_person(self, name: str) -> int:
        """Delete a person and their faces; return how many faces went."""
        with self._lock:
            index = self.index
            with self._store.transaction() as db:
                person_id = self._person_id(name)
                face_ids = self._store.face_ids(person_id)
                db.execute("DELETE FROM faces WHERE person_id = ?", (person_id,))
                db.execute("DELETE FROM people WHERE id = ?", (person_id,))
            index.remove(face_ids)
            self._save_index()
        return len(face_ids)

    def remove_face(self, face_id: int) -> FaceRecord:
        """Delete one enrolled face (its person stays, even with no face left)."""
        with self._lock:
            index = self.index
            with self._store.transaction() as db:
                row = self._store.face(int(face_id))
                if row is None:
                    raise GalleryError(f"no face with id {face_id} in the gallery")
                record = next(
                    r for r in self._store.faces(row["person_id"]) if r["id"] == row["id"]
                )
                db.execute("DELETE FROM faces WHERE id = ?", (int(face_id),))
            index.remove([int(face_id)])
            self._save_index()
        return _face_record(record)

    # -- enrolment ----------------------------------------------------------------------------

    def enroll(
        self,
        name: str,
        images: ImageInput | Iterable[ImageInput],
        metadata: dict | None = None,
        *,
        batch_size: int = 32,
        progress: bool = False,
    ) -> EnrollReport:
        """Enrol the most prominent face of each photo as `name` (created if new; `metadata` is
        merged into theirs). Photos already in the gallery (same content hash), photos with no
        face and unreadable files are skipped and reported, never raised."""
        name = check_name(name)
        metadata = check_metadata(metadata)
        if isinstance(images, (str, os.PathLike, Image.Image, np.ndarray)):
            images = [images]
        items = [(name, source) for source in images]
        return self._enroll(items, {name: metadata} if metadata else {}, batch_size, progress)

    def enroll_folder(
        self, root: str | os.PathLike, *, batch_size: int = 32, progress: bool = True
    ) -> EnrollReport:
        """Enrol a folder-per-identity tree: `root/<name>/<photo>`; the folder name is the
        person's name. Files already enrolled (by content hash) are skipped, so an interrupted
        enrolment is resumed by running it again."""
        root = Path(root)
        if not root.is_dir():
            raise GalleryError(f"{root}: not a directory")
        items = []
        for folder in sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            try:
                name = check_name(folder.name)
            except GalleryError as exc:
                raise GalleryError(f"{folder}: {exc}") from None
            for file in sorted(folder.iterdir()):
                if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                    items.append((name, file))
        if not items:
            raise GalleryError(f"{root}: no images found in its sub-folders (one per person)")
        return self._enroll(items, {}, batch_size, progress)

    def add_embeddings(
        self,
        name: str,
        embeddings: np.ndarray,
        sources: Sequence[str] | None = None,
        metadata: dict | None = None,
    ) -> list[int]:
        """Add ready embeddings (n x d, of the gallery's model) as faces of `name`, in one
        transaction; returns their face ids. For callers that embed photos themselves
        (batched `FaceNet.embed`, an embedding cache); no duplicate check is made."""
        name = check_name(name)
        metadata = check_metadata(metadata)
        vectors = np.asarray(embeddings, dtype=np.float32)
        vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
        if vectors.ndim != 2 or vectors.shape[1] != self.embedding_size:
            raise GalleryError(
                f"embeddings of shape {np.shape(embeddings)} do not fit this gallery "
                f"({self.embedding_size}-d)"
            )
        vectors = (
            np.stack([_unit(v, self.embedding_size) for v in vectors]) if len(vectors) else vectors
        )
        sources = list(sources) if sources is not None else [None] * len(vectors)
        if len(sources) != len(vectors):
            raise GalleryError(f"{len(vectors)} embeddings but {len(sources)} sources")
        with self._lock:
            index = self.index
            with self._store.transaction() as db:
                row = self._store.person(name)
                if row is None:
                    person_id = self._store.add_person(db, name, metadata)
                else:
                    person_id = row["id"]
                    if metadata:
                        merged = {**json.loads(row["metadata"]), **metadata}
                        self._store.update_metadata(db, person_id, merged)
                rows = [
                    (
                        person_id,
                        source,
                        hashlib.sha256(b"embedding:" + v.tobytes()).hexdigest(),
                        None,
                        None,
                        v.tobytes(),
                        self.model_id,
                        None,
                        None,
                        None,
                    )
                    for v, source in zip(vectors, sources, strict=True)
                ]
                ids = self._store.add_faces(db, rows)
            index.add(vectors, ids)
            self._save_index()
        return ids

    def _enroll(
        self,
        items: Sequence[tuple[str, ImageInput]],
        metadata: dict[str, dict],
        batch_size: int,
        progress: bool,
    ) -> EnrollReport:
        model = self._require_model()
        report = EnrollReport()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), unit="photo", desc="enrolling")
        with self._lock:
            index = self.index
            seen: set[str] = set()
            try:
                for start in range(0, len(items), max(1, batch_size)):
                    batch = items[start : start + max(1, batch_size)]
                    pending = []  # (name, source, digest, face, n_faces, crop, photo)
                    for offset, (name, item) in enumerate(batch):
                        source = describe(item, start + offset)
                        result = self._embed_one(model, item, source, seen)
                        if isinstance(result, str):
                            report.skipped.append(Skipped(name, source, result))
                        else:
                            pending.append((name, source, *result))
                        if bar is not None:
                            bar.update(1)
                    if pending:
                        self._insert(pending, metadata, index, report)
            finally:
                if bar is not None:
                    bar.close()
                self._save_index()
        for note in report.notes:
            log.info(note)
        return report

    def _embed_one(self, model, item, source: str, seen: set[str]):
        """(digest, face, number of faces, crop, photo path) for one photo, or the reason to
        skip it. The crop and the photo's absolute path let another model re-embed the face."""
        photo = None
        try:
            if isinstance(item, (str, os.PathLike)):
                digest = _file_hash(Path(item), source)
                image = load_image(item, source)
                photo = str(Path(item).resolve())
            else:
                image = load_image(item, source)
                digest = _pixel_hash(image)
        except ImageError as exc:
            return f"unreadable: {exc}"
        owner = self._store.hash_owner(digest) if digest not in seen else "this enrolment"
        if owner is not None:
            return f"duplicate: already enrolled (as {owner})"
        try:
            faces = model.represent(image)
        except ImageError as exc:
            return f"unreadable: {exc}"
        if not faces:
            return "no face found"
        seen.add(digest)
        face = most_prominent(faces, image.shape)
        return digest, face, len(faces), cut_crop(image, face.box), photo

    def _insert(self, pending, metadata, index: FaceIndex, report: EnrollReport) -> None:
        vectors = np.stack([_unit(p[3].embedding, self.embedding_size) for p in pending])
        with self._store.transaction() as db:
            person_ids: dict[str, int] = {}
            for name in dict.fromkeys(p[0] for p in pending):
                row = self._store.person(name)
                extra = metadata.get(name)
                if row is None:
                    person_ids[name] = self._store.add_person(db, name, extra)
                else:
                    person_ids[name] = row["id"]
                    if extra:
                        merged = {**json.loads(row["metadata"]), **extra}
                        self._store.update_metadata(db, row["id"], merged)
            rows = [
                (
                    person_ids[name],
                    source,
                    digest,
                    json.dumps([round(float(v), 2) for v in face.box]),
                    float(face.score),
                    vector.tobytes(),
                    self.model_id,
                    _landmarks_json(face.landmarks),
                    photo,
                    crop,
                )
                for (name, source, digest, face, _n, crop, photo), vector in zip(
                    pending, vectors, strict=True
                )
            ]
            ids = self._store.add_faces(db, rows)
        index.add(vectors, ids)
        for (name, source, _digest, _face, n, *_), face_id in zip(pending, ids, strict=True):
            report.enrolled.append(Enrolled(name, source, face_id, n))

    # -- identification -----------------------------------------------------------------------

    def identify(
        self, image: ImageInput, k: int = DEFAULT_K, threshold: float | None = None
    ) -> list[IdentifiedFace]:
        """Every face in the photo with its `k` nearest people (distinct, nearest face each) and
        a decision: the best match's name if its distance <= threshold, else "unknown"."""
        model = self._require_model()
        faces = model.represent(image)
        if not faces:
            return []
        threshold = self.threshold if threshold is None else float(threshold)
        matches = self.search(np.stack([f.embedding for f in faces]), k)
        out = []
        for face, found in zip(faces, matches, strict=True):
            best = found[0] if found else None
            known = best is not None and best.distance <= threshold
            out.append(
                IdentifiedFace(
                    face=face,
                    name=best.name if known else UNKNOWN,
                    distance=None if best is None else best.distance,
                    threshold=threshold,
                    matches=found,
                )
            )
        return out

    def search(
        self, embeddings: np.ndarray, k: int = DEFAULT_K, *, per_person: bool = True
    ) -> list[list[Match]]:
        """Nearest gallery matches of each embedding (one vector, or n x d), nearest first.

        per_person: k distinct people, each with their nearest face (default); else the k
        nearest faces, whoever they belong to.
        """
        queries = np.asarray(embeddings, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.embedding_size:
            raise GalleryError(
                f"embeddings of shape {tuple(np.shape(embeddings))} do not fit this gallery "
                f"({self.embedding_size}-d, model {self.model_name!r})"
            )
        if not np.all(np.isfinite(queries)):
            raise GalleryError("embeddings contain NaN or infinite values")
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        if k < 1:
            raise ValueError(f"k must be at least 1; got {k}")
        with self._lock:
            index = self.index
            total = len(index)
            fetch = k if not per_person else min(total, 4 * k + 16)
            while True:
                distances, ids = index.search(queries, fetch)
                names = self._store.names_for(sorted({int(i) for i in ids.ravel() if i >= 0}))
                results = [
                    _collect(d, i, names, k, per_person)
                    for d, i in zip(distances, ids, strict=True)
                ]
                short = any(len(r) < k for r in results)
                if not per_person or not short or fetch >= total:
                    return results
                fetch = min(total, fetch * 4)

    # -- index --------------------------------------------------------------------------------

    @property
    def index(self) -> FaceIndex:
        if self._index is None:
            self.sync_index()
        return self._index

    @property
    def index_path(self) -> Path:
        return self.path.with_name(self.path.name + ".faiss")

    @property
    def _state_path(self) -> Path:
        return self.path.with_name(self.path.name + ".faiss.json")

    def sync_index(self) -> str:
        """Load the index, repairing or rebuilding it where it disagrees with the database.
        Returns (and stores in `index_status`) what was done."""
        with self._lock:
            count, id_sum, max_id = self._store.aggregate(model_id=self.model_id)
            state = IndexState.load(self._state_path)
            index, status = None, "rebuilt (no index file)"
            if state is not None and self.index_path.is_file():
                status = "rebuilt (stale index)"
                if state.model_id != self.model_id:
                    status = "rebuilt (index of another model)"
                elif (state.count, state.id_sum) == self._store.aggregate(
                    up_to=state.max_id, model_id=self.model_id
                )[:2]:
                    try:
                        index = FaceIndex.load(self.index_path, trained_on=state.trained_on)
                    except Exception as exc:  # a corrupt or truncated file is only a lost cache
                        log.warning("%s: unreadable index (%s); rebuilding", self.index_path, exc)
                        index, status = None, "rebuilt (unreadable index)"
                    if index is not None and (
                        len(index) != state.count or index.dim != self.embedding_size
                    ):
                        index, status = None, "rebuilt (index does not match its record)"
                    elif index is not None:
                        added = 0
                        for ids, vectors in self._store.embeddings(
                            after=state.max_id, model_id=self.model_id
                        ):
                            index.add(vectors, ids)
                            added += len(ids)
                        status = "loaded" if added == 0 else f"repaired (+{added} faces)"
            if index is not None and len(index) != count:
                index, status = None, "rebuilt (face count differs)"
            if index is not None and index.needs_rebuild():
                index, status = None, f"rebuilt ({len(index)} faces: index kind changes)"
            if index is None:
                index = self._build_index()
            self._index = index
            self.index_status = status
            if status != "loaded":
                log.info("%s: index %s", self.path, status)
                self._save_index()
            return status

    def rebuild_index(self) -> None:
        """Rebuild the FAISS index from the database and save it."""
        with self._lock:
            self._index = self._build_index()
            self.index_status = "rebuilt (on request)"
            self._save_index()

    def _build_index(self) -> FaceIndex:
        count = self._store.aggregate(model_id=self.model_id)[0]
        vectors = np.empty((count, self.embedding_size), np.float32)
        ids = np.empty(count, np.int64)
        filled = 0
        for chunk_ids, chunk in self._store.embeddings(model_id=self.model_id):
            n = min(len(chunk_ids), count - filled)  # a concurrent writer may have added rows
            ids[filled : filled + n], vectors[filled : filled + n] = chunk_ids[:n], chunk[:n]
            filled += n
        return FaceIndex.build(vectors[:filled], ids[:filled], self.embedding_size)

    def _save_index(self) -> None:
        index = self._index
        if index is None:
            return
        if index.needs_rebuild():
            index = self._index = self._build_index()
        count, id_sum, max_id = self._store.aggregate(model_id=self.model_id)
        if len(index) != count:  # another process changed the gallery meanwhile
            index = self._index = self._build_index()
            count, id_sum, max_id = self._store.aggregate(model_id=self.model_id)
        index.save(self.index_path)
        IndexState(self.model_id, count, id_sum, max_id, index.kind, index.trained_on).save(
            self._state_path
        )

    # -- helpers ------------------------------------------------------------------------------

    def _require_model(self) -> EmbeddingModel:
        if self.model is None:
            raise GalleryError(
                f"{self.path}: open the gallery with its model ({self.model_name!r}) to enrol "
                "or identify photos"
            )
        return self.model

    def _person_row(self, name: str):
        row = self._store.person(name)
        if row is None:
            raise GalleryError(f"no person named {name!r} in the gallery")
        return row

    def _person_id(self, name: str) -> int:
        return int(self._person_row(name)["id"])


# -- module helpers -------------------------------------------------------------------------


def most_prominent(faces: Sequence[Face], image_shape: Sequence[int]) -> Face:
    """The face to enrol from a photo with several: the largest (the most central on a tie), as
    `FaceNet.align` chooses."""
    from ..detect.align import most_prominent as choose

    return choose(faces, image_shape)


def _collect(distances, ids, names, k: int, per_person: bool) -> list[Match]:
    out: list[Match] = []
    people: set[int] = set()
    for d, i in zip(distances, ids, strict=True):
        if i < 0 or int(i) not in names:
            continue  # faiss padding, or a face removed by another process
        person_id, name = names[int(i)]
        if per_person and person_id in people:
            continue
        people.add(person_id)
        out.append(Match(name, float(d), int(i), person_id))
        if len(out) == k:
            break
    return out


def _open_set_threshold(model) -> float:
    info = model.info
    if hasattr(info, "open_set_threshold"):
        return float(info.open_set_threshold)
    return float(info.verification_threshold)


def _catalog_name(model) -> str | None:
    """The bundled model's name when `model` was loaded by one (`FaceNet.load("dlib-resnet")`)."""
    from ..catalog import MODELS

    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name in MODELS else None


def _model_reference(source: str) -> str:
    """A bundled model's name as is (it survives upgrades), else the file's absolute path."""
    from ..catalog import MODELS

    if not source or source in MODELS:
        return source
    return str(Path(source).resolve())


def _check_model(model) -> None:
    for attr in ("model_id", "info", "represent"):
        if not hasattr(model, attr):
            raise GalleryError(f"not a face model (no {attr!r}): {type(model).__name__}")


def _unit(embedding, size: int) -> np.ndarray:
    v = np.asarray(embedding, dtype=np.float32).reshape(-1)
    if v.shape[0] != size or not np.all(np.isfinite(v)):
        raise GalleryError(
            f"the model returned an embedding of shape {v.shape}; expected ({size},)"
        )
    norm = float(np.linalg.norm(v))
    if not math.isfinite(norm) or norm == 0:
        raise GalleryError("the model returned a zero embedding")
    return v / norm


def _landmarks_json(landmarks) -> str | None:
    if landmarks is None:
        return None
    return json.dumps(np.round(np.asarray(landmarks, np.float64), 3).tolist())


def _file_hash(path: Path, source: str) -> str:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{source}: is a directory, not an image") from None
    except OSError as exc:
        raise ImageError(f"{source}: cannot read ({exc.strerror})") from None


def _pixel_hash(image: np.ndarray) -> str:
    digest = hashlib.sha256(f"pixels:{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _person(row) -> Person:
    return Person(
        row["id"], row["name"], json.loads(row["metadata"]), row["face_count"], row["created"]
    )


def _face_record(row) -> FaceRecord:
    box = tuple(json.loads(row["box"])) if row["box"] else None
    return FaceRecord(
        id=row["id"],
        person=row["person"],
        source=row["source"],
        content_hash=row["content_hash"],
        box=box,
        score=row["score"],
        model_id=row["model_id"],
        created=row["created"],
        embedding=np.frombuffer(row["embedding"], dtype=np.float32).copy(),
        landmarks=json.loads(row["landmarks"]) if row["landmarks"] else None,
        photo=row["photo"],
    )

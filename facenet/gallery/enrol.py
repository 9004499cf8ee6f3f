"""Enrolment: photos (or ready embeddings) into the gallery (a mixin of `Gallery`).

Each photo is read, hashed (duplicates are skipped), embedded, and its most prominent face kept
with a crop (so another model can re-embed it); each batch is one transaction, then the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import GalleryChangedError, GalleryError, ImageError
from ..images import (
    IMAGE_SUFFIXES,
    MAX_BATCH_SIZE,
    ImageInput,
    check_batch_size,
    describe,
    image_list,
    load_image,
    require_utf8_path,
)
from ..types import Face
from .crops import cut_crop
from .index import Index
from .results import Enrolled, EnrollReport, Skipped
from .validation import check_metadata, check_name

log = logging.getLogger(__name__)


class EnrolMixin:
    """`enroll`, `enroll_folder` and `add_embeddings`."""

    def enroll(
        self,
        name: str,
        images: ImageInput | Iterable[ImageInput],
        metadata: dict | None = None,
        *,
        batch_size: int = 32,
        progress: bool = False,
        on_batch: Callable[[EnrollReport], None] | None = None,
        labels: Sequence[str] | None = None,
        person_id: int | None = None,
    ) -> EnrollReport:
        """Enrol the most prominent face of each photo as `name` (created if new; `metadata` is
        merged into theirs). Photos already in the gallery (same content hash), photos with no
        face and unreadable files are skipped and reported, never raised. `on_batch(report so
        far)` runs after each batch is stored, so a caller can report as it goes (an interrupted
        enrolment has then reported every face it kept). `labels` name in-memory photos (a
        server's uploads by file name): recorded as `upload:LABEL` (`images.describe`), a
        label only, never opened as a file. batch_size: 1..1024 (`MAX_BATCH_SIZE`). `person_id`:
        only into that existing person, never a new one: a batch is not stored, and
        GalleryChangedError raised, once `name` is no longer theirs (removed or renamed while
        the photos were read, by a server's concurrent request)."""
        check_batch_size(batch_size, MAX_BATCH_SIZE)
        name = check_name(name)
        metadata = check_metadata(metadata)
        items = [(name, source) for source in image_list(images)]
        metadata_by_name = {name: metadata} if metadata else {}
        expected = None if person_id is None else (name, person_id)
        return self._enroll(
            items, metadata_by_name, batch_size, progress, on_batch, labels, expected
        )

    def enroll_folder(
        self,
        root: str | os.PathLike,
        *,
        batch_size: int = 32,
        progress: bool = True,
        on_batch: Callable[[EnrollReport], None] | None = None,
    ) -> EnrollReport:
        """Enrol a folder-per-identity tree: `root/<name>/<photo>`; the folder name is the
        person's name. Files already enrolled (by content hash) are skipped, so an interrupted
        enrolment is resumed by running it again. `on_batch` as in `enroll`; photos loose in
        the root are added to the report's skipped ones after the last batch."""
        check_batch_size(batch_size, MAX_BATCH_SIZE)  # before the folder is read
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
            items.extend((name, file) for file in sorted(folder.iterdir()) if _is_image_file(file))
        if not items:
            raise GalleryError(f"{root}: no images found in its sub-folders (one per person)")
        report = self._enroll(items, {}, batch_size, progress, on_batch)
        loose = [f for f in sorted(root.iterdir()) if _is_image_file(f)]
        why = "directly in the root folder: only sub-folders name people (move it into one)"
        report.skipped.extend(Skipped("", str(f), why) for f in loose)
        return report

    def add_embeddings(
        self,
        name: str,
        embeddings: np.ndarray,
        sources: Sequence[str] | None = None,
        metadata: dict | None = None,
        *,
        faces: Sequence[Face | None] | None = None,
    ) -> list[int]:
        """Add ready embeddings (n x d, of the gallery's model) as faces of `name`, in one
        transaction; returns their face ids. For callers that embed photos themselves
        (batched `FaceNet.embed`, an embedding cache, a `facenet embed` output); no duplicate
        check is made. With `faces` (each face's box, score and landmarks in its photo), a
        source that is a local photo file is kept as the face's photo with its content hash,
        so `migrate` can embed it again with another model and enrolling that photo later is a
        duplicate; without them, another model can never re-embed the face."""
        name = check_name(name)
        metadata = check_metadata(metadata)
        vectors = self._ready_vectors(embeddings)
        sources = list(sources) if sources is not None else [None] * len(vectors)
        faces = list(faces) if faces is not None else [None] * len(vectors)
        if not len(sources) == len(faces) == len(vectors):
            raise GalleryError(
                f"{len(vectors)} embeddings but {len(sources)} sources and {len(faces)} faces"
            )
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
                    (person_id, *self._ready_row(v, source, face))
                    for v, source, face in zip(vectors, sources, faces, strict=True)
                ]
                ids = self._store.add_faces(db, rows)
            index.add(vectors, ids)
            self._save_index()
        return ids

    def _ready_vectors(self, embeddings) -> np.ndarray:
        """Ready embeddings as unit rows of this gallery's size, or a GalleryError."""
        vectors = np.asarray(embeddings, dtype=np.float32)
        vectors = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
        if vectors.ndim != 2 or vectors.shape[1] != self.embedding_size:
            raise GalleryError(
                f"embeddings of shape {np.shape(embeddings)} do not fit this gallery "
                f"({self.embedding_size}-d)"
            )
        if not len(vectors):
            return vectors
        if not np.all(np.isfinite(vectors)):  # (not "the model returned" one: the caller did)
            raise GalleryError("embeddings contain NaN or infinite values")
        zero = np.flatnonzero(~np.any(vectors, axis=1))
        if len(zero):
            raise GalleryError(f"embedding {int(zero[0])} is all zeros (not a face vector)")
        return np.stack([_unit(v, self.embedding_size) for v in vectors])

    def _ready_row(self, vector: np.ndarray, source: str | None, face: Face | None) -> tuple:
        """A ready embedding's faces row after the person id: its photo (and that file's
        hash) when the face's place in a local photo file is known, else none."""
        photo = _local_photo(source) if face is not None else None
        if photo is None:
            digest = hashlib.sha256(b"embedding:" + vector.tobytes()).hexdigest()
            box = score = landmarks = None
        else:
            digest = _file_hash(photo, source)
            box = json.dumps([round(float(v), 2) for v in face.box])
            score, landmarks = float(face.score), _landmarks_json(face.landmarks)
        return (source, digest, box, score, vector.tobytes(), self.model_id, landmarks,
                None if photo is None else str(photo), None)  # fmt: skip

    def _enroll(
        self,
        items: Sequence[tuple[str, ImageInput]],
        metadata: dict[str, dict],
        batch_size: int,
        progress: bool,
        on_batch: Callable[[EnrollReport], None] | None = None,
        labels: Sequence[str] | None = None,
        expected: tuple[str, int] | None = None,
    ) -> EnrollReport:
        if labels is not None and len(labels) != len(items):
            raise GalleryError(f"{len(items)} photos but {len(labels)} labels")
        model = self._require_model()
        report = EnrollReport()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), unit="photo", desc="enrolling")
        seen: set[str] = set()
        try:
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                pending = []  # (name, source, digest, face, n_faces, crop, photo)
                for offset, (name, item) in enumerate(batch):
                    number = start + offset
                    source = describe(item, number, None if labels is None else labels[number])
                    result = self._embed_one(model, item, source, seen)
                    if isinstance(result, str):
                        report.skipped.append(Skipped(name, source, result))
                    else:
                        pending.append((name, source, *result))
                    if bar is not None:
                        bar.update(1)
                with self._lock:  # read outside it: check what may have changed meanwhile
                    self._check_current(model)
                    if expected is not None:
                        self._check_person(*expected)
                    pending = self._unstored(pending, report)
                    if pending:
                        self._insert(pending, metadata, self.index, report)
                if on_batch is not None:
                    on_batch(report)
        finally:
            if bar is not None:
                bar.close()
            self._save_index_if_open()
        for note in report.notes:
            log.info(note)
        return report

    def _embed_one(self, model, item, source: str, seen: set[str]):
        """(digest, face, number of faces, crop, photo path) for one photo, or the reason to
        skip it. The crop and the photo's absolute path let another model re-embed the face."""
        photo = None
        try:
            if isinstance(item, (str, os.PathLike)):
                require_utf8_path(source)  # stored as text, as is the resolved path
                digest = _file_hash(Path(item), source)
                image = load_image(item, source)
                photo = str(Path(item).resolve())
                require_utf8_path(photo, source)
            else:
                image = load_image(item, source)
                digest = _pixel_hash(image)
        except ImageError as exc:
            return f"unreadable: {exc}"
        with self._lock:
            owner = self._store.hash_owner(digest) if digest not in seen else "this enrolment"
        if owner is not None:
            return _duplicate(owner)
        try:
            faces = model.represent(image)  # outside the lock: other calls go on meanwhile
        except ImageError as exc:
            return f"unreadable: {exc}"
        if not faces:
            return "no face found"
        seen.add(digest)
        face = most_prominent(faces, image.shape)
        return digest, face, len(faces), cut_crop(image, face.box), photo

    def _check_person(self, name: str, person_id: int) -> None:
        """Before storing photos read for person `person_id` (call under the lock): `name` is
        still theirs, else GalleryChangedError (storing would make a new person of that name)."""
        row = self._store.person(name)
        if row is None or row["id"] != person_id:
            raise GalleryChangedError(
                f"{name!r} was removed or renamed while photos were being read for them; "
                "enrol them again",
                self.path,
            )

    def _unstored(self, pending: list, report: EnrollReport) -> list:
        """`pending` less the photos another call stored while these were read (skipped as
        duplicates)."""
        out = []
        for item in pending:
            owner = self._store.hash_owner(item[2])
            if owner is None:
                out.append(item)
            else:
                report.skipped.append(Skipped(item[0], item[1], _duplicate(owner)))
        return out

    def _insert(self, pending, metadata, index: Index, report: EnrollReport) -> None:
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


def _duplicate(owner: str) -> str:
    """Why a photo already in the gallery is skipped."""
    return f"duplicate: already enrolled (as {owner})"


def most_prominent(faces: Sequence[Face], image_shape: Sequence[int]) -> Face:
    """The face to enrol from a photo with several: the largest (the most central on a tie), as
    `FaceNet.align` chooses."""
    from ..detect.align import most_prominent as choose

    return choose(faces, image_shape)


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


def _local_photo(source: str | None) -> Path | None:
    """The absolute path of a ready embedding's source when it is a local photo file (a
    source `PATH#K`, the K-th face of a photo, names PATH), else None (a URI, a label)."""
    if not source or "://" in source:
        return None
    for candidate in (source, source.rsplit("#", 1)[0]):
        if Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def _pixel_hash(image: np.ndarray) -> str:
    digest = hashlib.sha256(f"pixels:{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES

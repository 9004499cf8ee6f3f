"""A persistent face gallery: enrol people, then identify every face in a photo.

Storage is one SQLite file (the truth: people, faces, embeddings, which model made them) and a
search index (an `Index` backend, FAISS by default: `<gallery>.faiss`, a cache). Each batch of
enrolled faces is written in one transaction, and the index records which faces it holds
(count, sum and maximum of their ids): on open, an index that is missing or disagrees with the
database is repaired (faces added since it was saved) or rebuilt, so a process killed at any
point leaves a usable gallery.

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

import logging
import os
import sqlite3
import threading
from pathlib import Path

from ..errors import GalleryChangedError, GalleryError
from ..metadata import DEFAULT_THRESHOLD, embedding_origin, same_embeddings
from .editing import EditingMixin
from .enrol import EnrolMixin
from .index import DEFAULT_BACKEND, Index, open_index
from .search import SearchMixin
from .store import Store
from .thresholds import ThresholdMixin, open_set_threshold
from .validation import EmbeddingModel, check_model, gallery_path

log = logging.getLogger(__name__)


class Gallery(EditingMixin, EnrolMixin, SearchMixin, ThresholdMixin):
    """A persistent gallery of people and their face embeddings, with identification.

    Create with `Gallery.create(path, model)`; reopen with `Gallery.open(path, model)`. The model
    is needed to enrol and identify photos; listing, renaming, merging, removing and `search`
    with ready embeddings work without one. A model other than the gallery's is refused.
    Use as a context manager, or call `close()`, to save the index. Enrolment, search and
    editing and the identification threshold live in the mixins (`enrol.py`, `search.py`,
    `editing.py`, `thresholds.py`); this module holds the lifecycle and the index.
    """

    def __init__(
        self,
        path: Path,
        store: Store,
        model: EmbeddingModel | None,
        index: str | None = None,
        uri: str | None = None,
    ):
        self.path = path
        self._store = store
        self._lock = threading.RLock()
        meta = store.meta()
        self.model_id: str = meta["model_id"]
        #: The model whose embeddings the gallery's model makes: the one it records as a
        #: calibrated copy (`facenet calibrate`), else itself. See `accepts`.
        self.embeddings_of: str = meta.get("embeddings_of") or self.model_id
        self.model_name: str = meta.get("model_name", "")
        self.model_path: str = meta.get("model_path", "")
        self.embedding_size: int = int(meta["embedding_size"])
        self._stored_threshold = float(meta.get("threshold", DEFAULT_THRESHOLD))
        calibrated = meta.get("calibrated_threshold")
        #: Set by `facenet gallery calibrate` on this gallery's own faces; overrides the model's.
        self.calibrated_threshold: float | None = None if calibrated is None else float(calibrated)
        self.model = None
        #: The index backend (`index.BACKENDS`): the one given, else the one the gallery records.
        self.index_backend: str = index or meta.get("index_backend", DEFAULT_BACKEND)
        #: Where the backend's server is (Milvus), else None for its local default.
        recorded = self.index_backend == meta.get("index_backend", DEFAULT_BACKEND)
        self.index_uri: str | None = uri or (meta.get("index_uri") if recorded else None) or None
        self._index: Index = open_index(
            self.index_backend, path, self.embedding_size, self.index_uri
        )
        self._index_synced = False
        self._seen_version = -1  # the store's data_version when the index was last synced
        #: How the index was obtained on open: "loaded", "repaired (+N faces)" or "rebuilt (...)".
        self.index_status = "not loaded"
        self._closed = False
        if model is not None:
            self.attach(model)

    # -- lifecycle ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        model: EmbeddingModel,
        model_path: str | os.PathLike = "",
        *,
        index: str = DEFAULT_BACKEND,
        uri: str | None = None,
    ) -> Gallery:
        """Create an empty gallery at `path` (a SQLite file) for `model`'s embeddings.

        The model (`model_path`, else the bundled model's name, else its file) is recorded so
        that the CLI can reload it later; so are the `index` backend when it is not the default
        and its server's `uri` (Milvus; none: Milvus Lite in a file beside the gallery).
        """
        path = gallery_path(path)
        if path.exists():
            raise GalleryError(f"{path}: already exists (open it, or choose another path)")
        if not path.parent.exists():
            raise GalleryError(f"{path.parent}: no such directory")
        check_model(model)
        source = os.fspath(
            model_path or _catalog_name(model) or getattr(model, "source", None) or ""
        )
        try:
            store = Store(path)
        except sqlite3.Error as exc:  # e.g. a folder that cannot be written, or is a file
            raise GalleryError(f"{path}: cannot create gallery ({exc})") from None
        try:
            store.migrate()
            with store.transaction() as db:
                store.set_meta(
                    db,
                    {
                        "model_id": model.model_id,
                        "embeddings_of": embedding_origin(model),
                        "model_name": getattr(model.info, "name", ""),
                        "embedding_size": int(model.info.embedding_size),
                        "threshold": open_set_threshold(model),
                        # (what a migration's report and a people library compare with)
                        "verification_threshold": float(model.info.verification_threshold),
                        "model_path": _model_reference(source),
                        **({} if index == DEFAULT_BACKEND else {"index_backend": index}),
                        **({"index_uri": uri} if uri else {}),
                    },
                )
            return cls(path, store, model, index, uri)
        except BaseException:
            store.close()
            for leftover in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)  # no half-made gallery (e.g. a bad backend)
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        model: EmbeddingModel | None = None,
        *,
        index: str | None = None,
        uri: str | None = None,
    ) -> Gallery:
        """Open an existing gallery; with `model`, check it is the gallery's model and load the
        index (repairing or rebuilding it from the database if needed). `index` and `uri`
        override the backend (and its server) the gallery records."""
        path = gallery_path(path)
        if not path.is_file():
            raise GalleryError(f"{path}: no such gallery (create it with `facenet gallery create`)")
        _check_database_file(path)
        store = None
        try:
            store = Store(path)
            if not store.is_gallery():
                raise GalleryError(f"{path}: not a facenet gallery")
            store.migrate()
            if "model_id" not in store.meta():
                raise GalleryError(f"{path}: gallery records no model (incomplete creation?)")
        except Exception as exc:
            if store is not None:
                store.close()
            if isinstance(exc, GalleryError):
                raise
            raise GalleryError(f"{path}: cannot open gallery ({exc})") from None
        return cls(path, store, model, index, uri)

    def accepts(self, model: EmbeddingModel) -> bool:
        """Whether `model` makes this gallery's embeddings: the gallery's model, a calibrated copy
        of it, or the model it is a calibrated copy of (`facenet calibrate` writes the same
        weights into another file, so another id, recording the first one: `embedding_origin`)."""
        if int(model.info.embedding_size) != self.embedding_size:
            return False
        return same_embeddings(
            model.model_id, embedding_origin(model), self.model_id, self.embeddings_of
        )

    def attach(self, model: EmbeddingModel) -> None:
        """Use `model` for enrolment and identification; the gallery must `accept` it. Its
        faces stay recorded under the gallery's model id."""
        check_model(model)
        if not self.accepts(model):
            raise GalleryError(
                f"{self.path}: this gallery holds embeddings of model {self.model_name!r} "
                f"(id {self.model_id[:12]}, {self.embedding_size}-d); the given model is "
                f"{getattr(model.info, 'name', '?')!r} (id {model.model_id[:12]}, "
                f"{model.info.embedding_size}-d). Use the gallery's model (or a copy `facenet "
                "calibrate` wrote of it), or re-embed its faces with this one: `facenet gallery "
                "migrate GALLERY --model MODEL`"
            )
        self.model = model
        self.sync_index()

    def use_lock(self, lock) -> None:
        """Guard the gallery with its owner's lock instead of its own (a server's, held by all
        its gallery requests): reads and writes of the database and index hold it, detection
        and embedding do not. Call before other threads use the gallery."""
        self._lock = lock

    def _check_current(self, model) -> None:
        """Before storing what `model` read outside the lock (call under it): the gallery is
        still open and still uses that model, else GalleryChangedError."""
        if self._closed or self.model is not model:
            raise GalleryChangedError(
                "the gallery was closed or moved to another model while photos were being read; "
                "add them again",
                self.path,
            )

    def close(self) -> None:
        """Save the index and close the database; closing again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._save_index()
            self._store.close()
            if hasattr(self._index, "close"):  # a backend with a connection (Milvus)
                self._index.close()
            self._closed = True

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._closed:
            return f"Gallery({str(self.path)!r}, closed)"
        return (
            f"Gallery({str(self.path)!r}, people={self._store.person_count()}, faces={len(self)})"
        )

    # -- index --------------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        """The search index, synced with the database on first use and again whenever another
        process has committed to the gallery since (a CLI enrolment beside a running server)."""
        with self._lock:
            if not self._index_synced or self._changed_elsewhere():
                self.sync_index()
            return self._index

    def sync_index(self) -> str:
        """Load the index, repairing or rebuilding it where it disagrees with the database.
        Returns (and stores in `index_status`) what was done."""
        with self._lock:
            self._seen_version = self._store.data_version()
            status = self._index.sync(self._store, self.model_id)
            self._index_synced = True
            self.index_status = status
            if status != "loaded":
                log.info("%s: index %s", self.path, status)
            return status

    def _changed_elsewhere(self) -> bool:
        """Whether another connection committed since the index was synced: this process's
        index then misses their faces (and holds faces they removed)."""
        return self._store.data_version() != self._seen_version

    def rebuild_index(self) -> None:
        """Rebuild the index from the database and save it."""
        with self._lock:
            self._seen_version = self._store.data_version()
            self._index.rebuild(self._store, self.model_id)
            self._index_synced = True
            self.index_status = "rebuilt (on request)"
            self._save_index()

    def _save_index(self) -> None:
        """Save the index with a record of what it holds; re-synced first if another process
        changed the gallery, so that the record never describes faces the index lacks."""
        if self._index_synced:
            if self._changed_elsewhere():
                self.sync_index()
            self._index.save(self._store, self.model_id)

    def _save_index_if_open(self) -> None:
        """After photos read outside the lock: a migration may have closed the gallery since."""
        with self._lock:
            if not self._closed:
                self._save_index()

    # -- helpers ------------------------------------------------------------------------------

    def _require_model(self) -> EmbeddingModel:
        if self.model is None:
            raise GalleryError(
                f"{self.path}: open the gallery with its model ({self.model_name!r}) to enrol "
                "or identify photos"
            )
        return self.model


# -- module helpers -------------------------------------------------------------------------


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_database_file(path: Path) -> None:
    """A GalleryError unless `path` starts as a SQLite database does. Checked before SQLite
    opens it: SQLite takes an empty file for a new database and writes its header into it
    (opening `photo.jpg` of 0 bytes as a gallery turned it into a 4 KiB database file)."""
    try:
        with path.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise GalleryError(f"{path}: cannot open gallery ({exc.strerror or exc})") from None
    if header != _SQLITE_HEADER:
        raise GalleryError(f"{path}: not a facenet gallery")


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

"""A gallery's identification threshold: its own (calibrated on its named people, or set), else
its model's. `Gallery` takes these methods from `ThresholdMixin`."""

from __future__ import annotations

import math

import numpy as np

from ..errors import GalleryError
from ..metadata import DEFAULT_THRESHOLD, as_float, check_threshold
from .validation import EmbeddingModel, check_model


def open_set_threshold(model) -> float:
    """The threshold a model identifies at: its open-set one where it has one, else its
    verification threshold."""
    info = model.info
    if hasattr(info, "open_set_threshold"):
        return float(info.open_set_threshold)
    return float(info.verification_threshold)


class ThresholdMixin:
    """The threshold, its calibration and its setting, for `Gallery` (which provides `_store`,
    `_lock`, `model`, `path`, `accepts` and the recorded model's fields)."""

    _threshold_version: int | None = None  # the data_version the threshold was read at
    _meta_generation = 0  # moves each time the meta table is read again (`meta_generation`)

    @property
    def calibrated_threshold(self) -> float | None:
        """The gallery's own identification threshold (`calibrate`, `set_threshold`), None when
        it has none. Read again from the database when another connection has committed since
        (`facenet gallery set-threshold` beside a running server): one `PRAGMA data_version`
        per read, the meta table only when it moved."""
        self._refresh_threshold()
        return self._calibrated_threshold

    @calibrated_threshold.setter
    def calibrated_threshold(self, value: float | None) -> None:
        self._calibrated_threshold = value
        self._threshold_version = None  # the next read compares from then on

    def _refresh_threshold(self) -> None:
        """Take the stored threshold again if another connection committed since it was read
        (SQLite's data_version moves only for their commits, never for this one's)."""
        if getattr(self, "_closed", False):
            return
        with self._lock:
            version = self._store.data_version()
            if version == self._threshold_version:
                return
            stored = self._store.meta().get("calibrated_threshold")
            self._calibrated_threshold = None if stored is None else float(stored)
            self._threshold_version = version
            self._meta_generation += 1

    def meta_generation(self) -> int:
        """A number that moves when the meta table may have changed since it was last asked:
        another connection committed, or this gallery changed its threshold. Other settings
        kept there (the people library's) are read again when it moves, as the threshold is:
        one `PRAGMA data_version` per call, shared with the threshold's check."""
        self._refresh_threshold()
        return self._meta_generation

    @property
    def threshold(self) -> float:
        """Squared-L2 distance at or below which a match is a known person: the gallery's own
        calibration if it has one, else the model's identification threshold."""
        if self.calibrated_threshold is not None:
            return self.calibrated_threshold
        if self.model is not None:
            return open_set_threshold(self.model)
        return self._stored_threshold

    def calibrate(self, far: float = 0.01, *, save: bool = True) -> dict:
        """Choose the identification threshold on this gallery's own faces for a per-probe
        false-accept rate `far` in (0, 1) (see `facenet.evaluate.openset.calibrate_gallery`);
        with `save`, identification uses it from now on.

        Only the searched faces of named people take part: identification never answers with
        a people-library face (unnamed cluster or unassigned) nor a face a migration kept on an
        old model, so those are not strangers or genuine probes it could meet. A target of 0 is
        refused: no finite sample of strangers can show a rate of 0, so the threshold would be
        an artefact of the nearest pair."""
        from ..evaluate.openset import calibrate_gallery

        rate = as_float(far)  # ("x" failed inside a comparison with a TypeError)
        if not 0 < rate < 1:
            raise GalleryError(f"the false-accept rate must be in (0, 1); got {far!s:.40}")
        far = rate
        vectors, labels = self._named_faces()
        if len(set(labels.tolist())) < 2:
            raise GalleryError(f"{self.path}: calibration needs at least two named people")
        needed = math.ceil(1 / far)
        if len(labels) < needed:  # fewer strangers than it takes to see one false accept
            raise GalleryError(
                f"{self.path}: measuring a {far:.2%} false-accept rate needs at least {needed} "
                f"faces; the gallery has {len(labels)} (of named people; enrol more, or give a "
                "larger --far)"
            )
        result = calibrate_gallery(vectors, labels, far)
        if result["false_accept_rate"] > far:  # strangers at distance 0: duplicate faces
            raise GalleryError(
                f"{self.path}: no threshold keeps the false-accept rate at {far:.2%}: "
                f"{result['false_accept_rate']:.1%} of the faces are identical to a face of "
                "another person (remove the duplicates, or give a larger --far)"
            )
        result["previous_threshold"] = self.threshold
        if save:
            with self._lock, self._store.transaction() as db:
                self._store.set_meta(db, {"calibrated_threshold": result["threshold"]})
            self.calibrated_threshold = result["threshold"]
        return result

    def set_threshold(self, threshold: float | None) -> None:
        """Make `threshold` (a squared-L2 distance in [0, 4]) this gallery's own identification
        threshold, as `calibrate` stores one: it wins over the model's from now on. None drops
        it: the model's threshold applies again.

        The way a later `facenet calibrate` of the model reaches the gallery whoever opens it:
        the gallery takes the calibrated copy as its model (`accepts`), but keeps its recorded
        model, which a caller that names none uses (`threshold_of`)."""
        if threshold is not None:
            try:
                threshold = check_threshold(threshold, DEFAULT_THRESHOLD)
            except ValueError as exc:
                raise GalleryError(str(exc)) from None
        with self._lock, self._store.transaction() as db:
            db.execute("DELETE FROM meta WHERE key = 'calibrated_threshold'")
            if threshold is not None:
                self._store.set_meta(db, {"calibrated_threshold": threshold})
        self.calibrated_threshold = threshold

    def threshold_of(self, model: EmbeddingModel) -> float:
        """The identification threshold `model` carries, for `set_threshold`: GalleryError
        unless the gallery `accepts` it (its model, or a calibrated copy recording it) and it
        carries a calibrated threshold (`facenet calibrate` writes a copy with one)."""
        check_model(model)
        info, label = model.info, getattr(model, "source", None) or getattr(model.info, "name", "")
        if int(info.embedding_size) != self.embedding_size:
            raise GalleryError(
                f"{label}: makes {info.embedding_size}-d embeddings; {self.path} holds "
                f"{self.embedding_size}-d ones of {self.model_name!r} (not its model)"
            )
        if not self.accepts(model):
            raise GalleryError(
                f"{label}: neither {self.path}'s model {self.model_name!r} (id "
                f"{self.model_id[:12]}) nor a calibrated copy of it; give the threshold as VALUE "
                "to set it anyway"
            )
        if getattr(info, "threshold", None) is None and info.identification_threshold is None:
            raise GalleryError(
                f"{label}: carries no calibrated threshold (`facenet calibrate MODEL ... -o OUT` "
                "writes a copy with one)"
            )
        return open_set_threshold(model)

    def _named_faces(self) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, person ids) of the searched faces of named people: what calibration
        measures. Raises GalleryError when there are none."""
        vectors, labels = [], []
        for chunk_ids, chunk in self._store.embeddings(model_id=self.model_id):
            owners = self._store.names_for(chunk_ids.tolist())
            named = np.array([int(i) in owners for i in chunk_ids], dtype=bool)
            vectors.append(chunk[named])
            labels.extend(owners[int(i)][0] for i in chunk_ids[named])
        if not labels:
            raise GalleryError(f"{self.path}: no faces to calibrate on (only named people count)")
        return np.concatenate(vectors), np.array(labels)

"""Move a gallery to another model without re-enrolling anyone: `migrate`, `rollback`, `prune`.

Every face is re-embedded by the target model into `face_embeddings`, beside the active
embeddings (`faces.embedding`), which identification keeps using meanwhile. A face is re-embedded
from its photo when the file is still there with the same content (sha256), else from the crop
the gallery keeps (`crops.py`); a face with neither keeps its old embedding and is flagged (it is
left out of the new model's index, listed by the report, never dropped; when that is every
face, the switch is refused, see `refusal`). Each batch is one transaction, so a killed
migration leaves the gallery untouched and resumes where it stopped.

The switch is one transaction: the active embeddings are kept as the previous model's, the new
ones become active, the gallery's model record changes. `rollback` is a migration back to the
previous model, reusing the kept embeddings (only faces enrolled since need that model);
`prune` deletes every embedding of a model other than the active one. People, names, merges,
removals and metadata live in other tables and are never touched.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FaceNetError, GalleryError
from ..images import MAX_BATCH_SIZE, check_batch_size
from ..metadata import embedding_origin, same_embeddings
from .migrate_report import MigrationReport, build_report
from .reembed import reembed_face
from .store import Store

log = logging.getLogger(__name__)

#: Meta keys describing the gallery's model; `previous_` + key describes the one before a switch.
MODEL_KEYS = (
    "model_id", "model_name", "model_path", "embedding_size", "threshold", "verification_threshold",
    "embeddings_of",
)  # fmt: skip


@dataclass(frozen=True)
class Target:
    """The model a gallery moves to: its record, and the model itself when faces need it."""

    model_id: str
    name: str
    path: str
    embedding_size: int
    #: Open-set (identification) threshold, what the gallery decides with; and the pair one.
    threshold: float
    verification_threshold: float | None = None
    #: The model whose embeddings it makes, as a calibrated copy records it ("": itself).
    embeddings_of: str = ""
    model: object = field(default=None, compare=False)

    @classmethod
    def of(cls, model, path: str = "") -> Target:
        """The record of `model`, as `Gallery.create` makes it: `path` (what the user named it
        by), else its catalog name, else its file; its open-set threshold."""
        from .gallery import _model_reference
        from .thresholds import open_set_threshold

        source = os.fspath(
            path or getattr(model, "name", None) or getattr(model, "source", "") or ""
        )
        return cls(
            model.model_id,
            getattr(model.info, "name", ""),
            _model_reference(source),
            int(model.info.embedding_size),
            open_set_threshold(model),
            float(model.info.verification_threshold),
            embedding_origin(model),
            model,
        )

    def meta(self) -> dict[str, object]:
        return dict(zip(MODEL_KEYS, self.as_tuple(), strict=True))

    def as_tuple(self) -> tuple:
        return (
            self.model_id, self.name, self.path, self.embedding_size, self.threshold,
            "" if self.verification_threshold is None else self.verification_threshold,
            self.embeddings_of,
        )  # fmt: skip


class Interrupted(Exception):
    """The caller asked the migration to stop between two batches (all done so far is kept)."""


def previous_target(store: Store) -> Target | None:
    """The model the gallery used before its last switch, while its embeddings are kept."""
    meta = store.meta()
    if "previous_model_id" not in meta:
        return None
    get = {k: meta.get(f"previous_{k}", "") for k in MODEL_KEYS}
    verification = get["verification_threshold"]
    return Target(
        get["model_id"], get["model_name"], get["model_path"], int(get["embedding_size"]),
        float(get["threshold"]), float(verification) if verification else None,
        get["embeddings_of"],
    )  # fmt: skip


def pending_count(store: Store, model_id: str) -> int:
    """Faces that have no embedding (nor a recorded failure) of `model_id` yet."""
    return int(
        store.db.execute(_PENDING.format(cols="COUNT(*)"), (model_id, model_id)).fetchone()[0]
    )


_PENDING = (
    "SELECT {cols} FROM faces f WHERE f.model_id != ? AND NOT EXISTS "
    "(SELECT 1 FROM face_embeddings e WHERE e.face_id = f.id AND e.model_id = ?)"
)


def embed_pending(
    store: Store,
    target: Target,
    *,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Embed every pending face with the target model, one transaction per batch; returns how
    many were done. `progress(done, total)` after each batch; `stop` set: raise Interrupted."""
    total, done, last = pending_count(store, target.model_id), 0, 0
    if total and target.model is None:
        raise GalleryError(
            f"{store.path}: {total} faces need the model {target.name!r} to be embedded; "
            "pass it with --model"
        )
    while True:
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped after {done} of {total} faces; run again to resume")
        rows = store.db.execute(
            _PENDING.format(cols="f.*") + " AND f.id > ? ORDER BY f.id LIMIT ?",
            (target.model_id, target.model_id, last, batch_size),
        ).fetchall()
        if not rows:
            return done
        results = [reembed_face(store, target.model, row) for row in rows]
        with store.transaction() as db:
            for row, (vector, origin, note, backfill) in zip(rows, results, strict=True):
                if db.execute("SELECT 1 FROM faces WHERE id = ?", (row["id"],)).fetchone() is None:
                    continue  # removed meanwhile
                db.execute(
                    "INSERT OR REPLACE INTO face_embeddings VALUES (?, ?, ?, ?, ?)",
                    (row["id"], target.model_id, vector, origin, note),
                )
                if backfill is not None:
                    landmarks, crop, photo = backfill
                    db.execute(
                        "UPDATE faces SET landmarks = COALESCE(landmarks, ?), "
                        "photo = COALESCE(photo, ?) WHERE id = ?",
                        (landmarks, photo, row["id"]),
                    )
                    store.set_crop(db, row["id"], crop)
        last = int(rows[-1]["id"])
        done += len(rows)
        if progress is not None:
            progress(done, max(total, done))


# -- the whole operation --------------------------------------------------------------------


def migrate(
    path: str | Path,
    target: Target,
    *,
    dry_run: bool = False,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> MigrationReport:
    """Re-embed the gallery at `path` with `target` (resumable), report what the switch would
    change, and switch unless `dry_run`. Raises Interrupted when `stop` is set mid-way."""
    check_batch_size(batch_size, MAX_BATCH_SIZE)
    store = open_store(path)
    try:
        model = target.path or target.name
        hint = f"; to use its threshold: facenet gallery set-threshold {path} --from-model {model}"
        reason = target_refusal(store, target.model_id, target.embeddings_of, model, hint)
        if reason is not None:
            raise GalleryError(f"{path}: {reason}")
        for _ in range(5):  # faces enrolled meanwhile are embedded before the switch
            embed_pending(store, target, batch_size=batch_size, progress=progress, stop=stop)
            report = build_report(store, target)
            if dry_run:
                return report
            reason = refusal(report)
            if reason is not None:
                _forget_failures(store, target)
                raise GalleryError(
                    f"{path}: {reason}; not switched, the gallery stays on {report.old_model!r}"
                )
            if _switch(store, target, report):
                return report
        raise GalleryError(f"{path}: faces keep being enrolled; try the switch again later")
    finally:
        store.close()


def target_refusal(
    store: Store, model_id: str, embeddings_of: str | None, model: str, hint: str = ""
) -> str | None:
    """Why a migration to the model `model_id` (recording `embeddings_of`; named `model`) is
    refused before any face is embedded, or None; without the gallery's path, so that the server
    answers with it up front. Refused: the model in use with no face flagged by a migration left
    to retry; a model making the gallery's embeddings (a calibrated copy of its model, or the
    model it is a copy of: every face would be re-embedded into the same vectors; `hint` follows
    that reason). The previous model (a rollback: its embeddings were kept) is not refused."""
    meta = store.meta()
    ours = (meta["model_id"], meta.get("embeddings_of"))
    if model_id == ours[0] and not pending_count(store, model_id):
        return f"the gallery already uses model {model!r}"
    if model_id in (ours[0], meta.get("previous_model_id")):
        return None
    if not same_embeddings(model_id, embeddings_of, *ours):
        return None
    return (
        f"{model} makes the same embeddings as the gallery's model {meta.get('model_name', '')!r} "
        f"(a calibrated copy): nothing to re-embed, the gallery takes it as it is{hint}"
    )


def refusal(report: MigrationReport) -> str | None:
    """Why the switch must not happen, or None: when every face of the gallery's people
    (named, or library clusters) would be flagged, the new model's index would be empty and the
    gallery would identify no one, so a switch could only hurt (with some faces flagged it goes
    ahead; those stay on the old model)."""
    if not report.faces or len(report.flagged) < report.faces:
        return None
    first = report.flagged[0]
    return (
        f"not one of the {report.faces} faces could be re-embedded with {report.new_model!r} "
        f"(face #{first['face_id']}: {first['note']})"
    )


def _forget_failures(store: Store, target: Target) -> None:
    """Drop the target's recorded failures after a refused switch, so that a later run tries
    those faces again (their photos may be back by then)."""
    with store.transaction() as db:
        db.execute(
            "DELETE FROM face_embeddings WHERE model_id = ? AND embedding IS NULL",
            (target.model_id,),
        )


def rollback(path: str | Path, model=None, **kwargs) -> MigrationReport:
    """Return to the model used before the last switch (its embeddings were kept). `model` is
    needed only for faces enrolled since the switch."""
    store = open_store(path)
    try:
        target = previous_target(store)
    finally:
        store.close()
    if target is None:
        raise GalleryError(f"{path}: nothing to roll back (no previous model is kept)")
    if model is not None:  # the previous model, or a calibrated copy of it
        previous = (target.model_id, target.embeddings_of)
        if not same_embeddings(model.model_id, embedding_origin(model), *previous):
            raise GalleryError(
                f"{path}: the previous model is {target.name!r} (id {target.model_id[:12]}); "
                f"the given model (id {model.model_id[:12]}) is neither it nor a calibrated copy "
                "of it"
            )
        target = dataclasses.replace(target, model=model)
    return migrate(path, target, **kwargs)


def model_for_rollback(path: str | Path, load: Callable[[str], object]) -> object | None:
    """The model a rollback needs: None when every face still has its previous embedding, else
    the previous model loaded (`load`) from its recorded file or name."""
    store = open_store(path)
    try:
        target = previous_target(store)
        pending = 0 if target is None else pending_count(store, target.model_id)
    finally:
        store.close()
    if target is None or not pending:
        return None
    try:
        return load(target.path or "")
    except FaceNetError:
        raise GalleryError(
            f"{path}: {pending} faces were enrolled since the switch and need the previous "
            f"model {target.name!r} (recorded as {target.path or 'no file'}); pass it with --model"
        ) from None


def prune(path: str | Path) -> int:
    """Delete the embeddings of every model but the active one (rollback is then impossible);
    returns how many went. Faces flagged by a migration keep theirs (they have no other)."""
    store = open_store(path)
    try:
        with store.transaction() as db:
            active = store.meta()["model_id"]
            count = db.execute(
                "DELETE FROM face_embeddings WHERE model_id != ?", (active,)
            ).rowcount
            db.execute("DELETE FROM face_embeddings WHERE model_id = ?", (active,))
            db.execute("DELETE FROM meta WHERE key LIKE 'previous_%'")
        return int(count)
    finally:
        store.close()


def open_store(path) -> Store:
    from .gallery import Gallery

    gallery = Gallery.open(path)  # checks it is a gallery and applies schema migrations
    gallery._store.close()
    return Store(Path(path))


def _carry_calibration(db, meta: dict, target: Target, report, values: dict) -> None:
    """The gallery's calibrated threshold belongs to its model: a rollback restores the previous
    one exactly, a switch uses the report's transferred one (none if not calibrated)."""
    calibrated = report.new_identification_threshold
    if meta.get("previous_model_id") == target.model_id:
        calibrated = meta.get("previous_calibrated_threshold")
    if meta["model_id"] != target.model_id:
        db.execute("DELETE FROM meta WHERE key = 'previous_calibrated_threshold'")
        if "calibrated_threshold" in meta:
            values["previous_calibrated_threshold"] = meta["calibrated_threshold"]
    db.execute("DELETE FROM meta WHERE key = 'calibrated_threshold'")
    if calibrated is not None:
        values["calibrated_threshold"] = float(calibrated)


def _switch(store: Store, target: Target, report: MigrationReport) -> bool:
    """The atomic switch; False when faces were enrolled since the report (embed them first).
    A people library's threshold moves with the model (`facenet.people.settings.switch`)."""
    from ..people.settings import switch as people_switch

    with store.transaction() as db:
        if pending_count(store, target.model_id):
            return False
        meta = store.meta()
        previous = {}
        if meta["model_id"] != target.model_id:  # (else: a retry of flagged faces)
            previous = {f"previous_{k}": meta.get(k, "") for k in MODEL_KEYS}
        db.execute(
            "INSERT OR REPLACE INTO face_embeddings "
            "SELECT id, model_id, embedding, 'kept', NULL FROM faces WHERE model_id != ?",
            (target.model_id,),
        )
        db.execute(
            "UPDATE faces SET embedding = e.embedding, model_id = e.model_id "
            "FROM face_embeddings e WHERE e.face_id = faces.id AND e.model_id = ? "
            "AND e.embedding IS NOT NULL",
            (target.model_id,),
        )
        db.execute("DELETE FROM face_embeddings WHERE model_id = ?", (target.model_id,))
        values = {**previous, **target.meta(), "last_migration": json.dumps(report.summary())}
        _carry_calibration(db, meta, target, report, values)
        library, report.people_library = people_switch(
            meta, target, values.get("calibrated_threshold")
        )
        store.set_meta(db, {**values, **library})
    return True

"""`/api/v1/gallery/migrate`: move the served gallery to another model as a background job.

POST starts a job (202; 409 while one runs), GET reports it (state, faces done of total, the
report, the error), DELETE asks it to stop between two batches (what was embedded is kept; a new
POST resumes). The server keeps answering meanwhile on the current model; when a job that is not
a dry run switches the gallery, the server moves to the new model with it.

Which models a client may name: a bundled model's name, or a model file in the folder of the
server's own model or of the bundled models (a client never makes the server load an arbitrary
file).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, PrivateAttr

from ..errors import FaceNetError
from .routes import ERRORS, WRITE_ERRORS, read_access, write_access
from .served_model import ServedModel
from .service import ApiError, Service

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".keras", ".h5", ".onnx", ".tflite")


class MigrateIn(BaseModel):
    model: str | None = Field(
        None, max_length=500, description="A bundled model's name, or a model file beside the "
        "server's model. With rollback, only the previous model (recorded; needed only for "
        "faces enrolled since the switch).",
    )  # fmt: skip
    dry_run: bool = Field(False, description="Embed and report; do not switch.")
    rollback: bool = Field(False, description="Return to the model used before the last switch.")


class MigrationOut(BaseModel):
    state: Literal["idle", "running", "done", "failed", "stopped"] = "idle"
    model: str | None = None
    dry_run: bool = False
    rollback: bool = False
    done: int = 0
    total: int = 0
    started: float | None = None
    finished: float | None = None
    report: dict | None = None
    error: str | None = None


class Job(MigrationOut):
    """The server's one migration job: what it has done so far (the API's answer) and a flag
    that asks it to stop."""

    _stop: threading.Event = PrivateAttr(default_factory=threading.Event)

    @property
    def stop(self) -> threading.Event:
        return self._stop

    def out(self) -> dict:
        return self.model_dump()


def resolve_model(spec: str, service: Service) -> str:
    """`spec` if it is a model name or an allowed model file (see module doc), else ApiError."""
    from ..catalog import WEIGHTS_DIR

    if "/" not in spec and "\\" not in spec and not spec.lower().endswith(MODEL_SUFFIXES):
        return spec  # a name: FaceNet.load says whether it exists
    own = getattr(service.model._model, "source", None)
    folders = ([Path(own).resolve().parent] if own else []) + [WEIGHTS_DIR.resolve()]
    try:  # a relative file name is one beside the server's model, never in its working dir
        paths = [(folder / spec).resolve() for folder in folders]
    except (OSError, ValueError):
        raise ApiError(400, "model_not_allowed", "not a usable model path") from None
    path = next((p for p in paths if p.parent in folders and p.is_file()), None)
    if path is None:
        raise ApiError(
            400, "model_not_allowed",
            f"{spec}: not a model file beside the server's model; give a model name",
        )  # fmt: skip
    return str(path)


def _model_record(spec: str) -> tuple[str, str | None]:
    """(id, the id of the model whose embeddings it makes as its calibration records it, else
    None) of the model `spec` names (its file's digest, as `FaceNet.load` makes it), or 400
    `invalid_migration` for a model name or file that does not exist."""
    from ..api import file_digest
    from ..catalog import resolve

    try:
        path = resolve(spec)[0]
        if not path.is_file():
            raise ApiError(400, "invalid_migration", f"{spec}: no such model file")
        return file_digest(path), _recorded_origin(path)
    except FaceNetError as exc:
        raise ApiError(400, "invalid_migration", str(exc)) from None
    except (OSError, ValueError) as exc:  # e.g. a name too long for a file name
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unusable"
        raise ApiError(400, "invalid_migration", f"not a usable model ({reason})") from None


def _recorded_origin(path: Path) -> str | None:
    """`ModelInfo.embeddings_of` of the model file `path`, read without loading the network;
    None when it records none, or when it cannot be read here (the job's load says why)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".keras":
            from ..models.files import read_info
        elif suffix in (".onnx", ".tflite"):
            from ..runtime import read_exported_info as read_info
        else:  # weights-only .h5: `facenet calibrate` writes no such copy
            return None
        return read_info(path).embeddings_of
    except (ImportError, FaceNetError, ValueError):
        return None


def check_target(spec: str, service: Service) -> None:
    """400 `invalid_migration` now, rather than a job that fails at once (`target_refusal`): a
    model name or file that does not exist, the model the gallery already uses with no flagged
    face left to retry, or a model making its embeddings (a calibrated copy)."""
    from ..gallery.migrate import target_refusal

    model_id, origin = _model_record(spec)  # hashes the file: outside the lock
    with service._gallery_lock:
        reason = target_refusal(service.gallery._store, model_id, origin, Path(spec).name)
    if reason is not None:
        raise ApiError(400, "invalid_migration", reason)


def check_rollback(service: Service, spec: str | None = None) -> None:
    """400 `invalid_migration` now, rather than a job that fails at once: a rollback of a
    gallery that keeps no previous model (never switched, or rolled back already), with a
    model (`spec`) that makes other embeddings than the previous one (it or a calibrated copy
    of it), or with none when the previous model's recorded file is gone (the server is to
    serve it afterwards)."""
    from ..gallery.migrate import previous_target
    from ..metadata import same_embeddings

    record = None if spec is None else _model_record(spec)  # hashes the file: outside the lock
    with service._gallery_lock:
        target = previous_target(service.gallery._store)
    if target is None:
        message = "nothing to roll back: the gallery keeps no previous model"
        raise ApiError(400, "invalid_migration", message)
    if record is None and not _at_hand(target.path):
        message = (
            f"the previous model {target.name!r} is not at hand (its recorded file is gone); "
            "give it, or a calibrated copy of it, as the model"
        )
        raise ApiError(400, "invalid_migration", message)
    if record is not None and not same_embeddings(*record, target.model_id, target.embeddings_of):
        message = (
            f"{Path(spec).name} is not the previous model: a rollback returns to "
            f"{target.name!r} (id {target.model_id[:12]}); give that model, a calibrated copy "
            "of it, or none"
        )
        raise ApiError(400, "invalid_migration", message)


def _at_hand(reference: str) -> bool:
    """Whether a recorded model (a bundled model's name, or a file) is there to be loaded."""
    from ..catalog import resolve

    try:
        return bool(reference) and resolve(reference)[0].is_file()
    except (FaceNetError, OSError, ValueError):
        return False


def run_job(service: Service, job: Job) -> None:
    """The job's thread: load the model, migrate (or roll back), switch the server over."""
    from ..api import FaceNet
    from ..gallery import migrate as m

    def progress(done: int, total: int) -> None:
        job.done, job.total = done, total

    path = service.gallery.path
    try:
        options = {"dry_run": job.dry_run, "progress": progress, "stop": job.stop}
        if job.rollback:
            model = (
                FaceNet.load(job.model) if job.model else m.model_for_rollback(path, FaceNet.load)
            )
            report = m.rollback(path, model, **options)
        else:
            model = FaceNet.load(job.model)
            report = m.migrate(path, m.Target.of(model), **options)
        job.report = report.to_dict()
        if not job.dry_run:
            switch_server(service, model)
        job.state = "done"
    except m.Interrupted as exc:
        job.state, job.error = "stopped", str(exc)
    except FaceNetError as exc:  # a refusal (e.g. nothing could be re-embedded): one log line
        log.warning("gallery migration refused: %s", exc)
        job.state, job.error = "failed", str(exc).replace(f"{path}: ", "")  # for any client
    except Exception as exc:  # reported through GET, and logged
        log.exception("gallery migration failed")
        job.state, job.error = "failed", str(exc)
    finally:
        job.finished = time.time()


def switch_server(service: Service, model) -> None:
    """After a switch: reopen the gallery and serve the model it now uses (`model`, or for a
    rollback without faces to embed, the previous model's file)."""
    from ..api import FaceNet
    from ..gallery import Gallery

    with service._gallery_lock:
        path = service.gallery.path
        service.gallery.close()
        gallery = Gallery.open(path)
        gallery.use_lock(service._gallery_lock)
        if model is None or not gallery.accepts(model):  # a calibrated copy is served as is
            model = FaceNet.load(gallery.model_path)
        service.model = ServedModel(model, service.settings.max_faces)
        gallery.attach(service.model)
        service.gallery = gallery


router = APIRouter(prefix="/gallery/migrate", tags=["gallery"], responses=ERRORS)


def _job(request: Request) -> Job:
    state = request.app.state
    if not hasattr(state, "migration"):
        state.migration = Job()
    return state.migration


@router.get("", response_model=MigrationOut, dependencies=[Depends(read_access)])
async def status(request: Request):
    """The current (or last) migration job: state, faces embedded of total, report, error."""
    return _job(request).out()


@router.post(
    "",
    response_model=MigrationOut,
    status_code=202,
    dependencies=[Depends(write_access)],
    responses=WRITE_ERRORS,
)
async def start(request: Request, body: MigrateIn):
    """Start re-embedding the gallery with another model (see `facenet gallery migrate`)."""
    service: Service = request.app.state.service
    service._require_gallery()
    if not body.model and not body.rollback:
        raise ApiError(400, "invalid_migration", "give a model, or rollback: true")
    if body.rollback and body.dry_run:
        raise ApiError(400, "invalid_migration", "dry_run is not available with rollback")
    spec = resolve_model(body.model, service) if body.model else None
    if body.rollback:
        await anyio.to_thread.run_sync(check_rollback, service, spec)  # hashes the model file
    elif spec is not None:
        await anyio.to_thread.run_sync(check_target, spec, service)  # hashes the model file
    if _job(request).state == "running":  # checked after the await: no two jobs at once
        raise ApiError(409, "migration_running", "a migration is already running")
    job = Job(
        state="running", model=spec, dry_run=body.dry_run, rollback=body.rollback,
        started=time.time(),
    )  # fmt: skip
    request.app.state.migration = job
    threading.Thread(target=run_job, args=(service, job), daemon=True, name="migrate").start()
    return job.out()


@router.delete(
    "",
    response_model=MigrationOut,
    status_code=202,
    dependencies=[Depends(write_access)],
    responses=WRITE_ERRORS,
)
async def stop(request: Request):
    """Ask the running migration to stop after its current batch (it resumes on a new POST)."""
    job = _job(request)
    job.stop.set()
    return job.out()

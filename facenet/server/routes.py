"""The `/api/v1` endpoints: thin, each parses the request, runs one `Service` call off the
event loop and returns its JSON."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, Path, Request, Response, Security, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from ..metadata import DEFAULT_K
from . import schemas
from .service import ApiError, Probe, Service, decode_image, probe_image

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="Needed for gallery changes when the server has an API key (and for everything "
    "but health when it runs with --api-key-all).",
)


def _errors(descriptions: dict[int, str]) -> dict:
    """OpenAPI `responses`: each status answers an ErrorOut."""
    return {
        status: {"model": schemas.ErrorOut, "description": description}
        for status, description in descriptions.items()
    }


ERRORS = _errors(
    {
        400: "Bad request",
        401: "Missing or wrong API key",
        403: "Cross-origin request, or a gallery change without X-Requested-With",
        404: "Not found",
        413: "Upload or image too large",
        415: "Not a supported image",
        422: "Invalid request, or no face where one is needed",
    }
)
#: What every gallery change (`write_access`) may answer besides: every 409 code is one's.
WRITE_ERRORS = {
    **ERRORS,
    **_errors(
        {
            409: "name_taken: a rename to a name in use (merge instead); gallery_changed: a "
            "migration switched the gallery, or another request changed the person, while this "
            "one ran (send it again); migration_running: a migration is already running",
            503: "gallery_missing: the gallery file was deleted or replaced; restart",
        }
    ),
}


def _check_key(request: Request, key: str | None, write: bool) -> None:
    settings = request.app.state.settings
    if settings.api_key is None or not (write or settings.api_key_all):
        return
    if not key:
        raise ApiError(401, "missing_api_key", "this request needs an API key (header X-API-Key)")
    if not hmac.compare_digest(key.encode(), settings.api_key.encode()):
        raise ApiError(401, "invalid_api_key", "wrong API key")


def read_access(request: Request, key: Annotated[str | None, Security(api_key_header)] = None):
    _check_key(request, key, write=False)


def write_access(request: Request, key: Annotated[str | None, Security(api_key_header)] = None):
    """Gallery changes: the key when the server has one, and a request an HTML form cannot
    make (header X-Requested-With or X-API-Key, or a JSON body), so a page on another site
    cannot change the gallery even through a browser that sends no Origin. Refused while the
    gallery's file is gone (`Service.check_gallery_file`)."""
    _check_key(request, key, write=True)
    headers = request.headers
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if not (key or "x-requested-with" in headers or content_type == "application/json"):
        raise ApiError(
            403,
            "missing_client_header",
            "gallery changes need header X-Requested-With (any value) or a JSON body "
            "(a guard against cross-site forms)",
        )
    request.app.state.service.check_gallery_file()


router = APIRouter(responses=ERRORS)
reader = APIRouter(dependencies=[Depends(read_access)], responses=ERRORS)
writer = APIRouter(dependencies=[Depends(write_access)], responses=WRITE_ERRORS)

Threshold = Annotated[
    float | None,
    Form(ge=0.0, le=4.0, description="Squared-L2 decision threshold; default: the model's."),
]
PersonId = Annotated[int, Path(ge=1, le=2**62)]
FaceId = Annotated[int, Path(ge=1, le=2**62)]


def _service(request: Request) -> Service:
    return request.app.state.service


async def _infer(request: Request, function, *args):
    """Run inference in the bounded pool (the event loop never waits on the model); the memory
    it freed goes back to the system once the server is idle (`memory.IdleTrim`)."""
    loop = asyncio.get_running_loop()
    pool = request.app.state.inference
    trim = request.app.state.idle_trim

    def run():
        trim.enter()
        try:
            return function(*args)
        finally:
            trim.leave()

    return await loop.run_in_executor(pool, run)


async def _io(function, *args):
    """Run a quick gallery (SQLite) call in a worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(function, *args))


@contextlib.asynccontextmanager
async def _admitted(request: Request):
    """Hold one of `--threads` places while a request's photos are read and run: the others
    wait with their uploads as the form parser spooled them (1 MB each in memory, the rest on
    disk), so memory does not grow with the number of clients sending photos at once."""
    async with request.app.state.admission:
        yield


async def _read(request: Request, files: list[UploadFile]) -> list[Probe]:
    """Read the uploads and check their headers against the limits; decode nothing (the
    inference call decodes each photo when it needs it, one at a time)."""
    settings = request.app.state.settings
    if len(files) > settings.max_files:
        raise ApiError(
            413,
            "too_many_files",
            f"{len(files)} photos; the limit is {settings.max_files} a request",
        )
    probes, pixels = [], 0
    for file in files:
        probe = await _io(probe_image, await file.read(), file.filename, settings.max_pixels)
        pixels += probe.pixels
        if pixels > settings.max_request_pixels:
            raise ApiError(
                413,
                "request_too_large",
                f"the photos of this request have over {pixels:,} pixels together; the limit "
                f"is {settings.max_request_pixels:,}",
            )
        probes.append(probe)
    return probes


def _decoded(request: Request, function, *, lazy: bool = True):
    """`function` taking decoded photos, made to take probed ones, decoded inside the inference
    call; a list of them becomes a generator (one photo decoded at a time) unless `lazy` is
    False (enrolment keeps its photos for the thumbnails; the pixel budget bounds them)."""
    side = request.app.state.settings.max_side

    def decode(arg):
        if isinstance(arg, Probe):
            return decode_image(arg, side)
        if isinstance(arg, list):
            photos = (decode_image(p, side) for p in arg)
            return photos if lazy else list(photos)
        return arg

    def call(*args):
        return function(*map(decode, args))

    return call


# -- service ----------------------------------------------------------------------------------


@router.head("/health", include_in_schema=False)  # load balancers' checks: 200, no body
@router.get("/health", response_model=schemas.HealthOut, tags=["service"])
async def health(request: Request, key: Annotated[str | None, Security(api_key_header)] = None):
    """Liveness: the model is loaded; its id, whether its threshold is calibrated and the
    gallery size too, unless the server runs with --api-key-all and the request has no valid
    key (then only `status`). HEAD answers 200 with no body."""
    service = _service(request)
    try:
        _check_key(request, key, write=False)
    except ApiError:
        return JSONResponse({"status": "ok"})
    return {
        "status": "ok",
        "model_id": service.model.model_id,
        "calibrated": service.model.calibrated,
        "gallery": await _io(service.gallery_counts),
    }


@reader.get("/model", response_model=schemas.ModelOut, tags=["service"])
async def model_info(request: Request):
    """The loaded model: backbone, input size, embedding size, threshold, runtime."""
    return _service(request).model_info()


# -- faces ------------------------------------------------------------------------------------


@reader.post("/embed", response_model=schemas.EmbedOut, tags=["faces"])
async def embed(request: Request, image: Annotated[UploadFile, File(description="A photo.")]):
    """Every face in a photo: box, score, landmarks and unit embedding."""
    async with _admitted(request):
        (probe,) = await _read(request, [image])
        return await _infer(request, _decoded(request, _service(request).embed), probe)


@reader.post("/verify", response_model=schemas.VerifyOut, tags=["faces"])
async def verify(
    request: Request,
    image1: Annotated[UploadFile, File(description="First photo.")],
    image2: Annotated[UploadFile, File(description="Second photo.")],
    threshold: Threshold = None,
):
    """Whether two photos show the same person (their most prominent faces are compared)."""
    verify = _decoded(request, _service(request).verify)
    async with _admitted(request):
        first, second = await _read(request, [image1, image2])
        return await _infer(request, verify, first, second, threshold)


@reader.post("/identify", response_model=schemas.IdentifyOut, tags=["gallery"])
async def identify(
    request: Request,
    image: Annotated[UploadFile, File(description="A photo.")],
    k: Annotated[int, Form(ge=1, le=50, description="Nearest people listed per face.")] = DEFAULT_K,
    threshold: Threshold = None,
):
    """Every face in a photo with who it is: a gallery name, or "unknown"."""
    identify = _decoded(request, _service(request).identify)
    async with _admitted(request):
        (probe,) = await _read(request, [image])
        return await _infer(request, identify, probe, k, threshold)


@reader.post("/cluster", response_model=schemas.ClusterOut, tags=["faces"])
async def cluster(
    request: Request,
    images: Annotated[list[UploadFile], File(description="Photos to group by person.")],
    threshold: Annotated[
        float | None,
        Form(gt=0.0, le=4.0, description="Squared-L2 distance under which faces are one person."),
    ] = None,
    method: Annotated[
        Literal["agglomerative", "dbscan", "chinese_whispers"], Form()
    ] = "agglomerative",
    min_size: Annotated[int, Form(ge=1, le=1000, description="Smaller clusters are noise.")] = 1,
):
    """Group every face of a set of photos by person (labels: 0 the largest group, -1 noise)."""
    cluster = _decoded(request, _service(request).cluster)
    async with _admitted(request):
        probes = await _read(request, images)
        return await _infer(request, cluster, probes, threshold, method, min_size)


# -- gallery ----------------------------------------------------------------------------------


@reader.get("/people", response_model=list[schemas.PersonOut], tags=["gallery"])
async def people(request: Request):
    """Everyone in the gallery, by name, with their face ids (for thumbnails)."""
    return await _io(_service(request).people)


@reader.get("/people/{person_id}", response_model=schemas.PersonOut, tags=["gallery"])
async def person(request: Request, person_id: PersonId):
    return await _io(_service(request).person, person_id)


@writer.post("/people", response_model=schemas.EnrollOut, status_code=201, tags=["gallery"])
async def enroll(
    request: Request,
    name: Annotated[str, Form(min_length=1, max_length=200, description="The person's name.")],
    images: Annotated[list[UploadFile], File(description="Photos of the person.")],
):
    """Enrol photos of a person (created if new): the most prominent face of each photo.
    Photos without a face or already enrolled are skipped and listed."""
    enroll = _decoded(request, _service(request).enroll, lazy=False)
    async with _admitted(request):
        probes = await _read(request, images)
        return await _infer(request, enroll, name, probes)


@writer.post(
    "/people/{person_id}/faces", response_model=schemas.EnrollOut, status_code=201, tags=["gallery"]
)
async def enroll_more(
    request: Request,
    person_id: PersonId,
    images: Annotated[list[UploadFile], File(description="More photos of the person.")],
):
    """Enrol more photos of an existing person."""
    service = _service(request)
    name = (await _io(service.person, person_id))["name"]
    enroll = _decoded(request, service.enroll, lazy=False)
    async with _admitted(request):
        probes = await _read(request, images)
        return await _infer(request, enroll, name, probes, person_id)


@writer.patch("/people/{person_id}", response_model=schemas.PersonOut, tags=["gallery"])
async def rename(request: Request, person_id: PersonId, body: schemas.RenameIn):
    """Rename a person (409 if the new name is taken: merge instead)."""
    return await _io(_service(request).rename, person_id, body.name)


@writer.post("/people/{person_id}/merge", response_model=schemas.PersonOut, tags=["gallery"])
async def merge(request: Request, person_id: PersonId, body: schemas.MergeIn):
    """Move every face of this person to person `into`, then delete this one."""
    return await _io(_service(request).merge, person_id, body.into)


@writer.delete("/people/{person_id}", response_model=schemas.RemovedPerson, tags=["gallery"])
async def remove_person(request: Request, person_id: PersonId):
    """Delete a person and all their faces."""
    return await _io(_service(request).remove_person, person_id)


@writer.delete("/faces/{face_id}", response_model=schemas.RemovedFace, tags=["gallery"])
async def remove_face(request: Request, face_id: FaceId):
    """Delete one enrolled face."""
    return await _io(_service(request).remove_face, face_id)


@reader.get(
    "/faces/{face_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG face thumbnail."}},
    tags=["gallery"],
)
async def thumbnail(request: Request, face_id: FaceId):
    """A small JPEG of an enrolled face, cut at enrolment."""
    data = await _io(_service(request).thumbnail, face_id)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


router.include_router(reader)
router.include_router(writer)

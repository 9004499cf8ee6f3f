"""`/api/v1/library/...`: the people library (issue 19) over HTTP, thin over `facenet.Library`.

Every face of every added photo is kept and belongs to a named person, an unnamed cluster or
nobody yet; corrections (name, merge, split, move, links, reject, accept/decline a suggestion)
are stored as constraints that later adds and re-clusterings honour. Reads need what the other
reads need (the key only under --api-key-all); changes go through `write_access` like every
gallery change (API key when set, and a request an HTML form cannot make), and the guard
middleware refuses them from other origins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Query, Request, Response, UploadFile

from . import library_schemas as s
from .library_service import LibraryService
from .routes import (
    ERRORS,
    WRITE_ERRORS,
    _admitted,
    _decoded,
    _infer,
    _io,
    _read,
    read_access,
    write_access,
)

PersonId = Annotated[int, Path(ge=1, le=2**62)]
FaceId = Annotated[int, Path(ge=1, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=5000, description="At most this many faces.")]
Offset = Annotated[int, Query(ge=0, le=2**62, description="Skip this many faces first.")]

reader = APIRouter(prefix="/library", tags=["library"], dependencies=[Depends(read_access)])
writer = APIRouter(
    prefix="/library", tags=["library"], dependencies=[Depends(write_access)],
    responses=WRITE_ERRORS,
)  # fmt: skip


def _library(request: Request) -> LibraryService:
    return request.app.state.service.library_service()


# -- reads ------------------------------------------------------------------------------------


@reader.get("", response_model=s.LibraryCounts)
async def counts(request: Request):
    """How many people (named), unnamed clusters, faces and unassigned faces."""
    return await _io(_library(request).counts)


@reader.get("/people", response_model=list[s.LibraryPersonOut])
async def people(
    request: Request,
    named: Annotated[
        bool | None, Query(description="true: named only; false: clusters only")
    ] = None,
):
    """People and unnamed clusters, largest first, each with its face count and cover face."""
    return await _io(_library(request).people, named)


@reader.get("/people/{person_id}", response_model=s.LibraryPersonOut)
async def person(request: Request, person_id: PersonId):
    return await _io(_library(request).person, person_id)


@reader.get("/people/{person_id}/faces", response_model=list[s.LibraryFaceOut])
async def person_faces(
    request: Request, person_id: PersonId, limit: Limit = 500, offset: Offset = 0
):
    """The faces of one person or cluster."""
    return await _io(_library(request).faces, person_id, False, limit, offset)


@reader.get("/faces", response_model=list[s.LibraryFaceOut])
async def faces(
    request: Request,
    unassigned: Annotated[bool, Query(description="Only faces of nobody yet.")] = False,
    limit: Limit = 500,
    offset: Offset = 0,
):
    """Every face of the library (or the unassigned ones), by id."""
    return await _io(_library(request).faces, None, unassigned, limit, offset)


@reader.get("/faces/{face_id}", response_model=s.LibraryFaceOut)
async def face(request: Request, face_id: FaceId):
    return await _io(_library(request).face, face_id)


@reader.get(
    "/faces/{face_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "A JPEG face thumbnail."}},
)
async def thumbnail(request: Request, face_id: FaceId):
    """A small JPEG of a face, cut from the crop the library keeps."""
    data = await _io(_library(request).thumbnail, face_id)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )


@reader.get("/people/{person_id}/suggestions", response_model=list[s.SuggestionOut])
async def suggestions(
    request: Request,
    person_id: PersonId,
    k: Annotated[int, Query(ge=1, le=100, description="At most this many faces.")] = 10,
):
    """The unassigned faces nearest this person, nearest first ("is this them?")."""
    return await _io(_library(request).suggestions, person_id, k)


@reader.get("/constraints", response_model=list[s.ConstraintOut])
async def constraints(request: Request):
    """Every stored correction (must-link, cannot-link, rejection)."""
    return await _io(_library(request).constraints)


# -- changes ----------------------------------------------------------------------------------


@writer.post("/photos", response_model=s.AddOut)
async def add_photos(
    request: Request,
    images: Annotated[list[UploadFile], File(description="Photos to add to the library.")],
):
    """Detect and embed every face of the photos, then assign each to a person or cluster, open
    a new cluster, or leave it unassigned; what exists is not re-clustered."""
    add = _decoded(request, _library(request).add)
    async with _admitted(request):
        probes = await _read(request, images)
        return await _infer(request, add, probes, tuple(p.filename for p in probes))


@writer.post("/recluster", response_model=s.ReclusterOut)
async def recluster(request: Request):
    """Re-cluster the unassigned faces and the unnamed clusters, honouring every correction."""
    return await _infer(request, _library(request).recluster)


@writer.patch("/people/{person_id}", response_model=s.LibraryPersonOut)
async def name(request: Request, person_id: PersonId, body: s.NameIn):
    """Name a person or cluster (a named cluster is a person)."""
    return await _io(_library(request).name, person_id, body.name)


@writer.post("/merge", response_model=s.LibraryPersonOut)
async def merge(request: Request, body: s.MergeIn):
    """Merge people/clusters into one (recorded as must-links); answers the survivor."""
    return await _io(_library(request).merge, body.people)


@writer.post("/people/{person_id}/split", response_model=s.SplitOut)
async def split(request: Request, person_id: PersonId, body: s.SplitIn):
    """The given faces of this person become a new cluster, kept apart from the rest."""
    return await _io(_library(request).split, person_id, body.faces)


@writer.post("/faces/{face_id}/move", response_model=s.LibraryFaceOut)
async def move(request: Request, face_id: FaceId, body: s.MoveIn):
    """Move a face to another person (null: to nobody); it never goes back to the old one."""
    return await _io(_library(request).move, face_id, body.person)


@writer.post("/faces/{face_id}/reject", response_model=s.LibraryFaceOut)
async def reject(request: Request, face_id: FaceId, body: s.RejectIn):
    """Not a face, or a face to ignore: never assigned again."""
    return await _io(_library(request).reject, face_id, body.reason)


@writer.post("/links", response_model=s.ConstraintOut, status_code=201)
async def link(request: Request, body: s.LinkIn):
    """Record that two faces are the same person (must) or not (cannot)."""
    return await _io(_library(request).link, body.kind, *body.faces)


@writer.post("/unlink", response_model=s.UnlinkOut)
async def unlink(request: Request, body: s.UnlinkIn):
    """Forget every link between two faces (what a later add or recluster then decides)."""
    return await _io(_library(request).unlink, *body.faces)


@writer.post("/faces/{face_id}/unreject", response_model=s.LibraryFaceOut)
async def unreject(request: Request, face_id: FaceId):
    """Undo a rejection: the face is unassigned again, and placed by later runs."""
    return await _io(_library(request).unreject, face_id)


@writer.post("/people/{person_id}/accept", response_model=s.LibraryFaceOut)
async def accept(request: Request, person_id: PersonId, body: s.FaceIn):
    """Accept a suggestion: the face joins this person (must-link)."""
    return await _io(_library(request).accept, person_id, body.face)


@writer.post("/people/{person_id}/decline", response_model=s.LibraryFaceOut)
async def decline(request: Request, person_id: PersonId, body: s.FaceIn):
    """Decline a suggestion: the face is never this person (cannot-link)."""
    return await _io(_library(request).decline, person_id, body.face)


router = APIRouter(responses=ERRORS)
router.include_router(reader)
router.include_router(writer)

"""The JSON shapes of the API (they make the OpenAPI schema at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. no_face, not_an_image.")
    message: str = Field(description="One line for a human.")


class ErrorOut(BaseModel):
    error: ErrorBody


class FaceOut(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in the photo's pixels.")
    score: float
    landmarks: list[list[float]] | None = Field(
        None, description="5 x 2: left eye, right eye, nose, left and right mouth corners."
    )


class EmbeddedFace(FaceOut):
    embedding: list[float] = Field(description="Unit vector.")


class FaceCap(BaseModel):
    faces_found: int = Field(description="Faces detected in the photo.")
    faces_capped: bool = Field(
        description="More faces were found than the server's --max-faces: only the largest "
        "are in the answer."
    )


class EmbedOut(FaceCap):
    width: int
    height: int
    faces: list[EmbeddedFace]


class VerifiedImage(FaceCap):
    width: int
    height: int
    chosen: int = Field(description="Index in `faces` of the face compared (the most prominent).")
    faces: list[FaceOut]


class VerifyOut(BaseModel):
    distance: float = Field(description="Squared L2 distance between unit embeddings (0..4).")
    threshold: float
    same: bool = Field(description="distance <= threshold.")
    calibrated: bool = Field(
        description="Whether the model carries a calibrated threshold. False: the model's "
        "threshold is FaceNet's customary 1.1, which may not fit it, so a `same` decided at it "
        "is not to be trusted (`facenet calibrate`). The model's, even when the request gave "
        "its own `threshold`."
    )
    images: list[VerifiedImage]


class MatchOut(BaseModel):
    name: str
    person_id: int
    face_id: int
    distance: float


class IdentifiedFace(FaceOut):
    name: str = Field(description='The best match within the threshold, or "unknown".')
    person_id: int | None
    distance: float | None = Field(description="Distance to the best match (None: empty gallery).")
    matches: list[MatchOut]


class IdentifyOut(FaceCap):
    width: int
    height: int
    threshold: float
    faces: list[IdentifiedFace]


class PersonOut(BaseModel):
    id: int
    name: str
    metadata: dict[str, Any]
    faces: int
    face_ids: list[int]
    created: str


class EnrolledPhoto(BaseModel):
    filename: str
    face_id: int
    faces_in_photo: int


class SkippedPhoto(BaseModel):
    filename: str
    reason: str


class EnrollOut(BaseModel):
    person: PersonOut
    enrolled: list[EnrolledPhoto]
    skipped: list[SkippedPhoto]


class RenameIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class MergeIn(BaseModel):
    into: int = Field(description="Id of the person who receives the faces.")


class RemovedPerson(BaseModel):
    id: int
    name: str
    faces_removed: int


class RemovedFace(BaseModel):
    id: int
    person: str


class ClusterImage(FaceCap):
    filename: str
    width: int
    height: int
    faces: int = Field(description="Faces of this photo in the answer (at most --max-faces).")


class ClusterFace(BaseModel):
    image: int = Field(description="Index of the photo in the request.")
    box: list[float]
    score: float
    label: int = Field(description="Cluster label; -1: noise (a face like no other).")


class ClusterGroup(BaseModel):
    label: int
    faces: list[int] = Field(description="Indexes into `faces`.")


class ClusterOut(BaseModel):
    threshold: float
    images: list[ClusterImage]
    faces: list[ClusterFace]
    clusters: list[ClusterGroup]


class GalleryCounts(BaseModel):
    people: int
    faces: int


class HealthOut(BaseModel):
    status: str
    model_id: str | None = Field(None, description="Absent under --api-key-all without the key.")
    calibrated: bool | None = Field(
        None,
        description="Whether the model carries a calibrated threshold (False: the customary "
        "1.1, not to be trusted); absent under --api-key-all without the key.",
    )
    gallery: GalleryCounts | None = Field(
        None, description="None without a gallery; absent under --api-key-all without the key."
    )


class ModelOut(BaseModel):
    model_id: str
    name: str
    backbone: str
    input_size: int
    embedding_size: int
    preprocessing: str
    alignment: str
    threshold: float
    calibrated: bool = Field(
        description="Whether the model carries a calibrated threshold. False: `threshold` is "
        "FaceNet's customary 1.1, which may not fit this model (`facenet calibrate`)."
    )
    runtime: str

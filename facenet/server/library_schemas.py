"""The JSON shapes of the people-library endpoints (`/api/v1/library/...`, see `library.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

#: A person or face id, as the routes' path parameters take them.
Id = Annotated[int, Field(ge=1, le=2**62)]


class LibraryPersonOut(BaseModel):
    id: int
    name: str | None = Field(description="None: an unnamed cluster.")
    face_count: int
    cover_face_id: int | None = Field(description="The face shown for this person (thumbnail).")
    created: str


class LibraryFaceOut(BaseModel):
    id: int
    photo: str | None = Field(description="The photo the face was found in (its upload name).")
    box: list[float] | None = Field(description="x1, y1, x2, y2 in the photo's pixels.")
    score: float | None = Field(description="The detector's confidence.")
    quality: dict[str, float] | None = Field(
        description="eye_px, score, blur, yaw, roll: what the quality gate looks at."
    )
    low_quality: bool = Field(description="Under the quality gate: never seeds a cluster.")
    person_id: int | None = Field(description="None: nobody's yet (or rejected).")
    state: Literal["named", "cluster", "unassigned", "rejected"]
    assigned_by: str | None = Field(description='"auto" (the library), "user" (a correction).')
    rejected: str | None = Field(description='"not_a_face" or "ignore" when rejected.')


class LibraryCounts(BaseModel):
    people: int = Field(description="People and clusters with at least one face.")
    named: int
    clusters: int = Field(description="Unnamed clusters.")
    faces: int = Field(description="Faces of people and clusters, and unassigned ones.")
    unassigned: int


class FailedPhoto(BaseModel):
    filename: str
    reason: str


class AddOut(BaseModel):
    photos: int = Field(description="Photos read and stored.")
    faces: int = Field(description="Faces found and stored.")
    assigned: int = Field(description="Faces that joined an existing person or cluster.")
    new_clusters: int
    unassigned: int
    low_quality: int = Field(description="Faces under the quality gate (stored all the same).")
    regrouped: int = Field(
        description="Faces of machine-made clusters (unnamed, uncorrected) near the new ones "
        "that changed cluster when regrouped with them."
    )
    duplicates: list[str] = Field(description="Photos already in the library (skipped).")
    failed: list[FailedPhoto] = Field(description="Photos that could not be read.")
    face_ids: list[int] = Field(description="Ids of the faces stored.")


class ReclusterOut(BaseModel):
    faces: int = Field(description="Faces re-clustered (unassigned and in unnamed clusters).")
    clusters: int = Field(description="Unnamed clusters afterwards.")
    new_clusters: int
    removed_clusters: int
    joined_named: int = Field(description="Faces that joined a named person.")
    unassigned: int
    changed: int = Field(description="Faces whose person or cluster changed.")
    seconds: float


class NameIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class MergeIn(BaseModel):
    people: list[Id] = Field(
        min_length=2, max_length=1000, description="Ids of the people/clusters to merge."
    )


class SplitIn(BaseModel):
    faces: list[Id] = Field(
        min_length=1,
        max_length=10_000,
        description="Faces of the person that become a new cluster.",
    )


class SplitOut(BaseModel):
    person: LibraryPersonOut = Field(description="The new cluster.")
    rest: LibraryPersonOut | None = Field(description="What is left of the split person.")


class MoveIn(BaseModel):
    person: Id | None = Field(description="The receiving person; null: unassigned.")


class LinkIn(BaseModel):
    kind: Literal["must", "cannot"] = Field(description="must: same person; cannot: not.")
    faces: list[Id] = Field(min_length=2, max_length=2, description="The two face ids.")


class UnlinkIn(BaseModel):
    faces: list[Id] = Field(min_length=2, max_length=2, description="The two face ids.")


class UnlinkOut(BaseModel):
    removed: int = Field(description="Links removed (0: there were none).")


class RejectIn(BaseModel):
    reason: Literal["not_a_face", "ignore"] = "not_a_face"


class FaceIn(BaseModel):
    face: Id = Field(description="A face id.")


class SuggestionOut(BaseModel):
    face_id: int
    distance: float = Field(description="Squared L2 distance to the person's mean face.")


class ConstraintOut(BaseModel):
    id: int | None
    kind: Literal["must", "cannot", "reject", "name"]
    face_a: int | None
    face_b: int | None
    origin: str = Field(
        description="What made it (merge, split, move, user...); the reason of a rejection; "
        "the name of a name."
    )
    created: str
    person_id: int | None = None

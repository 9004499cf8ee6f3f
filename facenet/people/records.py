"""What the people library returns: people, faces, constraints, suggestions and reports.

Plain dataclasses with `to_dict` (the CLI's `--json`, the server's responses).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..text import plural


@dataclass(frozen=True)
class Person:
    """A person of the library: a named person, or an unnamed cluster (name None)."""

    id: int
    name: str | None
    face_count: int
    cover_face_id: int | None
    created: str

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class Face:
    """One stored face: where it is, its quality, and whose it is.

    state: "named" (a named person's), "cluster" (an unnamed cluster's), "unassigned" or
    "rejected"; assigned_by: "auto" (the library put it there), "user" (a correction), None.
    """

    id: int
    photo: str | None
    box: list[float] | None
    landmarks: list | None
    score: float | None
    quality: dict | None
    low_quality: bool
    person_id: int | None
    state: str
    assigned_by: str | None
    rejected: str | None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def face_from_row(row) -> Face:
    """A `Face` from a faces row joined with its person's name as `person_name`."""
    if row["rejected"] is not None:
        state = "rejected"
    elif row["person_id"] is None:
        state = "unassigned"
    else:
        state = "named" if row["person_name"] is not None else "cluster"
    return Face(
        id=int(row["id"]),
        photo=row["photo"] or row["source"],
        box=json.loads(row["box"]) if row["box"] else None,
        landmarks=json.loads(row["landmarks"]) if row["landmarks"] else None,
        score=row["score"],
        quality=json.loads(row["quality"]) if row["quality"] else None,
        low_quality=bool(row["low_quality"]),
        person_id=row["person_id"],
        state=state,
        assigned_by=row["assigned_by"],
        rejected=row["rejected"],
    )


@dataclass(frozen=True)
class Constraint:
    """A stored correction. kind: "must" / "cannot" (faces a and b are / are not the same
    person), "reject" (face a is not a face or is ignored; `origin` holds the reason) or "name"
    (person `person_id` is called `origin`)."""

    id: int | None
    kind: str
    face_a: int | None
    face_b: int | None
    origin: str
    created: str
    person_id: int | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


@dataclass(frozen=True)
class Suggestion:
    """An unassigned face close to a person: "is this them?"."""

    person_id: int
    face_id: int
    distance: float

    def to_dict(self) -> dict:
        """JSON-ready fields (distance rounded)."""
        return {
            "person_id": self.person_id,
            "face_id": self.face_id,
            "distance": round(self.distance, 5),
        }


@dataclass
class AddReport:
    """What `Library.add` did: faces stored and where they went; photos skipped or failed."""

    photos: int = 0
    faces: int = 0
    assigned: int = 0
    new_clusters: int = 0
    unassigned: int = 0
    low_quality: int = 0
    #: faces of machine-made clusters near the new ones that moved when they were regrouped
    regrouped: int = 0
    duplicates: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    face_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        """One line."""
        return (
            f"added {plural(self.faces, 'face')} from {plural(self.photos, 'photo')}: "
            f"{self.assigned} joined a person or cluster, "
            f"{plural(self.new_clusters, 'new cluster')}, "
            f"{self.unassigned} unassigned ({self.low_quality} low quality), "
            f"{self.regrouped} regrouped; "
            f"{len(self.duplicates)} already in the library, {len(self.failed)} failed"
        )

    def to_dict(self) -> dict:
        """JSON-ready report."""
        out = asdict(self)
        out["failed"] = [{"photo": p, "error": e} for p, e in self.failed]
        out["summary"] = self.summary()
        return out


@dataclass
class ReclusterReport:
    """What `Library.recluster` did to the unassigned and unnamed-cluster faces."""

    faces: int = 0
    clusters: int = 0
    new_clusters: int = 0
    removed_clusters: int = 0
    joined_named: int = 0
    unassigned: int = 0
    changed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line."""
        return (
            f"re-clustered {plural(self.faces, 'face')}: {plural(self.clusters, 'cluster')} "
            f"({self.new_clusters} new, {self.removed_clusters} gone), {self.joined_named} "
            f"joined named people, {self.unassigned} unassigned; {self.changed} faces moved "
            f"in {self.seconds:.2f} s"
        )

    def to_dict(self) -> dict:
        """JSON-ready report."""
        return {**asdict(self), "summary": self.summary()}

"""What the gallery returns: people, stored faces, matches, identified faces, enrolment reports.

Plain dataclasses with `to_dict` (the CLI's `--json` and the server's responses), kept apart
from the gallery so that callers and other index backends can use them without it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..text import plural
from ..types import Face
from .validation import UNKNOWN


@dataclass(frozen=True)
class Person:
    """An enrolled person: name, free-form metadata and how many faces they have."""

    id: int
    name: str
    metadata: dict
    faces: int
    created: str

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class FaceRecord:
    """One enrolled face as stored: whose it is, where it came from, its embedding."""

    id: int
    person: str
    source: str | None
    content_hash: str
    box: tuple[float, float, float, float] | None
    score: float | None
    model_id: str
    created: str
    embedding: np.ndarray = field(compare=False, repr=False)
    #: The five landmarks (photo coordinates) and the photo's absolute path, when known.
    landmarks: list | None = None
    photo: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields (the embedding left out)."""
        out = {k: v for k, v in self.__dict__.items() if k != "embedding"}
        out["box"] = list(self.box) if self.box else None
        return out


@dataclass(frozen=True)
class Match:
    """A gallery person close to a query face: their nearest enrolled face and its distance."""

    name: str
    distance: float
    face_id: int
    person_id: int

    def to_dict(self) -> dict:
        """JSON-ready fields (distance rounded)."""
        return {"name": self.name, "distance": round(self.distance, 5), "face_id": self.face_id}


@dataclass(frozen=True)
class IdentifiedFace:
    """One face of a photo and who it is: `name` is the best match, or "unknown" when its
    distance is above the threshold (or the gallery is empty)."""

    face: Face
    name: str
    distance: float | None
    threshold: float
    matches: list[Match]

    @property
    def known(self) -> bool:
        """True when the face matched an enrolled person within the threshold."""
        return self.name != UNKNOWN

    def to_dict(self) -> dict:
        """JSON-ready fields, as the CLI and the server print them."""
        return {
            "box": [round(float(v), 2) for v in self.face.box],
            "score": round(float(self.face.score), 5),
            "name": self.name,
            "distance": None if self.distance is None else round(self.distance, 5),
            "threshold": self.threshold,
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class Enrolled:
    """A photo whose most prominent face was enrolled."""

    person: str
    source: str
    face_id: int
    faces_in_photo: int


@dataclass(frozen=True)
class Skipped:
    """A photo not enrolled, and why (unreadable, duplicate, no face)."""

    person: str
    source: str
    reason: str


@dataclass
class EnrollReport:
    """What an enrolment did, photo by photo. Photos with several faces enrol the most
    prominent one (largest box) and are listed in `notes`."""

    enrolled: list[Enrolled] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """One line per photo that had several faces."""
        return [
            f"{e.source}: {e.faces_in_photo} faces found; enrolled the most prominent one"
            for e in self.enrolled
            if e.faces_in_photo > 1
        ]

    def summary(self) -> str:
        """One line: faces enrolled, people, photos skipped."""
        people = len({e.person for e in self.enrolled})
        return (
            f"enrolled {plural(len(self.enrolled), 'face')} of "
            f"{plural(people, 'person', 'people')}; skipped {plural(len(self.skipped), 'photo')}"
        )

    def to_dict(self) -> dict:
        """JSON-ready report."""
        return {
            "enrolled": [e.__dict__ for e in self.enrolled],
            "skipped": [s.__dict__ for s in self.skipped],
            "notes": self.notes,
            "summary": self.summary(),
        }


def person_from_row(row) -> Person:
    """A `Person` from a `Store.people()` row."""
    return Person(
        row["id"], row["name"], json.loads(row["metadata"]), row["face_count"], row["created"]
    )


def face_record_from_row(row) -> FaceRecord:
    """A `FaceRecord` from a `Store.faces()` row."""
    box = tuple(json.loads(row["box"])) if row["box"] else None
    return FaceRecord(
        id=row["id"],
        person=row["person"],
        source=row["source"],
        content_hash=row["content_hash"],
        box=box,
        score=row["score"],
        model_id=row["model_id"],
        created=row["created"],
        embedding=np.frombuffer(row["embedding"], dtype=np.float32).copy(),
        landmarks=json.loads(row["landmarks"]) if row["landmarks"] else None,
        photo=row["photo"],
    )

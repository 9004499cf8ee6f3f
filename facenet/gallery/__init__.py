"""Persistent face gallery (SQLite + FAISS): enrolment and open-set identification."""

from .gallery import (
    UNKNOWN,
    EnrollReport,
    FaceRecord,
    Gallery,
    IdentifiedFace,
    Match,
    Person,
    most_prominent,
)

__all__ = [
    "UNKNOWN",
    "EnrollReport",
    "FaceRecord",
    "Gallery",
    "IdentifiedFace",
    "Match",
    "Person",
    "most_prominent",
]

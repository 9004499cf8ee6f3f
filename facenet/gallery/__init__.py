"""Persistent face gallery (SQLite + a search index): enrolment and open-set identification."""

from .enrol import most_prominent
from .gallery import Gallery
from .results import UNKNOWN, EnrollReport, FaceRecord, IdentifiedFace, Match, Person

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

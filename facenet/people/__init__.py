"""The people library: every face of a photo collection grouped into people, incrementally,
with corrections (merge, split, move, must/cannot-link, reject, name) that every later add and
re-clustering honours. See `library.Library` and docs/recognition.md ("People library")."""

from ..errors import LibraryError, LibraryNotFoundError
from .library import Library
from .quality import GATE, Quality
from .records import AddReport, Constraint, Face, Person, ReclusterReport, Suggestion

__all__ = [
    "GATE",
    "AddReport",
    "Constraint",
    "Face",
    "Library",
    "LibraryError",
    "LibraryNotFoundError",
    "Person",
    "Quality",
    "ReclusterReport",
    "Suggestion",
]

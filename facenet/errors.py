"""Exceptions a user can act on: everything raised on bad input derives from FaceNetError."""

from __future__ import annotations


class FaceNetError(Exception):
    """Base class: a clear, one-line message meant for the user."""


class ArgumentError(FaceNetError, ValueError):
    """An argument outside its valid range (a batch size of 0 or above the most allowed): a
    FaceNetError for the command line, a ValueError for a program calling the API."""


class ImageError(FaceNetError, ValueError):
    """An input could not be read as an image (missing, corrupt, not an image, too large)."""


class NoFaceError(FaceNetError):
    """No face was found in an image where one was required."""


class DatasetError(FaceNetError, ValueError):
    """Training data that cannot serve what was asked: no identity folders, an unreadable image,
    too few identities or images for the batch."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No dataset folder at the given path."""


class ModelError(FaceNetError):
    """A model file is missing, of the wrong kind, or does not match the network."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No model at the given path, or no bundled default model installed."""


class OutputError(FaceNetError):
    """An output path the user named cannot be written, or writing it would replace what must
    not be replaced (an input, a folder, a device, an existing file without --force)."""


class GalleryError(FaceNetError):
    """A gallery operation cannot be carried out (unknown person, model mismatch...)."""


class GalleryChangedError(GalleryError):
    """The gallery was closed, or moved to another model, while photos were being read for it
    (a server's model migration switched it meanwhile), or the person they were read for was
    removed or renamed (`Gallery.enroll(person_id=...)`): nothing of the batch was stored.

    `str()` names the gallery's file (for the command line); `reason` is the same message
    without it, what a server tells its clients (they never see server paths)."""

    def __init__(self, reason: str, path: object = None):
        super().__init__(reason if path is None else f"{path}: {reason}")
        self.reason = reason


class LibraryError(GalleryError):
    """A people-library operation cannot be carried out (unknown face or person, a correction
    that contradicts another one)."""


class LibraryNotFoundError(LibraryError, LookupError):
    """No face, or no person or cluster, with the given id in the people library. `kind` says
    which ("face" or "person"), so a caller (the server: 404) tells them apart by type."""

    def __init__(self, message: str, kind: str = "face"):
        super().__init__(message)
        self.kind = kind

"""Exceptions a user can act on: everything raised on bad input derives from FaceNetError."""

from __future__ import annotations


class FaceNetError(Exception):
    """Base class: a clear, one-line message meant for the user."""


class ImageError(FaceNetError, ValueError):
    """An input could not be read as an image (missing, corrupt, not an image, too large)."""


class NoFaceError(FaceNetError):
    """No face was found in an image where one was required."""


class ModelError(FaceNetError):
    """A model file is missing, of the wrong kind, or does not match the network."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No model at the given path, or no bundled default model installed."""


class GalleryError(FaceNetError):
    """A gallery operation cannot be carried out (unknown person, model mismatch...)."""


class LibraryError(GalleryError):
    """A people-library operation cannot be carried out (unknown face or person, a correction
    that contradicts another one)."""

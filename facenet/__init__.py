"""FaceNet face recognition: embed, verify, identify and cluster faces.

    from facenet import FaceNet
    model = FaceNet.load("model.keras")
    model.verify("a.jpg", "b.jpg")

`Gallery` (identification against known people), `Library` (the people of a photo
collection) and `cluster` are imported on first use, so
`import facenet` stays light.
"""

from typing import Any

from .api import FaceNet
from .errors import (
    FaceNetError,
    GalleryError,
    ImageError,
    ModelError,
    ModelNotFoundError,
    NoFaceError,
)
from .types import Face, Verification

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Gallery":
        from .gallery import Gallery

        return Gallery
    if name == "Library":
        from .people import Library

        return Library
    if name == "cluster":
        from .clustering import cluster

        return cluster
    raise AttributeError(f"module 'facenet' has no attribute {name!r}")


__all__ = [
    "Face",
    "FaceNet",
    "Gallery",
    "Library",
    "cluster",
    "FaceNetError",
    "GalleryError",
    "ImageError",
    "ModelError",
    "ModelNotFoundError",
    "NoFaceError",
    "Verification",
]

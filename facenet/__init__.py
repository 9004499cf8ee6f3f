"""FaceNet face recognition: embed, verify, identify and cluster faces.

    from facenet import FaceNet
    model = FaceNet.load("model.keras")
    model.verify("a.jpg", "b.jpg")
"""

from .api import FaceNet
from .errors import FaceNetError, GalleryError, ImageError, ModelError, ModelNotFoundError, NoFaceError
from .types import Face, Verification

__version__ = "0.1.0"

__all__ = [
    "Face",
    "FaceNet",
    "FaceNetError",
    "GalleryError",
    "ImageError",
    "ModelError",
    "ModelNotFoundError",
    "NoFaceError",
    "Verification",
]

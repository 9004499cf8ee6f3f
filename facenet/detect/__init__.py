"""Face detection and alignment: MTCNN on ONNX Runtime, FaceNet crops and 5-point warps.

No TensorFlow here: this runs in the light install (numpy, pillow, onnxruntime).
"""

from .align import align_face, center_crop, most_prominent, similarity_transform
from .detector import Detector, make_detector
from .mtcnn import MTCNN

__all__ = [
    "MTCNN",
    "Detector",
    "align_face",
    "center_crop",
    "make_detector",
    "most_prominent",
    "similarity_transform",
]

"""Keras networks and model files. Importing this package imports TensorFlow."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off the CLI

from .facenet import build_facenet, embedding_model  # noqa: E402
from .files import load_keras_model, load_weights_h5, save_model, save_weights_h5  # noqa: E402

__all__ = [
    "build_facenet",
    "embedding_model",
    "load_keras_model",
    "load_weights_h5",
    "save_model",
    "save_weights_h5",
]

"""Exported-model inference: ONNX Runtime and LiteRT, with numpy and no TensorFlow.

`load_exported(path)` opens an `.onnx` or `.tflite` file written by `facenet export` and returns
an embedder (aligned uint8 crops (n, S, S, 3) -> unit float32 embeddings (n, D)) together with
the file's ModelInfo, which travels inside the file (ONNX `metadata_props` and TFLite model
metadata, both under the key "facenet"). A `<file>.json` sidecar is read for files that carry
none. This package never imports TensorFlow: it is what the light install runs. Writing exports
needs TensorFlow and lives outside this package, in `facenet.export`.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError, ModelNotFoundError
from ..metadata import ModelInfo
from .common import METADATA_KEY, num_threads

EXPORT_SUFFIXES = (".onnx", ".tflite")

__all__ = [
    "EXPORT_SUFFIXES",
    "METADATA_KEY",
    "load_exported",
    "num_threads",
    "read_exported_info",
]


def load_exported(path: str | os.PathLike, **options):
    """An embedder and the ModelInfo for an exported `.onnx` or `.tflite` model file.

    options go to the runtime: `providers` / `num_threads` for ONNX Runtime, `num_threads`
    for LiteRT.
    """
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnx_runtime import OnnxEmbedder

        embedder = OnnxEmbedder(path, **options)
    elif suffix == ".tflite":
        from .litert import LiteRTEmbedder

        embedder = LiteRTEmbedder(path, **options)
    else:
        raise ModelError(f"{path}: not an exported model (expected .onnx or .tflite)")
    return embedder, embedder.info


def read_exported_info(path: str | os.PathLike) -> ModelInfo:
    """The ModelInfo of an exported file without building an inference session."""
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnx_runtime import read_onnx_info

        return read_onnx_info(path)
    if suffix == ".tflite":
        from .litert import read_tflite_info

        return read_tflite_info(path)
    raise ModelError(f"{path}: not an exported model (expected .onnx or .tflite)")


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such model file")
    return path

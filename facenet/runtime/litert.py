"""LiteRT (TensorFlow Lite) embedder over `ai-edge-litert`'s Interpreter, no TensorFlow.

ModelInfo is read from the flatbuffer's model metadata (key "facenet") with the schema module
`ai-edge-litert` ships. The interpreter uses every usable core (XNNPACK runs single-threaded
unless told otherwise). A dynamic-batch model is resized when the batch size changes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metadata import ModelInfo
from .batching import prepare, run_fixed_batch, unit_rows
from .common import METADATA_KEY, info_from_text, num_threads

INSTALL_HINT = "pip install 'facenet-keras[litert]' (or ai-edge-litert)"


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ModelError(f".tflite models need LiteRT: {INSTALL_HINT}") from None
    return Interpreter


def metadata_from_bytes(content: bytes, key: str = METADATA_KEY) -> bytes | None:
    """The bytes of the TFLite model metadata entry `key`, or None when absent."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise ModelError(f".tflite models need LiteRT: {INSTALL_HINT}") from None
    model = schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() is not None and entry.Name().decode() == key:
            buffer = model.Buffers(entry.Buffer())
            if buffer.DataLength() == 0 and buffer.Size():  # stored after the flatbuffer
                start = buffer.Offset()
                return bytes(content[start : start + buffer.Size()])
            return buffer.DataAsNumpy().tobytes()
    return None


def read_tflite_info(path: str | os.PathLike) -> ModelInfo:
    path = Path(path)
    return info_from_text(_metadata(path.read_bytes(), path), path)


def _metadata(content: bytes, path: Path) -> bytes | None:
    try:
        return metadata_from_bytes(content)
    except ModelError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything from struct to IndexError
        raise ModelError(f"{path}: not a readable TFLite model ({exc})") from None


class LiteRTEmbedder:
    """Aligned crops (n, S, S, 3) -> unit embeddings (n, D) through the LiteRT interpreter."""

    runtime = "litert"

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self.path = Path(path)
        interpreter_class = _interpreter_class()
        content = self.path.read_bytes()
        self.info = info_from_text(_metadata(content, self.path), self.path)
        self.threads = num_threads or _threads()
        try:
            self.interpreter = interpreter_class(model_content=content, num_threads=self.threads)
        except Exception as exc:
            raise ModelError(f"{path}: LiteRT cannot open this model ({exc})") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or not outputs:
            raise ModelError(f"{path}: expected one image input; found {len(inputs)} inputs")
        spec, self._output = inputs[0], outputs[0]["index"]
        size = self.info.input_size
        signature = list(spec.get("shape_signature", spec["shape"]))
        if signature[1:] != [size, size, 3] or spec["dtype"] not in (np.uint8, np.float32):
            raise ModelError(
                f"{path}: input is {np.dtype(spec['dtype']).name} {signature}; expected uint8 or "
                f"float32 (batch, {size}, {size}, 3) as the metadata says"
            )
        self._input = spec["index"]
        self.dtype = np.dtype(spec["dtype"])
        #: The fixed batch size the graph was exported with, or None when dynamic.
        self.batch = None if signature[0] == -1 else int(signature[0])
        self._allocated = None
        if self.batch is not None:
            self.interpreter.allocate_tensors()
            self._allocated = self.batch

    def _run(self, crops: np.ndarray) -> np.ndarray:
        interpreter = self.interpreter
        if self._allocated != len(crops):
            interpreter.resize_tensor_input(self._input, crops.shape, strict=True)
            interpreter.allocate_tensors()
            self._allocated = len(crops)
        interpreter.set_tensor(self._input, crops)
        interpreter.invoke()
        return interpreter.get_tensor(self._output)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = prepare(crops, self.info.input_size, self.dtype)
        if len(crops) == 0:
            return np.zeros((0, self.info.embedding_size), np.float32)
        if self.batch is None:
            out = self._run(crops)
        else:
            out = run_fixed_batch(self._run, crops, self.batch)
        return unit_rows(out)


def _threads() -> int:
    return num_threads()

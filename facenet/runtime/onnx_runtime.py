"""ONNX Runtime embedder: one InferenceSession per model, all graph optimisations on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metadata import ModelInfo
from .batching import prepare, run_fixed_batch, unit_rows
from .common import METADATA_KEY, info_from_text, num_threads

#: Execution providers used when present, fastest first (TensorRT is left out: it compiles the
#: graph for minutes on first use).
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")
_DTYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise ModelError("ONNX models need ONNX Runtime: pip install onnxruntime") from None
    return onnxruntime


def session_options(threads: int | None = None):
    """Session options: intra-op threads = usable cores, every graph optimisation, no spinning."""
    ort = _ort()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle pool threads would otherwise spin for a while after each run, taking the cores from
    # the next session (MTCNN's three stages, other processes): slower on a small shared CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def default_providers() -> list[str]:
    available = set(_ort().get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]


def open_session(path: str | os.PathLike, providers=None, num_threads: int | None = None):
    """An InferenceSession for `path` with this package's options (also used by benchmarks)."""
    ort = _ort()
    try:
        return ort.InferenceSession(
            str(path), session_options(num_threads), providers=providers or default_providers()
        )
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
        raise ModelError(f"{path}: ONNX Runtime cannot open this model ({exc})") from None


def read_onnx_info(path: str | os.PathLike) -> ModelInfo:
    """ModelInfo from the file's `metadata_props`, read through ONNX Runtime (no `onnx`)."""
    path = Path(path)
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{path}: ONNX Runtime cannot open this model ({exc})") from None
    return _info(session, path)


def _info(session, path: Path) -> ModelInfo:
    meta = session.get_modelmeta().custom_metadata_map
    return info_from_text(meta.get(METADATA_KEY), path)


class OnnxEmbedder:
    """Aligned crops (n, S, S, 3) -> unit embeddings (n, D) through ONNX Runtime."""

    runtime = "onnxruntime"

    def __init__(self, path: str | os.PathLike, providers=None, num_threads: int | None = None):
        self.path = Path(path)
        self.session = open_session(self.path, providers, num_threads)
        self.info = _info(self.session, self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelError(f"{path}: expected one image input; found {len(inputs)} inputs")
        spec = inputs[0]
        size = self.info.input_size
        if list(spec.shape[1:]) != [size, size, 3] or spec.type not in _DTYPES:
            raise ModelError(
                f"{path}: input '{spec.name}' is {spec.type} {spec.shape}; expected uint8 or "
                f"float (batch, {size}, {size}, 3) as the metadata says"
            )
        self.input_name = spec.name
        self.output_name = outputs[0].name
        self.dtype = _DTYPES[spec.type]
        #: The fixed batch size the graph was exported with, or None when dynamic.
        self.batch = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.runtime = (
            "onnxruntime-"
            + self.session.get_providers()[0].removesuffix("ExecutionProvider").lower()
        )

    def _run(self, crops: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: crops})[0]

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        crops = prepare(crops, self.info.input_size, self.dtype)
        if len(crops) == 0:
            return np.zeros((0, self.info.embedding_size), np.float32)
        if self.batch is None or len(crops) == self.batch:
            out = self._run(crops)
        else:
            out = run_fixed_batch(self._run, crops, self.batch)
        return unit_rows(out)

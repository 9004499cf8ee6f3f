"""The ONNX Runtime sessions MTCNN's three networks run in (apart from the cascade in
`mtcnn.py`): which thread count an input gets, and how a session is configured."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError, ModelNotFoundError


class MtcnnNet:
    """One network with a single-threaded session for small inputs and, when `threads` > 1, a
    multi-threaded one for inputs of at least `parallel_from` pixels: on small inputs thread
    hand-offs cost more than they save (measured: a 250 x 250 photo runs about twice as fast
    single-threaded on 2 cores, while large canvases gain from both)."""

    def __init__(self, path: Path, threads: int, parallel_from: int):
        if not path.is_file():
            raise ModelNotFoundError(
                f"{path}: MTCNN weights not found (rebuild them with tools/convert_mtcnn.py)"
            )
        self.path, self.threads, self.parallel_from = path, threads, parallel_from
        self._sessions: dict[int, object] = {}

    def run(self, outputs, feed: dict[str, np.ndarray]):
        """`InferenceSession.run` on the session sized for this input."""
        x = feed["image"]
        pixels = x.shape[0] * x.shape[1] * x.shape[2]
        threads = self.threads if pixels >= self.parallel_from else 1
        session = self._sessions.get(threads)
        if session is None:
            session = self._sessions[threads] = new_session(self.path, threads)
        return session.run(outputs, feed)


def new_session(path: Path, threads: int):
    """A CPU ONNX Runtime session for one MTCNN network: sequential, `threads` intra-op
    threads, no memory arena."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise ModelError(f"MTCNN needs onnxruntime: pip install onnxruntime ({exc})") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = False  # P-Net sees a different canvas shape every call
    # No memory arena: an arena keeps its largest run's activations for the process's life
    # (a crowded photo left a server 190 MB larger); allocation costs no measurable time here.
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 3
    # Idle pool threads must not spin between runs: the three stages alternate with Python work
    # (NMS, crops) and with the embedder's own pool, which spinning threads would starve.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{path}: cannot load MTCNN network ({exc})") from None

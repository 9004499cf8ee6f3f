"""Training data: folder-per-identity datasets, the P x K sampler, consistent views, the tf.data
pipeline.

`dataset`, `sampler` and `views` need no TensorFlow (the JAX trainer uses them on machines
without it); the pipeline names below are imported on first use, and importing
`facenet.data.pipeline` imports TensorFlow.
"""

from typing import Any

from .dataset import FaceDataset, make_pairs, scan_folder, split_identities
from .sampler import PKSampler

_PIPELINE = ("Augment", "context_size", "eval_images", "pipeline_throughput", "train_dataset")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'facenet.data' has no attribute {name!r}")


__all__ = [
    "Augment",
    "FaceDataset",
    "PKSampler",
    "context_size",
    "eval_images",
    "make_pairs",
    "pipeline_throughput",
    "scan_folder",
    "split_identities",
    "train_dataset",
]

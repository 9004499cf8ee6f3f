"""Training data: folder-per-identity datasets, the P x K sampler, the tf.data pipeline.

Importing `facenet.data.pipeline` (or this package) imports TensorFlow.
"""

from .dataset import FaceDataset, make_pairs, scan_folder, split_identities
from .pipeline import Augment, context_size, eval_images, pipeline_throughput, train_dataset
from .sampler import PKSampler

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

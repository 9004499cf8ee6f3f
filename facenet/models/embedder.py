"""The Keras inference backend: one compiled graph with a fixed input signature.

`model.predict` and eager calls cost ~90 ms per call on a 2-core CPU; a traced tf.function over
uint8 batches runs the same network about 10x faster at batch 1.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..metadata import ModelInfo
from .facenet import embedding_model


class KerasEmbedder:
    """Maps aligned uint8 crops (n, S, S, 3) to unit embeddings (n, D) with a traced graph."""

    runtime = "tensorflow"

    def __init__(self, model: keras.Model, info: ModelInfo):
        self.model = embedding_model(model)
        self.info = info
        size = info.input_size
        spec = tf.TensorSpec([None, size, size, 3], tf.uint8, name="images")
        network = self.model

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def embed(images):
            return network(tf.cast(images, tf.float32), training=False)

        self._embed = embed

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        return self._embed(crops).numpy()

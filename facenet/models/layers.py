"""Registered layers, so a saved `.keras` file restores without custom code or Lambda layers."""

from __future__ import annotations

import keras
from keras import ops

from ..metadata import PREPROCESSING_MODES, check_choice


@keras.saving.register_keras_serializable(package="facenet")
class Preprocessing(keras.layers.Layer):
    """Maps raw pixel values (0..255, any float or int dtype) to the network's input range.

    fixed: (x - 127.5) / 128 (FaceNet 2018); prewhiten: per-image standardisation (FaceNet 2017);
    unit: x / 255 (the reference Keras code).
    """

    def __init__(self, mode: str = "fixed", **kwargs):
        super().__init__(**kwargs)
        check_choice("preprocessing", mode, PREPROCESSING_MODES)
        self.mode = mode

    def call(self, inputs):
        """Scale raw pixels as the mode says."""
        x = ops.cast(inputs, "float32")
        if self.mode == "fixed":
            return (x - 127.5) / 128.0
        if self.mode == "unit":
            return x / 255.0
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        size = ops.cast(ops.prod(ops.shape(x)[1:]), "float32")
        return (x - mean) / ops.maximum(std, 1.0 / ops.sqrt(size))

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """Keras serialisation."""
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="facenet")
class L2Normalize(keras.layers.Layer):
    """Unit-length rows: x / sqrt(max(|x|^2, epsilon))."""

    def __init__(self, epsilon: float = 1e-10, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, inputs):
        """Normalise each row."""
        squared = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(squared, self.epsilon))

    def compute_output_shape(self, input_shape):
        """Same shape as the input."""
        return input_shape

    def get_config(self):
        """Keras serialisation."""
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="facenet")
class ScaledResidual(keras.layers.Layer):
    """x + scale * residual: the Inception-ResNet block sum (no weights, so names stay free)."""

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        """shortcut + scale x residual."""
        shortcut, residual = inputs
        return shortcut + self.scale * residual

    def compute_output_shape(self, input_shape):
        """The shortcut's shape."""
        return input_shape[0]

    def get_config(self):
        """Keras serialisation."""
        return {**super().get_config(), "scale": self.scale}

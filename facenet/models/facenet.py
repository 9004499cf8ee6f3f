"""The FaceNet network: preprocessing, a backbone, the bottleneck head and L2 normalisation."""

from __future__ import annotations

import keras
from keras import layers

from ..backbones import get_backbone
from ..metadata import POOLING_MODES, check_choice
from .layers import L2Normalize, Preprocessing


def build_facenet(
    backbone: str = "mobilenet",
    input_shape: tuple[int, int, int] = (160, 160, 3),
    embedding_size: int = 128,
    num_classes: int | None = None,
    *,
    dropout: float = 0.2,
    preprocessing: str = "fixed",
    pooling: str = "average",
    **options,
) -> keras.Model:
    """Build a FaceNet model taking raw RGB pixels (0..255) and returning unit embeddings.

    With `num_classes`, the model is in training form: outputs {"embedding", "logits",
    "bottleneck"}, the logits being a Dense classifier on the batch-normalised bottleneck (before
    normalisation), which is output too (distillation regresses it onto a teacher).
    `pooling` turns the last feature map into one vector: "average" (the Keras FaceNet's global
    average) or "depthwise" (MobileFaceNet's global depthwise convolution: a learnt weight per
    channel and position, since aligned faces put the eyes in the same cells; it starts as the
    average, so weights trained with "average" load into it unchanged). `options` are the
    backbone's own (`backbones.py`, e.g. MobileNet's `alpha`); the others are ignored.
    """
    spec = get_backbone(backbone)
    if embedding_size < 1:
        raise ValueError(f"embedding_size must be positive; got {embedding_size}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = Preprocessing(preprocessing, name="preprocessing")(inputs)
    x = spec.build(x, **options)
    x = _pool(x, pooling)
    x = layers.Dropout(dropout, name="Dropout")(x)
    x = layers.Dense(embedding_size, use_bias=False, name="Bottleneck")(x)
    bottleneck = layers.BatchNormalization(
        momentum=0.995, epsilon=0.001, scale=False, name=spec.bottleneck_bn
    )(x)
    embedding = L2Normalize(name="embedding")(bottleneck)
    name = f"facenet_{backbone}"
    if num_classes is None:
        return keras.Model(inputs, embedding, name=name)
    logits = layers.Dense(num_classes, name="logits")(bottleneck)
    outputs = {"embedding": embedding, "logits": logits, "bottleneck": bottleneck}
    return keras.Model(inputs, outputs, name=name)


#: the global depthwise convolution's kernel is stored this many times smaller and multiplied
#: back after it: Adam moves every weight by about the learning rate, so the per-position
#: weights (1/16 each on the 4x4 map of a 112 px input) learn this much faster than the
#: backbone's, instead of drifting ~1% in a fine-tuning run
GDC_GAIN = 10.0


def _pool(features, pooling: str):
    if pooling == "average":
        return layers.GlobalAveragePooling2D(name="AvgPool")(features)
    check_choice("pooling", pooling, POOLING_MODES)
    height, width = features.shape[1], features.shape[2]
    x = layers.DepthwiseConv2D(
        (height, width), use_bias=False, name="GDC",
        depthwise_initializer=keras.initializers.Constant(1.0 / (height * width * GDC_GAIN)),
    )(features)  # fmt: skip
    x = layers.Rescaling(GDC_GAIN, name="GDCGain")(x)
    return layers.Flatten(name="GDCFlatten")(x)


def embedding_model(model: keras.Model) -> keras.Model:
    """The inference form of a (possibly training-form) FaceNet model, sharing its weights."""
    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.output["embedding"], name=model.name)

"""The FaceNet network: preprocessing, a backbone, the bottleneck head and L2 normalisation."""

from __future__ import annotations

import keras
from keras import layers

from ..metadata import BACKBONES, check_choice
from .inception_resnet_v1 import inception_resnet_v1
from .layers import L2Normalize, Preprocessing
from .mobilenet_v1 import mobilenet_v1

#: The bottleneck's BatchNorm is named differently in the two public weight files.
BOTTLENECK_BN = {"mobilenet": "BatchNorm_Bottleneck", "inception_resnet_v1": "Bottleneck_BatchNorm"}


def build_facenet(
    backbone: str = "mobilenet",
    input_shape: tuple[int, int, int] = (160, 160, 3),
    embedding_size: int = 128,
    num_classes: int | None = None,
    *,
    alpha: float = 1.0,
    dropout: float = 0.2,
    preprocessing: str = "fixed",
) -> keras.Model:
    """Build a FaceNet model taking raw RGB pixels (0..255) and returning unit embeddings.

    With `num_classes`, the model is in training form: outputs {"embedding", "logits",
    "bottleneck"}, the logits being a Dense classifier on the batch-normalised bottleneck (before
    normalisation), which is output too (distillation regresses it onto a teacher).
    """
    check_choice("backbone", backbone, BACKBONES)
    if embedding_size < 1:
        raise ValueError(f"embedding_size must be positive; got {embedding_size}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = Preprocessing(preprocessing, name="preprocessing")(inputs)
    if backbone == "mobilenet":
        x = mobilenet_v1(x, alpha=alpha)
    else:
        x = inception_resnet_v1(x)
    x = layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = layers.Dropout(dropout, name="Dropout")(x)
    x = layers.Dense(embedding_size, use_bias=False, name="Bottleneck")(x)
    bottleneck = layers.BatchNormalization(
        momentum=0.995, epsilon=0.001, scale=False, name=BOTTLENECK_BN[backbone]
    )(x)
    embedding = L2Normalize(name="embedding")(bottleneck)
    name = f"facenet_{backbone}"
    if num_classes is None:
        return keras.Model(inputs, embedding, name=name)
    logits = layers.Dense(num_classes, name="logits")(bottleneck)
    outputs = {"embedding": embedding, "logits": logits, "bottleneck": bottleneck}
    return keras.Model(inputs, outputs, name=name)


def embedding_model(model: keras.Model) -> keras.Model:
    """The inference form of a (possibly training-form) FaceNet model, sharing its weights."""
    if not isinstance(model.output, dict):
        return model
    return keras.Model(model.input, model.output["embedding"], name=model.name)

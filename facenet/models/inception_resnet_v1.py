"""Inception-ResNet-v1 as in FaceNet, with the layer names of the public Keras FaceNet weights.

Every convolution is followed by `<name>_BatchNorm` (scale=False, epsilon 0.001, momentum 0.995)
and `<name>_Activation`, except the residual projections `BlockNN_k_Conv2d_1x1`, which have a bias
and no normalisation.
"""

from __future__ import annotations

from keras import layers

from .layers import ScaledResidual

INIT = "he_normal"


def conv_bn(x, filters, kernel, name: str, strides=1, padding="same", activation="relu"):
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding=padding, use_bias=False,
        kernel_initializer=INIT, name=name,
    )(x)  # fmt: skip
    x = layers.BatchNormalization(
        momentum=0.995, epsilon=0.001, scale=False, name=f"{name}_BatchNorm"
    )(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_Activation")(x)
    return x


def _branch(prefix: str, index: int, name: str) -> str:
    return f"{prefix}_Branch_{index}_{name}"


def _block(x, kind: str, index: int, scale: float, activation: str | None = "relu"):
    p = f"{kind}_{index}"
    if kind == "Block35":
        b0 = conv_bn(x, 32, 1, _branch(p, 0, "Conv2d_1x1"))
        b1 = conv_bn(x, 32, 1, _branch(p, 1, "Conv2d_0a_1x1"))
        b1 = conv_bn(b1, 32, 3, _branch(p, 1, "Conv2d_0b_3x3"))
        b2 = conv_bn(x, 32, 1, _branch(p, 2, "Conv2d_0a_1x1"))
        b2 = conv_bn(b2, 32, 3, _branch(p, 2, "Conv2d_0b_3x3"))
        b2 = conv_bn(b2, 32, 3, _branch(p, 2, "Conv2d_0c_3x3"))
        branches = [b0, b1, b2]
    elif kind == "Block17":
        b0 = conv_bn(x, 128, 1, _branch(p, 0, "Conv2d_1x1"))
        b1 = conv_bn(x, 128, 1, _branch(p, 1, "Conv2d_0a_1x1"))
        b1 = conv_bn(b1, 128, (1, 7), _branch(p, 1, "Conv2d_0b_1x7"))
        b1 = conv_bn(b1, 128, (7, 1), _branch(p, 1, "Conv2d_0c_7x1"))
        branches = [b0, b1]
    else:  # Block8
        b0 = conv_bn(x, 192, 1, _branch(p, 0, "Conv2d_1x1"))
        b1 = conv_bn(x, 192, 1, _branch(p, 1, "Conv2d_0a_1x1"))
        b1 = conv_bn(b1, 192, (1, 3), _branch(p, 1, "Conv2d_0b_1x3"))
        b1 = conv_bn(b1, 192, (3, 1), _branch(p, 1, "Conv2d_0c_3x1"))
        branches = [b0, b1]
    mixed = layers.Concatenate(name=f"{p}_Concatenate")(branches)
    up = layers.Conv2D(
        x.shape[-1], 1, use_bias=True, kernel_initializer=INIT, name=f"{p}_Conv2d_1x1"
    )(mixed)
    x = ScaledResidual(scale, name=f"{p}_ScaleSum")([x, up])
    if activation is not None:
        x = layers.Activation(activation, name=f"{p}_Activation")(x)
    return x


def inception_resnet_v1(x):
    """Apply Inception-ResNet-v1 to tensor `x`; returns the 1792-channel last feature map."""
    x = conv_bn(x, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = conv_bn(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = conv_bn(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, name="MaxPool_3a_3x3")(x)
    x = conv_bn(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = conv_bn(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = conv_bn(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")
    for i in range(1, 6):
        x = _block(x, "Block35", i, 0.17)

    p = "Mixed_6a"
    b0 = conv_bn(x, 384, 3, _branch(p, 0, "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = conv_bn(x, 192, 1, _branch(p, 1, "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 192, 3, _branch(p, 1, "Conv2d_0b_3x3"))
    b1 = conv_bn(b1, 256, 3, _branch(p, 1, "Conv2d_1a_3x3"), strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, name=_branch(p, 2, "MaxPool_1a_3x3"))(x)
    x = layers.Concatenate(name=p)([b0, b1, pool])
    for i in range(1, 11):
        x = _block(x, "Block17", i, 0.10)

    p = "Mixed_7a"
    b0 = conv_bn(x, 256, 1, _branch(p, 0, "Conv2d_0a_1x1"))
    b0 = conv_bn(b0, 384, 3, _branch(p, 0, "Conv2d_1a_3x3"), strides=2, padding="valid")
    b1 = conv_bn(x, 256, 1, _branch(p, 1, "Conv2d_0a_1x1"))
    b1 = conv_bn(b1, 256, 3, _branch(p, 1, "Conv2d_1a_3x3"), strides=2, padding="valid")
    b2 = conv_bn(x, 256, 1, _branch(p, 2, "Conv2d_0a_1x1"))
    b2 = conv_bn(b2, 256, 3, _branch(p, 2, "Conv2d_0b_3x3"))
    b2 = conv_bn(b2, 256, 3, _branch(p, 2, "Conv2d_1a_3x3"), strides=2, padding="valid")
    pool = layers.MaxPooling2D(3, strides=2, name=_branch(p, 3, "MaxPool_1a_3x3"))(x)
    x = layers.Concatenate(name=p)([b0, b1, b2, pool])
    for i in range(1, 6):
        x = _block(x, "Block8", i, 0.20)
    return _block(x, "Block8", 6, 1.0, activation=None)

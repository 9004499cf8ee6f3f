"""MobileNetV1 backbone with the Keras Applications layer names (conv1, conv_dw_k, conv_pw_k...).

He initialisation throughout: Keras' default Glorot on depthwise kernels shrinks activations of
the untrained network to ~1e-20, which makes embeddings 0 or NaN.
"""

from __future__ import annotations

import keras
from keras import layers

#: (pointwise filters, stride) of the 13 depthwise-separable blocks.
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)  # fmt: skip

INIT = "he_normal"


def depthwise_init() -> keras.initializers.Initializer:
    """He for depthwise kernels: Keras counts a (3, 3, C, 1) kernel's fan-in as 9C, but each
    output sees 9 inputs, which its fan-out (9) states correctly. A new instance per layer, so
    every layer draws its own weights under the global seed."""
    return keras.initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")


def mobilenet_v1(x, alpha: float = 1.0, depth_multiplier: int = 1):
    """Apply MobileNetV1 to tensor `x`; returns the last feature map (5x5x1024 at 160 px)."""
    x = layers.Conv2D(
        int(32 * alpha), 3, strides=2, padding="same", use_bias=False,
        kernel_initializer=INIT, name="conv1",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(name="conv1_bn")(x)
    x = layers.ReLU(6.0, name="conv1_relu")(x)
    for block, (filters, stride) in enumerate(BLOCKS, start=1):
        x = _depthwise_separable(x, int(filters * alpha), stride, depth_multiplier, block)
    return x


def _depthwise_separable(x, filters: int, stride: int, depth_multiplier: int, block: int):
    if stride == 2:
        x = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{block}")(x)
    x = layers.DepthwiseConv2D(
        3, strides=stride, padding="same" if stride == 1 else "valid",
        depth_multiplier=depth_multiplier, use_bias=False,
        depthwise_initializer=depthwise_init(), name=f"conv_dw_{block}",
    )(x)  # fmt: skip
    x = layers.BatchNormalization(name=f"conv_dw_{block}_bn")(x)
    x = layers.ReLU(6.0, name=f"conv_dw_{block}_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=INIT, name=f"conv_pw_{block}")(
        x
    )
    x = layers.BatchNormalization(name=f"conv_pw_{block}_bn")(x)
    return layers.ReLU(6.0, name=f"conv_pw_{block}_relu")(x)

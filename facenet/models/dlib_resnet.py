"""dlib's 128-d face ResNet as a Keras network (a FaceNet-style model: raw pixels in, unit out).

The weights come from dlib's model file through `facenet.convert.dlib_format` (parsed and
folded with numpy), so this network is dlib's exactly: convolution padding as stored ('valid'
for strided layers), dlib's zero-padded residual sums, and its fc output, L2-normalised here
(the product's convention; dlib's raw descriptors have |d| ~ 1.3-1.6) unless `normalize=False`
(the raw descriptors a distillation teacher regresses onto).
"""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, ops

from ..convert.dlib_format import CHIP_SIZE, read_folded
from .layers import L2Normalize


@keras.saving.register_keras_serializable(package="facenet")
class PadAdd(layers.Layer):
    """dlib's add_prev: the sum of two tensors, the smaller zero-padded at the end of each axis."""

    def call(self, a, b):
        ha, wa, ca = a.shape[1], a.shape[2], a.shape[3]
        hb, wb, cb = b.shape[1], b.shape[2], b.shape[3]
        h, w, c = max(ha, hb), max(wa, wb), max(ca, cb)
        a = ops.pad(a, [[0, 0], [0, h - ha], [0, w - wa], [0, c - ca]])
        b = ops.pad(b, [[0, 0], [0, h - hb], [0, w - wb], [0, c - cb]])
        return a + b

    def compute_output_shape(self, a_shape, b_shape):
        return (a_shape[0], *(max(x, y) for x, y in zip(a_shape[1:], b_shape[1:], strict=True)))


@keras.saving.register_keras_serializable(package="facenet")
class WithMirror(layers.Layer):
    """A batch followed by its left-right mirror: (n, H, W, C) -> (2n, H, W, C)."""

    def call(self, x):
        return ops.concatenate([x, ops.flip(x, axis=2)], axis=0)

    def compute_output_shape(self, shape):
        return (None if shape[0] is None else 2 * shape[0], *shape[1:])


@keras.saving.register_keras_serializable(package="facenet")
class SumMirrored(layers.Layer):
    """The sum of each row and its mirror's: (2n, D) from `WithMirror` -> (n, D)."""

    def call(self, y):
        half = ops.shape(y)[0] // 2
        return y[:half] + y[half:]

    def compute_output_shape(self, shape):
        return (None if shape[0] is None else shape[0] // 2, *shape[1:])


def build_dlib_resnet(
    dat_path: str | Path, *, normalize: bool = True, flip: bool = False
) -> keras.Model:
    """(batch, 150, 150, 3) RGB pixels 0..255 -> (batch, 128) embeddings, weights from dlib.

    flip: test-time flip inside the network: the descriptors of the chip and of its mirror are
    added before normalising (one batch of 2n through the network: twice the compute).
    """
    specs = read_folded(dat_path)
    x = inputs = keras.Input((CHIP_SIZE, CHIP_SIZE, 3), name="image")
    if flip:
        x = WithMirror(name="with_mirror")(x)
    tags: dict[int, object] = {}
    loaded: list[tuple[layers.Layer, list]] = []
    for n, spec in enumerate(specs, start=1):
        x = _apply(spec, n, x, tags, loaded)
    if flip:
        x = SumMirrored(name="sum_mirrored")(x)
    if normalize:
        x = L2Normalize(name="embedding")(x)
    model = keras.Model(inputs, x, name="dlib_resnet_v1")
    for layer, weights in loaded:
        layer.set_weights(weights)
    return model


def _apply(spec: dict, n: int, x, tags: dict, loaded: list):
    """One folded dlib layer on top of `x` (tags/skips rewire the graph for the residuals)."""
    kind = spec["kind"]
    if kind == "con":
        py, px = spec["padding"]
        if py or px:
            x = layers.ZeroPadding2D(((py, py), (px, px)), name=f"pad{n}")(x)
        conv = layers.Conv2D(
            spec["w"].shape[-1], spec["w"].shape[:2], strides=spec["stride"], name=f"con{n}"
        )
        loaded.append((conv, [spec["w"], spec["b"]]))
        return conv(x)
    if kind == "relu":
        return layers.ReLU(name=f"relu{n}")(x)
    if kind in ("max_pool", "avg_pool"):
        if spec["nr"] == 0:  # avg_pool_everything
            return layers.GlobalAveragePooling2D(name=f"gap{n}")(x)
        if spec["padding"] != (0, 0):
            raise ValueError("padded pooling is not in dlib's face ResNet")
        pool = layers.MaxPooling2D if kind == "max_pool" else layers.AveragePooling2D
        return pool((spec["nr"], spec["nc"]), strides=spec["stride"], name=f"{kind}{n}")(x)
    if kind == "tag":
        tags[spec["id"]] = x
        return x
    if kind == "skip":
        return tags[spec["id"]]
    if kind == "add_prev":
        return PadAdd(name=f"add{n}")(x, tags[spec["tag"]])
    if kind == "fc":
        dense = layers.Dense(spec["w"].shape[1], use_bias=False, name="fc")
        loaded.append((dense, [spec["w"]]))
        return dense(x)
    raise ValueError(f"unexpected dlib layer {kind}")

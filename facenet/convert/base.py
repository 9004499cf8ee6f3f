"""What the weight converters share: the embedding-size check, named source tensors handed out
once each, and filling an Inception-ResNet-v1 Keras network from them (the TF checkpoint and
PyTorch converters differ only in tensor names and kernel layout).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metadata import ModelInfo


def check_embedding_size(path, found: int, wanted: int | None) -> None:
    """ModelError when the user asked for another embedding size than the weights give."""
    if wanted is not None and wanted != found:
        raise ModelError(f"{path}: the weights give {found}-d embeddings, not {wanted}")


# --- shared by the checkpoint and PyTorch converters -----------------------------------------


class TensorSource:
    """Named source tensors, handed out once each; what is left over is an error."""

    def __init__(self, tensors: dict[str, np.ndarray], path: Path, ignored: Callable[[str], bool]):
        self.tensors = tensors
        self.path = path
        self.ignored = ignored
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        """True when the source holds a tensor of this name."""
        return name in self.tensors

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor `name` as float32, checked against `shape`; marked used."""
        if name not in self.tensors:
            raise ModelError(f"{self.path}: tensor '{name}' is missing")
        array = np.asarray(self.tensors[name])
        if tuple(array.shape) != tuple(shape):
            raise ModelError(
                f"{self.path}: tensor '{name}' has shape {tuple(array.shape)}; the network needs "
                f"{tuple(shape)}"
            )
        self.used.add(name)
        return array.astype(np.float32)

    def check_all_used(self) -> None:
        """ModelError naming leftover tensors: the file is another network."""
        extra = sorted(n for n in self.tensors if n not in self.used and not self.ignored(n))
        if extra:
            more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
            names = ", ".join(f"'{n}'" for n in extra[:5])
            raise ModelError(f"{self.path}: unexpected tensor(s) {names}{more}: not this network")


@dataclass(frozen=True)
class Names:
    """Source tensor names of one Keras weight layer (None where the source has none)."""

    kernel: str
    bias: str | None = None
    gamma: str | None = None
    beta: str | None = None
    mean: str | None = None
    variance: str | None = None


def load_inception(
    model,
    source: TensorSource,
    names: Callable[[str, str], Names],
    kernel_layout: Callable[[np.ndarray], np.ndarray],
    kernel_source_shape: Callable[[tuple[int, ...]], tuple[int, ...]],
) -> None:
    """Fill an Inception-ResNet-v1 Keras model from `source`, checking every tensor.

    names(layer_name, kind) gives the source names for a Conv2D/Dense layer (kind "conv_bn",
    "conv_bias" or "dense_bn"); kernel_layout maps a source kernel to Keras' layout. A BatchNorm
    scale (gamma), which the Keras network does not have, is folded exactly into the kernel
    and the moving mean: gamma*(Wx - m)/s + b == ((gamma W)x - gamma m)/s + b.
    """
    from ..backbones import get_backbone

    layers = {layer.name: layer for layer in model.layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        kind_name = type(layer).__name__
        if kind_name == "BatchNormalization":
            continue  # filled with its convolution
        if kind_name == "Dense":
            bn = layers.get(get_backbone("inception_resnet_v1").bottleneck_bn)
            kind = "dense_bn"
        elif kind_name == "Conv2D":
            bn = layers.get(f"{layer.name}_BatchNorm")
            kind = "conv_bn" if bn is not None else "conv_bias"
        else:
            raise ModelError(f"converter: unexpected weighted layer {layer.name} ({kind_name})")
        n = names(layer.name, kind)
        kernel_shape = tuple(layer.kernel.shape)
        kernel = kernel_layout(source.take(n.kernel, kernel_source_shape(kernel_shape)))
        if kind == "conv_bias":
            layer.set_weights([kernel, source.take(n.bias, (kernel_shape[-1],))])
            continue
        channels = (kernel_shape[-1],)
        beta = source.take(n.beta, channels)
        mean = source.take(n.mean, channels)
        variance = source.take(n.variance, channels)
        if n.gamma is not None and source.has(n.gamma):
            gamma = source.take(n.gamma, channels)
            kernel = kernel * gamma
            mean = mean * gamma
        layer.set_weights([kernel])
        bn.set_weights([beta, mean, variance])
    source.check_all_used()


def build_inception(info: ModelInfo, embedding_size: int):
    """An Inception-ResNet-v1 FaceNet at `info`'s input size and preprocessing."""
    from ..models import build_facenet

    size = info.input_size
    if size < 75:
        raise ModelError(f"Inception-ResNet-v1 needs an input of at least 75 px; got {size}")
    return build_facenet(
        "inception_resnet_v1", (size, size, 3), embedding_size, preprocessing=info.preprocessing
    )


def with_embedding_size(info: ModelInfo, embedding_size: int) -> ModelInfo:
    """`info` with another embedding size."""
    return ModelInfo.from_dict({**info.__dict__, "embedding_size": int(embedding_size)})

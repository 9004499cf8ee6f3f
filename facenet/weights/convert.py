"""Converting public face-recognition weights into a FaceNet model file (.keras or .onnx).

Sources: weights-only Keras `.h5` files (the Keras FaceNet 128-d Inception-ResNet-v1 file and
this package's own), davidsandberg/facenet TF checkpoints (`convert_checkpoint`),
facenet-pytorch state dicts (`convert_pytorch`) and dlib's face ResNet (`convert_dlib`). The
FaceNet files do not record their preprocessing, so it is given by the caller; every tensor's
name and shape is checked, and a missing, misshapen or unexpected tensor is a ModelError that
names it. Needs TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, ModelNotFoundError
from ..metadata import ModelInfo, check_choice

SOURCES = ("h5", "checkpoint", "pytorch", "dlib")
PYTORCH_SUFFIXES = (".pt", ".pth", ".bin", ".npz")
CHECKPOINT_MARKERS = (".index", ".meta", ".ckpt")


def detect_source(path: str | os.PathLike) -> str:
    """Which kind of weights file `path` is, from its name and layout."""
    path = Path(path)
    name = path.name.lower()
    if path.suffix.lower() in (".h5", ".hdf5"):
        return "h5"
    if path.suffix.lower() == ".dat":
        return "dlib"
    if path.suffix.lower() in PYTORCH_SUFFIXES:
        return "pytorch"
    if (
        path.is_dir()
        or ".ckpt" in name
        or ".data-" in name
        or path.suffix.lower() in CHECKPOINT_MARKERS
    ):
        return "checkpoint"
    if Path(f"{path}.index").is_file():
        return "checkpoint"
    raise ModelError(
        f"{path}: unknown weights file (expected a Keras .h5, a TF checkpoint prefix or folder, "
        "a PyTorch state dict .pt/.pth/.npz, or dlib's .dat); name the kind with --source"
    )


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source: str | None = None,
    backbone: str | None = None,
    preprocessing: str | None = None,
    input_size: int = 160,
    embedding_size: int | None = None,
    name: str | None = None,
):
    """Convert `src` to a FaceNet model file at `out` (`.keras`, or `.onnx` for the light
    runtime); returns (keras model, ModelInfo).

    preprocessing: required for h5 files and checkpoints ("prewhiten" for the Keras FaceNet
    h5 and 2017 checkpoints, "fixed" for 2018 ones); "fixed" by default for facenet-pytorch;
    dlib's file needs none (its scaling is folded into the network).
    """
    src = Path(src)
    if not src.exists() and not Path(f"{src}.index").is_file():
        raise ModelNotFoundError(f"{src}: no such weights file")
    out = Path(out)
    if out.suffix.lower() not in (".keras", ".onnx"):
        raise ModelError(f"{out}: the output must be a .keras or .onnx file")
    source = source or detect_source(src)
    check_choice("source", source, SOURCES)
    if source == "dlib":
        from .convert_dlib import convert_dlib

        model, info = convert_dlib(src, name=name)
        check_embedding_size(src, info.embedding_size, embedding_size)
    else:
        model, info = _convert_facenet(
            src, source, backbone, preprocessing, input_size, embedding_size, name
        )
    write_model(model, info, out)
    return model, info


def write_model(model, info: ModelInfo, out: Path) -> Path:
    """Save a converted network as `.keras` or export it as `.onnx`, by the name's suffix."""
    if out.suffix.lower() == ".onnx":
        from ..runtime.export import export_onnx

        return export_onnx(model, info, out)
    from ..models import save_model

    return save_model(model, info, out)


def _convert_facenet(src, source, backbone, preprocessing, input_size, embedding_size, name):
    """The FaceNet weight files (h5, TF checkpoint, PyTorch): Inception-ResNet-v1 or MobileNet."""
    if source == "pytorch" and preprocessing is None:
        preprocessing = "fixed"  # facenet-pytorch's fixed_image_standardization
    if preprocessing is None:
        raise ModelError(
            f"{src}: the file does not record its preprocessing; give --preprocessing "
            "(prewhiten for the Keras FaceNet h5 and 2017 checkpoints, fixed for 2018 ones)"
        )
    info = ModelInfo(
        backbone=backbone or "inception_resnet_v1",
        input_size=input_size,
        preprocessing=preprocessing,
        name=name or src.name.split(".")[0],
        extra={"converted_from": src.name, "source_format": source},
    )
    if source == "h5":
        return convert_h5(src, info, embedding_size)
    if info.backbone != "inception_resnet_v1":
        raise ModelError(f"{src}: {source} weights are Inception-ResNet-v1, not {info.backbone}")
    if source == "checkpoint":
        from .convert_checkpoint import convert_checkpoint

        return convert_checkpoint(src, info, embedding_size)
    from .convert_pytorch import convert_pytorch

    return convert_pytorch(src, info, embedding_size)


def convert_h5(path: Path, info: ModelInfo, embedding_size: int | None = None):
    """A weights-only Keras `.h5`: architecture from its layers, preprocessing from `info`."""
    from ..models.files import inspect_h5, load_weights_h5

    found = inspect_h5(path)
    if info.backbone not in (found.backbone, "inception_resnet_v1"):
        raise ModelError(f"{path}: holds {found.backbone} weights, not {info.backbone}")
    check_embedding_size(path, found.embedding_size, embedding_size)
    from ..backbones import get_backbone

    options = get_backbone(found.backbone).options_from(found)
    info = ModelInfo.from_dict(
        {
            **info.__dict__,
            **options,
            "backbone": found.backbone,
            "embedding_size": found.embedding_size,
        }
    )
    return load_weights_h5(path, info)


def check_embedding_size(path, found: int, wanted: int | None) -> None:
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
        return name in self.tensors

    def take(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
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
    from ..models import build_facenet

    size = info.input_size
    if size < 75:
        raise ModelError(f"Inception-ResNet-v1 needs an input of at least 75 px; got {size}")
    return build_facenet(
        "inception_resnet_v1", (size, size, 3), embedding_size, preprocessing=info.preprocessing
    )


def with_embedding_size(info: ModelInfo, embedding_size: int) -> ModelInfo:
    return ModelInfo.from_dict({**info.__dict__, "embedding_size": int(embedding_size)})

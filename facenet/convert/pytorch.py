"""facenet-pytorch `InceptionResnetV1` state dicts -> Keras.

Modules: `conv2d_1a`...`conv2d_4b`, `repeat_1.k` (Block35), `mixed_6a`, `repeat_2.k` (Block17),
`mixed_7a`, `repeat_3.k` (Block8), `block8`, `last_linear`, `last_bn`. Each BasicConv2d has
`conv.weight` (OIHW, transposed to HWIO) and `bn.{weight,bias,running_mean,running_var}` (eps
0.001 as in Keras; a gamma other than 1 is folded into the kernel); the residual projections
are `conv2d.{weight,bias}`. The classifier (`logits.*`) and `num_batches_tracked` are ignored.
`.pt/.pth` files are read with PyTorch (imported only here); a `.npz` of the same names needs
no PyTorch.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..metadata import ModelInfo
from .base import (
    Names,
    TensorSource,
    build_inception,
    check_embedding_size,
    load_inception,
    with_embedding_size,
)

STEM = {
    "Conv2d_1a_3x3": "conv2d_1a",
    "Conv2d_2a_3x3": "conv2d_2a",
    "Conv2d_2b_3x3": "conv2d_2b",
    "Conv2d_3b_1x1": "conv2d_3b",
    "Conv2d_4a_3x3": "conv2d_4a",
    "Conv2d_4b_3x3": "conv2d_4b",
}
BRANCHES = {
    "Block35": {
        "Branch_0_Conv2d_1x1": "branch0",
        "Branch_1_Conv2d_0a_1x1": "branch1.0",
        "Branch_1_Conv2d_0b_3x3": "branch1.1",
        "Branch_2_Conv2d_0a_1x1": "branch2.0",
        "Branch_2_Conv2d_0b_3x3": "branch2.1",
        "Branch_2_Conv2d_0c_3x3": "branch2.2",
        "Conv2d_1x1": "conv2d",
    },
    "Block17": {
        "Branch_0_Conv2d_1x1": "branch0",
        "Branch_1_Conv2d_0a_1x1": "branch1.0",
        "Branch_1_Conv2d_0b_1x7": "branch1.1",
        "Branch_1_Conv2d_0c_7x1": "branch1.2",
        "Conv2d_1x1": "conv2d",
    },
    "Block8": {
        "Branch_0_Conv2d_1x1": "branch0",
        "Branch_1_Conv2d_0a_1x1": "branch1.0",
        "Branch_1_Conv2d_0b_1x3": "branch1.1",
        "Branch_1_Conv2d_0c_3x1": "branch1.2",
        "Conv2d_1x1": "conv2d",
    },
    "Mixed_6a": {
        "Branch_0_Conv2d_1a_3x3": "branch0",
        "Branch_1_Conv2d_0a_1x1": "branch1.0",
        "Branch_1_Conv2d_0b_3x3": "branch1.1",
        "Branch_1_Conv2d_1a_3x3": "branch1.2",
    },
    "Mixed_7a": {
        "Branch_0_Conv2d_0a_1x1": "branch0.0",
        "Branch_0_Conv2d_1a_3x3": "branch0.1",
        "Branch_1_Conv2d_0a_1x1": "branch1.0",
        "Branch_1_Conv2d_1a_3x3": "branch1.1",
        "Branch_2_Conv2d_0a_1x1": "branch2.0",
        "Branch_2_Conv2d_0b_3x3": "branch2.1",
        "Branch_2_Conv2d_1a_3x3": "branch2.2",
    },
}
REPEATS = {"Block35": "repeat_1", "Block17": "repeat_2", "Block8": "repeat_3"}
BOTTLENECK = "last_linear.weight"


def module_name(layer: str) -> str:
    """The facenet-pytorch module path of a Keras layer name."""
    if layer in STEM:
        return STEM[layer]
    if layer == "Bottleneck":
        return "last_linear"
    match = re.fullmatch(r"(Block35|Block17|Block8)_(\d+)_(.+)", layer)
    if match:
        kind, index, rest = match.group(1), int(match.group(2)), match.group(3)
        block = "block8" if (kind == "Block8" and index == 6) else f"{REPEATS[kind]}.{index - 1}"
        return f"{block}.{BRANCHES[kind][rest]}"
    match = re.fullmatch(r"(Mixed_6a|Mixed_7a)_(.+)", layer)
    if match:
        return f"{match.group(1).lower()}.{BRANCHES[match.group(1)][match.group(2)]}"
    raise ModelError(f"converter: no facenet-pytorch module for Keras layer {layer}")


def names(layer: str, kind: str) -> Names:
    module = module_name(layer)
    if kind == "conv_bias":
        return Names(kernel=f"{module}.weight", bias=f"{module}.bias")
    if kind == "dense_bn":
        conv, bn = module, "last_bn"
        kernel = f"{conv}.weight"
    else:
        kernel, bn = f"{module}.conv.weight", f"{module}.bn"
    return Names(
        kernel=kernel,
        gamma=f"{bn}.weight",
        beta=f"{bn}.bias",
        mean=f"{bn}.running_mean",
        variance=f"{bn}.running_var",
    )


def to_keras_layout(array: np.ndarray) -> np.ndarray:
    """OIHW conv kernels -> HWIO; (out, in) linear weights -> (in, out)."""
    if array.ndim == 4:
        return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
    return np.ascontiguousarray(array.T)


def source_shape(keras_shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(keras_shape) == 4:
        h, w, i, o = keras_shape
        return (o, i, h, w)
    return tuple(reversed(keras_shape))


def ignored(name: str) -> bool:
    return name.endswith("num_batches_tracked") or name.startswith("logits.")


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A facenet-pytorch state dict as numpy arrays (.npz directly; .pt/.pth through torch)."""
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as exc:  # not a zip of arrays, or object arrays
            raise ModelError(f"{path}: not a readable .npz of weight arrays ({exc})") from None
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"{path}: reading PyTorch files needs torch (pip install torch), or save the state "
            "dict as .npz: np.savez(f, **{k: v.numpy() for k, v in state_dict.items()})"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {
        k.removeprefix("module."): v.detach().cpu().numpy()
        for k, v in state.items()
        if hasattr(v, "detach")
    }


def convert_pytorch(path: Path, info: ModelInfo, embedding_size: int | None = None):
    """A Keras FaceNet model and its ModelInfo from a facenet-pytorch state dict."""
    tensors = read_state_dict(path)
    return convert_state_dict(tensors, info, embedding_size, path=path)


def convert_state_dict(
    tensors: dict[str, np.ndarray],
    info: ModelInfo,
    embedding_size: int | None = None,
    *,
    path: Path | str = "state dict",
):
    """The pure-numpy part of `convert_pytorch`: arrays by facenet-pytorch name -> Keras."""
    path = Path(path)
    if BOTTLENECK not in tensors:
        raise ModelError(f"{path}: tensor '{BOTTLENECK}' is missing: not a facenet-pytorch model")
    found = int(np.shape(tensors[BOTTLENECK])[0])
    check_embedding_size(path, found, embedding_size)
    info = with_embedding_size(info, found)
    model = build_inception(info, found)
    source = TensorSource(tensors, path, ignored)
    load_inception(model, source, names, to_keras_layout, source_shape)
    return model, info

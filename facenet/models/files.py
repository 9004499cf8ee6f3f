"""FaceNet model files.

The native format is a Keras `.keras` file (a zip) with one extra member, `facenet.json`, holding
the ModelInfo: a plain `keras.models.load_model` still opens it, and `FaceNet.load` gets
everything needed to embed. Weights-only `.h5` files in the legacy Keras layout (the form of the
public Keras FaceNet weights) load by layer name into a network built from what the file shows.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

from ..backbones import BACKBONES, get_backbone
from ..errors import ModelError, ModelNotFoundError
from ..metadata import ModelInfo
from ..outputs import check_output_file, make_folder
from .facenet import build_facenet, embedding_model

INFO_MEMBER = "facenet.json"


def save_model(model: keras.Model, info: ModelInfo, path: str | os.PathLike) -> Path:
    """Write `model` (inference form) and its ModelInfo to one `.keras` file, atomically.

    Keras writes only to a named `.keras` path, so this keeps its own temporary file; the path
    itself is checked as every user-named output is (`facenet.outputs`).
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"a FaceNet model file must end in .keras; got {path.name}")
    make_folder(check_output_file(path).parent)
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        embedding_model(model).save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(INFO_MEMBER, info.to_json())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a model file is for everyone to read
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_info(path: str | os.PathLike) -> ModelInfo:
    """The ModelInfo of a `.keras` FaceNet file, without loading TensorFlow weights."""
    path = _existing(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            if INFO_MEMBER not in members:
                raise ModelError(_not_a_model(path, members))
            return ModelInfo.from_json(archive.read(INFO_MEMBER).decode())
    except zipfile.BadZipFile:
        raise ModelError(f"{path}: not a valid .keras model file (not a zip archive)") from None


def _not_a_model(path: Path, members: list[str]) -> str:
    """Why a zip archive without ModelInfo is refused: a plain Keras file lacks the model's
    preprocessing (convert takes weights, not .keras files); a NumPy archive (a training
    checkpoint, teacher targets) is not a model at all."""
    if "config.json" in members:
        return (
            f"{path}: a Keras file but not a FaceNet model (no {INFO_MEMBER}: its preprocessing "
            "and alignment); model files come from `facenet train`, or from weights (.h5 with "
            "FaceNet layer names, a checkpoint, PyTorch, dlib .dat) by `facenet convert`"
        )
    if members and all(name.endswith(".npy") for name in members):
        return (
            f"{path}: a NumPy archive (a training checkpoint or teacher targets), not a model "
            "file; a run's model is its model.keras (continue a run with --resume)"
        )
    return f"{path}: not a .keras model file (a zip archive without a Keras model in it)"


def load_keras_model(path: str | os.PathLike) -> tuple[keras.Model, ModelInfo]:
    info = read_info(path)
    # The converted dlib network's custom layers register themselves on import; load_model
    # needs them registered before it meets them in the file.
    import facenet.models.dlib_resnet  # noqa: F401

    if Path(path).suffix != ".keras":
        raise ModelError(f"{path}: Keras reads model files named .keras (lower case); rename it")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged file
        raise ModelError(f"{path}: could not restore the network ({exc})") from None
    return model, info


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such model file")
    return path


# --- weights-only .h5 in the legacy Keras layout --------------------------------------------


def _weights_group(f: h5py.File) -> h5py.Group:
    return f["model_weights"] if "model_weights" in f else f


def _layer_arrays(group: h5py.Group, name: str) -> list[np.ndarray]:
    layer = group[name]
    return [np.asarray(layer[w]) for w in _decode(layer.attrs.get("weight_names", []))]


def _decode(names) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def inspect_h5(path: str | os.PathLike) -> ModelInfo:
    """Guess backbone, width and embedding size from the layers a weights file holds."""
    path = _existing(path)
    try:
        with h5py.File(path, "r") as f:
            group = _weights_group(f)
            names = set(_decode(group.attrs.get("layer_names", []))) or set(group.keys())
            spec = next((b for b in BACKBONES.values() if b.h5_signature in names), None)
            if spec is None:
                expected = " or ".join(f"{b.name} {b.h5_signature!r}" for b in BACKBONES.values())
                raise ModelError(f"{path}: no FaceNet layers found (expected {expected})")
            options = spec.h5_options(lambda n: _layer_arrays(group, n)) if spec.h5_options else {}
            if "Bottleneck" not in names:
                raise ModelError(f"{path}: no 'Bottleneck' layer: not a FaceNet weights file")
            embedding_size = _layer_arrays(group, "Bottleneck")[0].shape[-1]
    except OSError as exc:
        raise ModelError(f"{path}: not a readable HDF5 weights file ({exc})") from None
    return ModelInfo(backbone=spec.name, embedding_size=int(embedding_size), **options)


def load_weights_h5(
    path: str | os.PathLike, info: ModelInfo | None = None, model: keras.Model | None = None
) -> tuple[keras.Model, ModelInfo]:
    """Load a legacy weights-only `.h5` by layer name; every layer with weights must match."""
    path = _existing(path)
    info = info or inspect_h5(path)
    if model is None:
        model = build_facenet(
            info.backbone,
            (info.input_size, info.input_size, 3),
            info.embedding_size,
            preprocessing=info.preprocessing,
            **get_backbone(info.backbone).options_from(info),
        )
    with h5py.File(path, "r") as f:
        group = _weights_group(f)
        for layer in model.layers:
            if not layer.weights:
                continue
            if layer.name not in group:
                raise ModelError(f"{path}: layer '{layer.name}' is missing from the weights file")
            arrays = _layer_arrays(group, layer.name)
            if len(arrays) != len(layer.weights):
                raise ModelError(
                    f"{path}: layer '{layer.name}' has {len(layer.weights)} weights in the "
                    f"network but {len(arrays)} in the file"
                )
            for variable, array in zip(layer.weights, arrays, strict=True):
                if tuple(variable.shape) != array.shape:
                    raise ModelError(
                        f"{path}: layer '{layer.name}' weight '{variable.name}' has shape "
                        f"{tuple(variable.shape)} in the network but {array.shape} in the file"
                    )
            layer.set_weights(arrays)
    return model, info


def save_weights_h5(model: keras.Model, path: str | os.PathLike) -> Path:
    """Write weights in the legacy Keras by-name layout, as the public FaceNet files are."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        named = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in named]
        for layer in named:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights(), strict=True):
                group.create_dataset(name, data=value)
    return path

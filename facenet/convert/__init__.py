"""Converting public face-recognition weights into a FaceNet model file (.keras or .onnx).

Sources: weights-only Keras `.h5` files (the Keras FaceNet 128-d Inception-ResNet-v1 file and
this package's own), davidsandberg/facenet TF checkpoints (`checkpoint.py`), facenet-pytorch
state dicts (`pytorch.py`) and dlib's face ResNet (`dlib.py`, its file format in
`dlib_format.py`); what the converters share is in `base.py`. This module only dispatches: it
imports each converter when used, and none imports it back (no import cycle). The
FaceNet files do not record their preprocessing, so it is given by the caller; every tensor's
name and shape is checked, and a missing, misshapen or unexpected tensor is a ModelError that
names it. Needs TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..errors import ModelError, ModelNotFoundError
from ..metadata import ModelInfo, check_choice
from ..outputs import check_output_file, writing
from .base import check_embedding_size

SOURCES = ("h5", "checkpoint", "pytorch", "dlib")
PYTORCH_SUFFIXES = (".pt", ".pth", ".bin", ".npz")
CHECKPOINT_MARKERS = (".index", ".meta", ".ckpt")
DEFAULT_INPUT_SIZE = 160


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
    input_size: int | None = None,
    embedding_size: int | None = None,
    name: str | None = None,
    test_time_flip: bool = True,
    force: bool = False,
):
    """Convert `src` to a FaceNet model file at `out` (`.keras`, or `.onnx` for the light
    runtime); returns (keras model, ModelInfo). An existing `out` is replaced only with
    `force`; the path is checked before any work (`output_path`).

    test_time_flip: dlib's file only; False leaves out the mirrored chip's descriptor (half the
    cost: the distillation teacher, whose training views flip faces already).

    preprocessing: required for h5 files and checkpoints ("prewhiten" for the Keras FaceNet
    h5 and 2017 checkpoints, "fixed" for 2018 ones); "fixed" by default for facenet-pytorch;
    dlib's file needs none (its scaling is folded into the network).

    input_size: 160 by default; dlib's network is 150 px and takes no backbone, preprocessing
    or other size (refused, not silently replaced).
    """
    if os.fspath(src) == "":  # Path("") is the current folder, read as a checkpoint folder
        raise ModelNotFoundError("the weights path is empty (an unset shell variable?)")
    src = Path(src)
    if not src.exists() and not Path(f"{src}.index").is_file():
        raise ModelNotFoundError(f"{src}: no such weights file")
    out = output_path(src, out, force=force)
    source = source or detect_source(src)
    check_choice("source", source, SOURCES)
    if not test_time_flip and source != "dlib":
        raise ModelError(f"{src}: leaving out the test-time flip applies to dlib's model only")
    require_tensorflow(out)
    if source == "dlib":
        from .dlib import convert_dlib

        _refuse_dlib_options(backbone=backbone, preprocessing=preprocessing, input_size=input_size)
        model, info = convert_dlib(src, name=name, flip=test_time_flip)
        check_embedding_size(src, info.embedding_size, embedding_size)
    else:
        size = DEFAULT_INPUT_SIZE if input_size is None else input_size
        model, info = _convert_facenet(
            src, source, backbone, preprocessing, size, embedding_size, name
        )
    write_model(model, info, out)
    return model, info


def require_tensorflow(out: Path) -> None:
    """One line naming the extra when TensorFlow or Keras is absent (the light install), before
    any weights are read: the converters build Keras networks, an `.onnx` output also needs
    tf2onnx."""
    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        extra = "tf,export" if out.suffix.lower() == ".onnx" else "tf"
        raise ModelError(
            f"converting needs {' and '.join(missing)}: pip install 'facenet-keras[{extra}]'"
        )


def _refuse_dlib_options(**given) -> None:
    """dlib's network fixes its size, backbone and scaling: a value given for one of them would
    otherwise be dropped without a word (`--input-size 64` wrote a 150 px model)."""
    from .dlib_format import CHIP_SIZE

    for option, value in given.items():
        if value is not None and not (option == "input_size" and value == CHIP_SIZE):
            flag = "--" + option.replace("_", "-")
            raise ModelError(
                f"{flag} does not apply to dlib's model ({CHIP_SIZE} px, its own backbone and "
                "scaling); leave it out"
            )


def output_path(src: Path, out: str | os.PathLike, *, force: bool = False) -> Path:
    """`out` checked as a converted model's path: named .keras (lower case: Keras reads no
    other) or .onnx, not `src`, and not an existing file unless `force`."""
    out = check_output_file(out, inputs=[src], replace=force)  # first: "" is no "."
    if out.suffix != ".keras" and out.suffix.lower() != ".onnx":
        raise ModelError(f"{out}: the output must be a .keras (lower case) or .onnx file")
    return out


def write_model(model, info: ModelInfo, out: Path) -> Path:
    """Save a converted network as `.keras` or export it as `.onnx`, by the name's suffix."""
    if out.suffix.lower() == ".onnx":
        from ..export import export_onnx

        return export_onnx(model, info, out)
    from ..models import save_model

    with writing(out):  # a place that takes no file (/proc, a full disk): one line, exit 2
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
        from .checkpoint import convert_checkpoint

        return convert_checkpoint(src, info, embedding_size)
    from .pytorch import convert_pytorch

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

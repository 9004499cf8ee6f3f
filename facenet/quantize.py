"""Int8 exports: static (QDQ) quantisation of an ONNX export, calibrated on aligned face crops.

Why its own module: calibration needs photos, a detector and ONNX Runtime's quantiser, none of
which a float export touches. The LiteRT int8 path calibrates inside the converter
(`facenet.export.export_tflite(..., calibration=crops)`) on the same crops.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import ImageError, ModelError
from .images import IMAGE_SUFFIXES, load_image, resize
from .outputs import write_file

log = logging.getLogger(__name__)

#: ONNX ops quantised by `quantize_onnx`: the convolutions and the bottleneck hold nearly all the
#: compute; preprocessing and the L2 normalisation stay float for exact unit vectors.
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def need_module(module: str, extra: str = "export"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ModelError(
            f"exporting needs {module.split('.')[0]}: pip install 'facenet-keras[{extra}]'"
        ) from None


def quantize_onnx(
    float_model: str | os.PathLike,
    out: str | os.PathLike,
    crops: np.ndarray,
    *,
    per_channel: bool = True,
) -> Path:
    """Static int8 (QDQ) quantisation of an exported ONNX model, calibrated on aligned crops.

    Weights are int8 per channel, activations uint8 with ranges from the crops (MinMax).
    Dynamic quantisation is deliberately not offered: it runs convolutions ~10x slower.
    """
    onnx = need_module("onnx")
    quantization = need_module("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_model, out = Path(float_model), Path(out)
    source = onnx.load(str(float_model))
    meta = {p.key: p.value for p in source.metadata_props}
    spec = source.graph.input[0]
    name = spec.name
    fixed = spec.type.tensor_type.shape.dim[0].dim_value or None
    dtype = np.uint8 if spec.type.tensor_type.elem_type == onnx.TensorProto.UINT8 else np.float32

    batches = iter([{name: rows} for rows in calibration_batches(crops, fixed or 1, dtype)])

    class Reader(quantization.CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        quantized = Path(tmp) / "quantized.onnx"
        quantization.quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=quantization.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            per_channel=per_channel,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
        result = onnx.load(str(quantized))
    for key, value in meta.items():
        entry = result.metadata_props.add()
        entry.key, entry.value = key, value
    write_exported(out, result.SerializeToString())
    return out


# --- calibration crops ------------------------------------------------------------------------


def calibration_batches(crops: np.ndarray, batch: int, dtype: np.dtype) -> list[np.ndarray]:
    """The crops as `dtype` in whole batches of `batch` rows (the graph's fixed batch, else 1);
    a ModelError when they do not fill one: the quantiser would calibrate on nothing."""
    crops = np.asarray(crops)
    if len(crops) == 0:
        raise ModelError("int8 quantisation needs calibration crops; none were given")
    if len(crops) < batch:
        raise ModelError(
            f"int8 quantisation with a fixed batch of {batch} needs at least {batch} calibration "
            f"crops; got {len(crops)} (give more images, or --batch dynamic)"
        )
    return [crops[i : i + batch].astype(dtype) for i in range(0, len(crops) - batch + 1, batch)]


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder`, recursively, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: calibration images must be a folder")
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def calibration_crops(
    folder: str | os.PathLike,
    size: int,
    *,
    limit: int = 200,
    aligner=None,
    seed: int = 0,
) -> np.ndarray:
    """Up to `limit` aligned uint8 crops (n, size, size, 3) from the images under `folder`.

    With `aligner` (a FaceNet), each photo is detected and aligned as `FaceNet.embed` would
    (photos without a face are skipped); without one the images are taken as aligned crops.
    A random (seeded) sample of the folder is used when it holds more than `limit` images.
    """
    files = image_files(folder)
    if not files:
        raise ModelError(f"{folder}: no images for calibration")
    if len(files) > limit:
        picks = np.random.default_rng(seed).choice(len(files), limit, replace=False)
        files = [files[i] for i in sorted(picks)]
    kept, unreadable = [], []
    for path in files:
        try:
            crop = _calibration_crop(path, size, aligner)
        except ImageError as exc:  # one damaged photo in a folder of many is not worth a stop
            unreadable.append(path)
            log.warning("calibration: skipped %s", exc)
            continue
        if crop is not None:
            kept.append(crop)
    if not kept:
        raise ModelError(f"{folder}: no face found in any readable calibration image")
    log.info(
        "calibration: %d crops from %d images (%d unreadable)", len(kept), len(files),
        len(unreadable),
    )  # fmt: skip
    return np.stack(kept).astype(np.uint8)


def _calibration_crop(path: Path, size: int, aligner) -> np.ndarray | None:
    """One image's crop (None: no face); one at a time so a photo folder never sits in memory."""
    if aligner is None:
        return resize(load_image(path), size)
    return aligner.align([path], on_missing="none")[0]


def write_exported(out: Path, content: bytes) -> None:
    """An exported file, written atomically (see `facenet.outputs`)."""
    write_file(out, lambda f: f.write(content))


__all__ = [
    "QUANTIZED_OPS",
    "calibration_batches",
    "calibration_crops",
    "image_files",
    "quantize_onnx",
]

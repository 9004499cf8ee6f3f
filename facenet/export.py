"""Writing exported models: ONNX (tf2onnx), LiteRT/TFLite and SavedModel, with int8 options.

Every export is the inference network with its preprocessing folded in: the graph takes raw
pixels NHWC (uint8 by default, or float32 0..255) and returns unit embeddings, and the model's
ModelInfo travels inside the file (see `facenet.runtime`). TensorFlow, tf2onnx and onnx are
imported inside the functions that need them, so importing this module stays cheap; install
them with `pip install 'facenet-keras[tf,export]'`.

ONNX conversion uses tf2onnx's `convert.from_function` on a traced uint8 serving function:
Keras 3's `model.export(format="onnx")` goes through the same converter but only for float
inputs and only once the model has been called. TFLite conversion freezes the variables first
(the TF 2.21 converter otherwise keeps Keras 3 variables as uninitialised resources and the
model computes NaN).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import ModelError, OutputError
from .metadata import ModelInfo
from .outputs import check_output_file, check_output_folder, make_folder, writing
from .quantize import calibration_batches, need_module, quantize_onnx, write_exported
from .runtime import METADATA_KEY

FORMATS = ("onnx", "tflite", "savedmodel")
INPUT_DTYPES = ("uint8", "float32")
QUANTIZE_MODES = ("int8",)
#: ONNX opset: 17 is read by every ONNX Runtime from 1.13 on.
OPSET = 17
#: the largest fixed batch: far beyond any use, and TensorFlow crashes on some huge ones
MAX_BATCH = 4096
#: the installed package: a default output never goes in here (see `default_output`)
PACKAGE_DIR = Path(__file__).resolve().parent


def load_keras(path: str | os.PathLike):
    """A Keras FaceNet model and its ModelInfo from a `.keras` or weights-only `.h5` file."""
    try:
        from .models import load_keras_model, load_weights_h5
    except ImportError:
        raise ModelError(
            "exporting needs TensorFlow: pip install 'facenet-keras[tf,export]'"
        ) from None
    path = Path(path)
    if path.suffix.lower() == ".keras":
        return load_keras_model(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        return load_weights_h5(path)
    raise ModelError(f"{path}: export takes a Keras model file (.keras or .h5)")


def default_output(model_path: str | os.PathLike, fmt: str, quantize: str | None = None) -> Path:
    """model.keras -> model.onnx, model.int8.tflite, model_savedmodel/ ... beside the model,
    except for a model inside this package (its bundled weights): then in the current folder,
    so an export never lands among, or replaces, the shipped files."""
    path = Path(model_path)
    tag = f".{quantize}" if quantize else ""
    name = f"{path.stem}{tag}_savedmodel" if fmt == "savedmodel" else f"{path.stem}{tag}.{fmt}"
    if PACKAGE_DIR in path.resolve().parents:
        return Path.cwd() / name
    return path.with_name(name)


def output_path(
    model_path: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    quantize: str | None = None,
    *,
    force: bool = False,
) -> Path:
    """Where `export` writes (`out`, else `default_output`), checked before any work: an
    existing output is replaced only with `force`, and never the model itself, a folder where
    a file is wanted, a file not named .onnx / .tflite as its format (no command would load
    it), or (savedmodel) a folder that is not a SavedModel."""
    if out is not None and not str(out).strip():
        raise OutputError("the output path is empty; leave --out out for the default")
    path = Path(out) if out is not None else default_output(model_path, fmt, quantize)
    if fmt == "savedmodel":
        if path.suffix.lower() in (".onnx", ".tflite", ".keras", ".h5"):
            raise OutputError(f"{path}: a savedmodel export is a folder, not a {path.suffix} file")
        return check_output_folder(path, replace=force, marker="saved_model.pb")
    if path.suffix.lower() != f".{fmt}":
        raise OutputError(f"{path}: a {fmt} export must be named *.{fmt}")
    return check_output_file(path, inputs=[model_path], replace=force)


# --- the serving function --------------------------------------------------------------------


def serving_function(model, info: ModelInfo, batch: int | None = None, input_dtype: str = "uint8"):
    """A traced tf.function: raw pixels (batch, S, S, 3) -> {"embeddings": unit rows}."""
    import tensorflow as tf

    from .models import embedding_model

    if input_dtype not in INPUT_DTYPES:
        raise ValueError(
            f"input_dtype must be one of {', '.join(INPUT_DTYPES)}; got {input_dtype!r}"
        )
    if batch is not None and not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be 1..{MAX_BATCH} or None (dynamic); got {batch}")
    network = embedding_model(model)
    size = info.input_size
    spec = tf.TensorSpec([batch, size, size, 3], getattr(tf, input_dtype), name="images")

    @tf.function(input_signature=[spec])
    def serve(images):
        return {"embeddings": network(tf.cast(images, tf.float32), training=False)}

    return serve


def _frozen(model, info: ModelInfo, batch: int | None, input_dtype: str):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    serve = serving_function(model, info, batch, input_dtype)
    return convert_variables_to_constants_v2(serve.get_concrete_function())


# --- ONNX -------------------------------------------------------------------------------------


def export_onnx(
    model,
    info: ModelInfo,
    out: str | os.PathLike,
    *,
    batch: int | None = None,
    input_dtype: str = "uint8",
    opset: int = OPSET,
) -> Path:
    """Write `model` as ONNX: input "images" (batch, S, S, 3), output "embeddings" (batch, D)."""
    tf2onnx = need_module("tf2onnx")
    out = Path(out)
    serve = serving_function(model, info, batch, input_dtype)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_function(
        serve, input_signature=serve.input_signature, opset=opset
    )
    _name_batch_dim(proto)
    proto.producer_name = "facenet"
    set_onnx_metadata(proto, info)
    write_exported(out, proto.SerializeToString())
    return out


def _name_batch_dim(proto) -> None:
    for value in list(proto.graph.input) + list(proto.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = "batch"


def set_onnx_metadata(proto, info: ModelInfo) -> None:
    """Store `info` as the ONNX model's "facenet" metadata entry (replacing any)."""
    for entry in list(proto.metadata_props):
        if entry.key == METADATA_KEY:
            proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, info.to_json()


# --- TFLite -----------------------------------------------------------------------------------


def export_tflite(
    model,
    info: ModelInfo,
    out: str | os.PathLike,
    *,
    batch: int | None = None,
    input_dtype: str = "uint8",
    calibration: np.ndarray | None = None,
) -> Path:
    """Write `model` as a TFLite flatbuffer with ModelInfo in its metadata ("facenet").

    With `calibration` crops, weights and activations are quantised to int8 (full-integer
    kernels wherever TFLite has them; input and output stay uint8/float32).
    """
    import tensorflow as tf

    out = Path(out)
    frozen = _frozen(model, info, batch, input_dtype)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if calibration is not None:
        batches = calibration_batches(calibration, batch or 1, np.dtype(input_dtype))

        def representative():
            for rows in batches:
                yield [rows]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
    content = converter.convert()
    write_exported(out, add_tflite_metadata(content, METADATA_KEY, info.to_json().encode()))
    return out


def add_tflite_metadata(content: bytes, key: str, value: bytes) -> bytes:
    """Return the flatbuffer `content` with model metadata `key` set to `value`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    model.metadata = [m for m in (model.metadata or []) if m.name not in (key, key.encode())]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(value, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = key
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# --- SavedModel -------------------------------------------------------------------------------


def export_savedmodel(
    model, info: ModelInfo, out: str | os.PathLike, *, batch: int | None = None,
    input_dtype: str = "uint8",
) -> Path:  # fmt: skip
    """Write a SavedModel directory (signature "serving_default") with `facenet.json` inside."""
    import tensorflow as tf

    out = Path(out)
    serve = serving_function(model, info, batch, input_dtype)
    module = tf.Module()
    module.network = model
    module.serve = serve
    make_folder(out.parent)
    with writing(out), tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        staged = Path(tmp) / out.name  # complete before it replaces anything
        tf.saved_model.save(module, str(staged), signatures={"serving_default": serve})
        (staged / "facenet.json").write_text(info.to_json())
        _swap_in(staged, out)
    return out


def _swap_in(staged: Path, out: Path) -> None:
    """Put the staged folder at `out`; an export it replaces is moved aside (into the staging
    folder, removed with it) and put back if the new one cannot be moved in."""
    if not (out.is_symlink() or out.exists()):
        staged.rename(out)
        return
    previous = staged.with_name(f"{staged.name}.previous")
    out.rename(previous)
    try:
        staged.rename(out)
    except OSError:
        previous.rename(out)
        raise


# --- one call for the CLI ---------------------------------------------------------------------


def export(
    model_path: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    *,
    batch: int | None = None,
    input_dtype: str = "uint8",
    quantize: str | None = None,
    calibration: np.ndarray | None = None,
    force: bool = False,
) -> Path:
    """Export a Keras FaceNet model file to `fmt`; returns the written path. An existing
    output is replaced only with `force` (see `output_path`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)}; got {quantize!r}")
    if quantize and fmt == "savedmodel":
        raise ValueError("int8 quantisation is for onnx and tflite exports, not savedmodel")
    if quantize and calibration is None:
        raise ValueError("int8 quantisation needs calibration crops (--calibration DIR)")
    out = output_path(model_path, fmt, out, quantize, force=force)
    model, info = load_keras(model_path)
    if quantize:
        info = ModelInfo.from_dict(
            {**info.__dict__, "extra": {**info.extra, "quantization": quantize}}
        )
    if fmt == "savedmodel":
        return export_savedmodel(model, info, out, batch=batch, input_dtype=input_dtype)
    if fmt == "tflite":
        return export_tflite(
            model, info, out, batch=batch, input_dtype=input_dtype,
            calibration=calibration if quantize else None,
        )  # fmt: skip
    if not quantize:
        return export_onnx(model, info, out, batch=batch, input_dtype=input_dtype)
    with tempfile.TemporaryDirectory() as tmp:
        float_path = export_onnx(
            model, info, Path(tmp) / "float.onnx", batch=batch, input_dtype=input_dtype
        )
        return quantize_onnx(float_path, out, calibration)


# --- parity -----------------------------------------------------------------------------------


def parity(reference: np.ndarray, exported: np.ndarray) -> dict[str, float]:
    """How close exported embeddings are to the Keras ones: max |diff| and min cosine."""
    reference, exported = np.asarray(reference), np.asarray(exported)
    cosine = np.sum(reference * exported, axis=1)
    return {
        "max_abs_diff": float(np.max(np.abs(reference - exported))) if reference.size else 0.0,
        "min_cosine": float(np.min(cosine)) if len(cosine) else 1.0,
    }


__all__ = [
    "FORMATS",
    "MAX_BATCH",
    "default_output",
    "export",
    "export_onnx",
    "export_savedmodel",
    "export_tflite",
    "load_keras",
    "output_path",
    "parity",
    "serving_function",
]

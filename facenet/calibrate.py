"""A model's verification threshold, chosen on development pairs and written into a copy of it.

`calibrate` embeds a pair list through the whole pipeline (detection, alignment, the model:
`evaluate_pairs`, exactly as `facenet evaluate` does) and takes the squared-L2 threshold of
highest accuracy on all of its pairs. `write_calibrated` writes a copy of the model file with
that threshold and the calibration's record in its ModelInfo (`extra["calibration"]`, with the
id of the model whose embeddings the copy makes: `origin_record`):
`.keras` (the `facenet.json` member replaced, weights copied byte for byte), `.onnx` and
`.tflite` (the "facenet" metadata entry replaced, as `facenet.export` writes it). LFW View 2
(`pairs.txt`) is the test view and is never calibrated on (`check_not_test_view`). TensorFlow
only for a `.tflite` model (its flatbuffer tools).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

from .errors import FaceNetError, ModelError
from .metadata import ModelInfo, embedding_origin
from .outputs import check_output_file, write_file

#: model files whose ModelInfo can be rewritten in a copy
CALIBRATED_SUFFIXES = (".keras", ".onnx", ".tflite")
#: what writing a calibrated copy of a format needs beyond the light install: (module, error)
WRITER_NEEDS = {
    ".onnx": ("onnx", "calibrating an .onnx model needs the onnx package: "
              "pip install 'facenet-keras[export]'"),
    ".tflite": ("tensorflow", "calibrating a .tflite model needs TensorFlow: "
                "pip install 'facenet-keras[tf]'"),
}  # fmt: skip
#: how the threshold is chosen (recorded in the model)
RULE = "squared-L2 threshold maximising accuracy on all pairs, whole pipeline"
#: LFW's View 2 list: the test view
LFW_TEST_LIST = "pairs.txt"
#: the calibration record's keys naming the model whose embeddings a calibrated copy makes
ORIGIN_KEYS = ("embeddings_of", "calibrated_from")


class CalibrationError(FaceNetError, ValueError):
    """A calibration that cannot be done as asked (the test view, a model format)."""


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The chosen threshold and what it was chosen on."""

    threshold: float
    accuracy: float
    n_pairs: int
    pairs: str
    protocol: str

    def record(self) -> dict[str, Any]:
        """What the model's ModelInfo keeps under `extra["calibration"]`."""
        return {"pairs": self.pairs, "protocol": self.protocol, "n_pairs": self.n_pairs,
                "rule": RULE, "accuracy": self.accuracy, "threshold": self.threshold}  # fmt: skip


def check_not_test_view(pair_list: str | os.PathLike) -> None:
    """CalibrationError when `pair_list` is LFW's View 2 `pairs.txt` (its first line is LFW's
    "folds<TAB>pairs" header): the test view chooses nothing."""
    path = Path(pair_list)
    if path.name.lower() != LFW_TEST_LIST:
        return
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            first = f.readline().split()
    except OSError:
        return  # reading it fails later, with its own message
    if len(first) == 2 and all(part.isdigit() for part in first):
        raise CalibrationError(
            f"{path}: LFW View 2 is the test view; calibrate on View 1 (--view dev-train)"
        )


def check_pairs(pairs) -> None:
    """CalibrationError unless the PairList `pairs` holds both same and different pairs."""
    if len(pairs) == 0:
        raise CalibrationError(f"{pairs.source or pairs.name}: no pairs to calibrate on")
    if pairs.labels.all() or not pairs.labels.any():
        raise CalibrationError(
            f"{pairs.source or pairs.name}: a threshold needs both same and different pairs; "
            f"this list has only {'same' if pairs.labels.all() else 'different'} ones"
        )


def calibrate(pairs, model, **options: Any) -> tuple[Calibration, dict[str, Any]]:
    """(the calibration, the evaluation report) of `model` (a loaded FaceNet) on `pairs` (a
    PairList holding both same and different pairs: CalibrationError otherwise); `options` go
    to `evaluate_pairs` (batch_size, cache_dir, use_cache, progress)."""
    from .evaluate.run import evaluate_pairs

    check_pairs(pairs)
    report = evaluate_pairs(pairs, model=model, **options)
    _check_usable(pairs, report["failures"]["failed_images"])
    metrics = report["metrics"]
    calibration = Calibration(
        threshold=round(float(metrics["best_threshold"]), 4),
        accuracy=round(float(metrics["best_accuracy"]), 4),
        n_pairs=len(pairs),
        pairs=str(pairs.source or pairs.name),
        protocol=pairs.name,
    )
    return calibration, report


def _check_usable(pairs, failed: dict[str, str]) -> None:
    """CalibrationError unless the pairs whose two images were embedded hold both classes."""
    if not failed:
        return
    usable = [a not in failed and b not in failed for a, b in zip(pairs.paths_a, pairs.paths_b,
                                                                   strict=True)]  # fmt: skip
    labels = pairs.labels[usable]
    if labels.all() or not labels.any():
        first = next(iter(failed))
        raise CalibrationError(
            f"{pairs.source or pairs.name}: too few pairs with both images embedded to choose a "
            f"threshold ({len(failed)} images failed, e.g. {first}: {failed[first]})"
        )


def calibrated_info(info: ModelInfo, calibration: Calibration, *, of: Any = None,
                    **changes: Any) -> ModelInfo:  # fmt: skip
    """`info` with the calibrated threshold and its record (and any other `changes`). `of`, the
    loaded model being calibrated, is recorded as the model whose embeddings the copy makes
    (`origin_record`); without it, a record `info` already has is kept."""
    before = info.extra.get("calibration")
    origin = origin_record(of) if of is not None else {
        key: before[key] for key in ORIGIN_KEYS if isinstance(before, dict) and key in before
    }  # fmt: skip
    extra = {**info.extra, "calibration": {**calibration.record(), **origin}}
    return dataclasses.replace(info, threshold=calibration.threshold, extra=extra, **changes)


def origin_record(model: Any) -> dict[str, str]:
    """What a calibrated copy of `model` (a loaded FaceNet) records in `extra["calibration"]`:
    `embeddings_of`, the id of the model whose embeddings it makes (the copy has the same weights
    in another file, so another id; a copy of a copy names the first model), which galleries and
    people libraries of that model accept; `calibrated_from`, the bundled model's name or the
    file's name (no folder)."""
    source = getattr(model, "name", None) or Path(getattr(model, "source", None) or "").name
    return {"embeddings_of": embedding_origin(model), "calibrated_from": source}


def check_calibration_paths(model: str | os.PathLike, out: str | os.PathLike, *,
                            force: bool = False) -> Path:  # fmt: skip
    """`out` as the calibrated copy of the model file `model`, checked before any work: the
    same suffix, one of CALIBRATED_SUFFIXES, never `model` itself, an existing file only with
    `force` (CalibrationError or OutputError otherwise), and the package that writes that
    format installed (ModelError: WRITER_NEEDS)."""
    model, out = Path(model), Path(out)
    suffix = model.suffix.lower()
    if suffix not in CALIBRATED_SUFFIXES:
        raise CalibrationError(
            f"{model}: calibrate writes .keras, .onnx and .tflite models (a weights-only .h5: "
            f"`facenet convert` it to .keras first)"
        )
    if out.suffix.lower() != suffix:
        raise CalibrationError(
            f"{out}: the calibrated copy of a {suffix} model must end in {suffix}"
        )
    module, missing = WRITER_NEEDS.get(suffix, (None, ""))
    if module and importlib.util.find_spec(module) is None:  # not after minutes of embedding
        raise ModelError(missing)
    return check_output_file(out, inputs=[model], replace=force)


def write_calibrated(model: str | os.PathLike, info: ModelInfo, out: str | os.PathLike) -> Path:
    """Write a copy of the model file `model` with `info` as its ModelInfo to `out` (atomic:
    the old `out` or the new one, never half of it)."""
    model = Path(model)
    suffix = model.suffix.lower()
    if suffix == ".keras":
        return write_file(out, lambda f: _copy_keras(model, info, f))
    content = _onnx_bytes(model, info) if suffix == ".onnx" else _tflite_bytes(model, info)
    return write_file(out, lambda f: f.write(content))


def _copy_keras(model: Path, info: ModelInfo, f) -> None:
    """The `.keras` zip with its `facenet.json` member replaced, every other member as is."""
    from .models.files import INFO_MEMBER

    try:
        with zipfile.ZipFile(model) as src, zipfile.ZipFile(f, "w") as dst:
            for item in src.infolist():
                if item.filename == INFO_MEMBER:
                    continue
                with src.open(item) as data, dst.open(item, "w") as copy:
                    shutil.copyfileobj(data, copy)
            dst.writestr(INFO_MEMBER, info.to_json())
    except zipfile.BadZipFile:
        raise ModelError(f"{model}: not a valid .keras model file (not a zip archive)") from None


def _onnx_bytes(model: Path, info: ModelInfo) -> bytes:
    """The ONNX model with its "facenet" metadata entry replaced by `info`."""
    try:
        import onnx
    except ImportError:
        raise ModelError(WRITER_NEEDS[".onnx"][1]) from None
    from .export import set_onnx_metadata

    try:
        proto = onnx.load(str(model))
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise ModelError(f"{model}: not a valid ONNX model ({exc})") from None
    set_onnx_metadata(proto, info)
    return proto.SerializeToString()


def _tflite_bytes(model: Path, info: ModelInfo) -> bytes:
    """The TFLite flatbuffer with its "facenet" metadata entry replaced by `info`."""
    from .runtime import METADATA_KEY

    try:
        content = model.read_bytes()
    except OSError as exc:
        raise ModelError(f"{model}: cannot read ({exc.strerror or exc})") from None
    try:
        from .export import add_tflite_metadata

        return add_tflite_metadata(content, METADATA_KEY, info.to_json().encode())
    except ImportError:
        raise ModelError(WRITER_NEEDS[".tflite"][1]) from None
    except Exception as exc:  # the flatbuffer reader raises many types for a damaged file
        raise ModelError(f"{model}: not a valid TFLite model ({exc})") from None

"""What a model file must carry besides its weights, so a user never has to know it.

Stored as `facenet.json` inside a `.keras` file, and as ONNX/TFLite metadata in exported files.
No TensorFlow here: the light runtime reads it too.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .backbones import backbone_names
from .errors import ArgumentError

#: Pixel scalings a FaceNet network's Preprocessing layer applies.
PREPROCESSING_MODES = ("fixed", "prewhiten", "unit")
#: how the last feature map becomes one vector (models.facenet.build_facenet's `pooling`)
POOLING_MODES = ("average", "depthwise")
#: What a model file may record: "folded" = the scaling is folded into the first convolution
#: (converted networks such as dlib's ResNet take raw pixels).
MODEL_PREPROCESSING = (*PREPROCESSING_MODES, "folded")
ALIGNMENT_MODES = ("crop", "similarity", "chip")
#: Networks a model file may hold besides the registered FaceNet backbones (`backbones.py`).
CONVERTED_ARCHITECTURES = ("dlib_resnet",)
#: The built-in backbones `build_facenet` builds and `facenet train` trains (a snapshot of the
#: registry at import; `backbones.backbone_names()` is live).
BACKBONES = backbone_names()
#: Every network a model file may hold: the FaceNet backbones and converted ones.
ARCHITECTURES = (*BACKBONES, *CONVERTED_ARCHITECTURES)
FORMAT_VERSION = 1
#: What `ModelInfo.detection` may set (defaults in `detect.detector.DEFAULT_SETTINGS`).
DETECTION_SETTINGS = ("min_face_size", "thresholds", "max_side")


@dataclass
class ModelInfo:
    """What a model file carries besides its weights: everything needed to embed with it."""

    backbone: str = "mobilenet"
    input_size: int = 160
    embedding_size: int = 128
    preprocessing: str = "fixed"
    alignment: str = "crop"
    #: FaceNet's crop margin in pixels at `input_size` (32 at 160), scaled with the crop size.
    margin: int = 32
    #: Squared-L2 distance at or below which two faces are the same person; None until calibrated.
    threshold: float | None = None
    #: Open-set identification: a probe whose nearest gallery face is farther than this is
    #: "unknown". Stricter than `threshold`, chosen for a per-probe false-accept rate against a
    #: gallery of many people (see docs/MODEL_CARD.md); None falls back to `threshold`.
    identification_threshold: float | None = None
    alpha: float = 1.0
    #: The face detector's settings this model was evaluated with (`detect.detector`:
    #: min_face_size, thresholds, max_side); empty = the defaults, as in older model files.
    detection: dict[str, Any] = field(default_factory=dict)
    name: str = "facenet"
    #: Free-form provenance: training data, command, evaluation figures.
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_choice("preprocessing", self.preprocessing, MODEL_PREPROCESSING)
        check_choice("alignment", self.alignment, ALIGNMENT_MODES)
        check_choice("backbone", self.backbone, (*backbone_names(), *CONVERTED_ARCHITECTURES))
        margin = self.margin  # (with_alignment("crop", "x") failed deep inside the cut)
        if (
            isinstance(margin, bool)
            or not isinstance(margin, numbers.Real)
            or not math.isfinite(margin)
        ):
            raise ArgumentError(f"margin must be a number of pixels; got {margin!r:.40}")
        unknown = set(self.detection) - set(DETECTION_SETTINGS)
        if unknown:
            raise ValueError(f"unknown detection setting(s): {', '.join(sorted(unknown))}")

    def to_json(self) -> str:
        """The JSON stored in model files (sorted keys)."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        """A ModelInfo from stored fields; unknown keys (newer files) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> ModelInfo:
        """`from_dict` over JSON text."""
        return cls.from_dict(json.loads(text))

    @property
    def verification_threshold(self) -> float:
        """The calibrated threshold, or FaceNet's customary 1.1 when the model has none yet."""
        return DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    @property
    def embeddings_of(self) -> str | None:
        """The id of the model whose embeddings this one makes, as a calibrated copy records it
        (`facenet calibrate`: the same weights in another file, so another model id), else None.
        A record in the file, not a comparison of weights."""
        record = self.extra.get("calibration") if isinstance(self.extra, dict) else None
        origin = record.get("embeddings_of") if isinstance(record, dict) else None
        return origin if isinstance(origin, str) and origin else None

    @property
    def open_set_threshold(self) -> float:
        """The identification threshold, or the verification one when none is stored."""
        if self.identification_threshold is None:
            return self.verification_threshold
        return float(self.identification_threshold)


def embedding_origin(model) -> str:
    """The id of the model whose embeddings `model` (anything with `model_id` and `info`, e.g. a
    FaceNet) makes: the one its calibration records (`ModelInfo.embeddings_of`), else its own."""
    return getattr(getattr(model, "info", None), "embeddings_of", None) or model.model_id


def same_embeddings(model_id: str, origin: str | None, of_id: str, of_origin: str | None) -> bool:
    """Whether the model `model_id`, which records the model whose embeddings it makes as
    `origin` (a calibrated copy's `embeddings_of`; None or "": itself), makes the embeddings of
    the model `of_id` (recording `of_origin`): the same model, a calibrated copy of it, the model
    it is a calibrated copy of, or another copy of that model. The one rule of galleries, people
    libraries, classifiers and `gallery enroll --from-parquet`; a record, not weights compared."""
    origin, of_origin = origin or model_id, of_origin or of_id
    return model_id == of_id or origin in (of_id, of_origin)


#: Used only by models that carry no calibrated threshold (squared L2 on unit vectors).
DEFAULT_THRESHOLD = 1.1

#: Nearest people listed per identified face: one default for Python, the CLI and the REST API.
DEFAULT_K = 3


def as_integer(value: object) -> int | None:
    """`value` as an int when it is an integer (a NumPy integer too), else None: a bool, 2.5,
    "3" or None is no count and no id (int() would take 2.5 as 2 and True as 1)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def as_float(value: object) -> float:
    """`value` as a float, NaN when it is no number ("x", None, [1]): the caller's range check
    then refuses it in its own words, not float()'s TypeError from deep inside."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_k(k: object) -> int:
    """How many nearest people to list: an integer of at least 1, else an ArgumentError (k=2.5
    listed every match found, "3" or None failed inside a comparison)."""
    number = as_integer(k)
    if number is None or number < 1:
        raise ArgumentError(f"k must be an integer of at least 1; got {k!r:.40}")
    return number


def check_threshold(threshold: float | None, default: float, option: str = "threshold") -> float:
    """The threshold to decide with: `default` when None, else a squared-L2 distance in
    [0, 4]; otherwise an ArgumentError (a ValueError) naming `option`: NaN compares false with
    everything, so it would silently call every pair different (or suggest nothing), and "x"
    or [1] failed deep inside float()."""
    if threshold is None:
        return default
    value = as_float(threshold)
    if not 0.0 <= value <= 4.0:  # NaN fails this too
        shown = str(threshold)[:40]
        raise ArgumentError(f"{option} must be a squared-L2 distance in [0, 4]; got {shown}")
    return value


def check_choice(option: str, value: str, valid: tuple[str, ...]) -> None:
    """ArgumentError (a ValueError, and a FaceNetError as every bad argument) naming the valid
    choices when `value` is not one of them."""
    if not isinstance(value, str) or value not in valid:
        raise ArgumentError(f"{option} must be one of {', '.join(valid)}; got {value!r:.40}")

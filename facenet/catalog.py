"""Named models: the model files bundled with the package, picked by name.

A model file carries everything needed to use it (ModelInfo: input size, alignment,
preprocessing, thresholds), so a name is only a bundled file plus what a user wants to know
before choosing: licence, training data, and figures measured through the whole pipeline
(`facenet/weights/models.json`, written by `tools/measure_models.py`). No TensorFlow here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArgumentError, ModelNotFoundError

WEIGHTS_DIR = Path(__file__).parent / "weights"
MEASUREMENTS = WEIGHTS_DIR / "models.json"


@dataclass(frozen=True)
class NamedModel:
    name: str
    #: Files in facenet/weights holding this model, the one `FaceNet.load(name)` uses first.
    files: tuple[str, ...]
    licence: str
    training_data: str
    card: str

    def path(self) -> Path:
        """The first of this model's files that is installed."""
        for file in self.files:
            candidate = WEIGHTS_DIR / file
            if candidate.is_file():
                return candidate
        raise ModelNotFoundError(
            f"model {self.name!r} is not installed in this copy of facenet "
            f"(expected {', '.join(self.files)} in {WEIGHTS_DIR})"
        )


MODELS: dict[str, NamedModel] = {
    model.name: model
    for model in (
        NamedModel(
            name="dlib-resnet",
            files=("dlib-resnet.onnx",),
            licence="public domain (dlib-models by Davis E. King)",
            training_data="about 3 million faces of 7,485 people (FaceScrub, VGG and web images)",
            card="docs/models/dlib-resnet.md",
        ),
        NamedModel(
            name="facenet-mobilenet",
            files=("facenet-mobilenet.onnx", "facenet-mobilenet.keras"),
            licence="non-commercial research (trained on CelebA and UTKFace, distilled from "
            "dlib-resnet)",
            training_data="CelebA, 22,612 faces of 5,407 people; UTKFace, 6,481 unlabelled faces",
            card="docs/models/facenet-mobilenet.md",
        ),
    )
}

#: What `FaceNet.load()` and every command use without `--model`: the most accurate bundled
#: model on LFW View 2 through the whole pipeline (docs/MODEL_CARD.md).
DEFAULT_MODEL = "dlib-resnet"


#: File names the bundled model had before models had names (recorded by older galleries).
LEGACY_FILES = {"default.onnx": "facenet-mobilenet", "default.keras": "facenet-mobilenet"}


def resolve(name_or_path: str | os.PathLike | None) -> tuple[Path, str | None]:
    """(model file, catalog name or None) for a model name, a path, or None (the default)."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    try:
        key = os.fspath(name_or_path)
    except TypeError:  # FaceNet.load(5): not os.fspath's traceback
        raise ArgumentError(
            f"a model is a name or a path; got {type(name_or_path).__name__}"
        ) from None
    path = Path(key)
    if not path.exists() and path.parent.name == "weights" and path.name in LEGACY_FILES:
        key = LEGACY_FILES[path.name]  # a gallery made before models had names
    if key in MODELS:
        return MODELS[key].path(), key
    if not path.exists() and path.suffix == "" and os.sep not in key:
        raise ModelNotFoundError(
            f"{key}: no such model name or file; models: {', '.join(sorted(MODELS))}"
        )
    return path, None


def default_model_info():
    """The default bundled model's ModelInfo, read from its file without loading the network."""
    from .runtime import read_exported_info

    return read_exported_info(resolve(None)[0])


def measurements() -> dict[str, dict[str, Any]]:
    """Figures measured for each bundled model ({} when the file is missing)."""
    if not MEASUREMENTS.is_file():
        return {}
    return json.loads(MEASUREMENTS.read_text())

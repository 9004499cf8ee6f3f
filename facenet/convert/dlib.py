"""Converting dlib's face ResNet into a model file: the Keras network (`models.dlib_resnet`)
over the weights `dlib_format` parses, with the thresholds calibrated for it. Needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from .dlib_format import CHIP_SIZE

#: Thresholds of the converted network (with FLIP) through this package's pipeline (MTCNN, "chip"
#: alignment), calibrated on LFW View 1 by `tools/ship_models.py` (docs/models/dlib-resnet.md):
#: verification maximises accuracy on pairsDevTrain (98.27% there); identification lets 1% of
#: strangers match someone in a gallery of 945 View 1 people.
CALIBRATED_THRESHOLD = 0.1793
CALIBRATED_IDENTIFICATION_THRESHOLD = 0.0889
#: Whether the converted network adds the descriptor of each chip's mirror image.
FLIP = True


def convert_dlib(src: str | Path, name: str | None = None, flip: bool = FLIP):
    """dlib's model file -> (Keras network with unit outputs, ModelInfo). Needs TensorFlow.

    flip: the test-time flip inside the network (see `build_dlib_resnet`).
    """
    from ..metadata import ModelInfo
    from ..models.dlib_resnet import build_dlib_resnet

    model = build_dlib_resnet(src, flip=flip)
    info = ModelInfo(
        backbone="dlib_resnet",
        input_size=CHIP_SIZE,
        embedding_size=int(model.output.shape[-1]),
        preprocessing="folded",
        alignment="chip",
        threshold=CALIBRATED_THRESHOLD,
        identification_threshold=CALIBRATED_IDENTIFICATION_THRESHOLD,
        name=name or "dlib-resnet",
        extra={
            "converted_from": Path(src).name,
            "source_format": "dlib",
            "licence": "public domain (dlib-models, Davis E. King)",
            "test_time_flip": flip,
        },
    )
    return model, info

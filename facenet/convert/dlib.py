"""Converting dlib's face ResNet into a model file: the Keras network (`models.dlib_resnet`)
over the weights `dlib_format` parses, with the thresholds calibrated for it. Needs TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from .dlib_format import CHIP_SIZE

#: Thresholds of the converted network through this package's pipeline (MTCNN, "chip"
#: alignment), keyed by the test-time flip inside it, calibrated on LFW View 1 by
#: `tools/ship_models.py [--no-flip]` (docs/models/dlib-resnet.md): verification maximises
#: accuracy on pairsDevTrain (98.27% there with the flip, 98.00% without); identification lets
#: 1% of strangers match someone in a gallery of 945 View 1 people.
CALIBRATED_THRESHOLDS = {True: 0.1793, False: 0.1956}
CALIBRATED_IDENTIFICATION_THRESHOLDS = {True: 0.0889, False: 0.0922}
#: Whether the converted network adds the descriptor of each chip's mirror image.
FLIP = True


def convert_dlib(src: str | Path, name: str | None = None, flip: bool = FLIP):
    """dlib's model file -> (Keras network with unit outputs, ModelInfo). Needs TensorFlow.

    flip: the test-time flip inside the network (see `build_dlib_resnet`); each network carries
    its own calibrated thresholds.
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
        threshold=CALIBRATED_THRESHOLDS[flip],
        identification_threshold=CALIBRATED_IDENTIFICATION_THRESHOLDS[flip],
        name=name or "dlib-resnet",
        extra={
            "converted_from": Path(src).name,
            "source_format": "dlib",
            "licence": "public domain (dlib-models, Davis E. King)",
            "test_time_flip": flip,
        },
    )
    return model, info

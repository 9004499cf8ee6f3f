"""Make a trained student the bundled `facenet-mobilenet`: calibrate on LFW View 1, write it.

    python tools/ship_student.py runs/NAME/model.keras --lfw-dir ../shared/data/lfw \
        [--name facenet-mobilenet-celeba-utkface] [--out facenet/weights]

1. Embeds LFW View 1 `pairsDevTrain.txt` through the whole pipeline (detection, alignment, the
   model) and takes the squared-L2 threshold that maximises accuracy on all 2,200 pairs (View 1 is
   the development view: View 2 is never used to choose anything): `facenet.calibrate`, the
   code behind `facenet calibrate`.
2. Takes the identification threshold as `tools/ship_models.py` does for `dlib-resnet`: the
   people named in pairsDevTrain, those with two or more photos enrolled with their first photo,
   those with one photo strangers; the threshold keeps 1% of strangers named (per probe).
3. Writes `<out>/facenet-mobilenet.keras` with both thresholds and the calibration figures in its
   ModelInfo, and `<out>/facenet-mobilenet.onnx` (the runtime `FaceNet.load(name)` prefers),
   checking the two agree.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from ship_models import identification_threshold

from facenet import FaceNet
from facenet.calibrate import calibrate, calibrated_info
from facenet.evaluate.protocols import lfw_pairs
from facenet.export import export_onnx
from facenet.models import load_keras_model, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the trained .keras model")
    parser.add_argument("--lfw-dir", type=Path, required=True)
    parser.add_argument("--name", default="facenet-mobilenet-celeba-utkface")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "facenet/weights")
    args = parser.parse_args()

    pairs = lfw_pairs(args.lfw_dir, "dev-train", n_folds=1)
    calibration, _ = calibrate(pairs, FaceNet.load(args.model), progress=True)
    print(f"View 1 DevTrain: best accuracy {calibration.accuracy:.4f} at threshold "
          f"{calibration.threshold:.4f}")  # fmt: skip

    identification = identification_threshold(FaceNet.load(args.model), args.lfw_dir)
    print(f"View 1 DevTrain people: identification threshold {identification['threshold']:.4f} "
          f"({identification['rule']})")  # fmt: skip
    network, info = load_keras_model(args.model)
    chosen = round(identification["threshold"], 4)
    info = calibrated_info(info, calibration, name=args.name, identification_threshold=chosen)
    info.extra["calibration"]["identification"] = identification
    args.out.mkdir(parents=True, exist_ok=True)
    keras_path = save_model(network, info, args.out / "facenet-mobilenet.keras")
    onnx_path = export_onnx(network, info, args.out / "facenet-mobilenet.onnx")
    crops = np.random.default_rng(0).integers(0, 256, (4, info.input_size, info.input_size, 3))
    crops = crops.astype(np.uint8)
    gap = np.abs(
        FaceNet.load(keras_path).embed_crops(crops) - FaceNet.load(onnx_path).embed_crops(crops)
    ).max()
    print(json.dumps({"keras": str(keras_path), "onnx": str(onnx_path), "max_abs_gap": float(gap)}))
    if gap > 1e-4:
        raise SystemExit(f"the ONNX export differs from the Keras model by {gap:.2e}")


if __name__ == "__main__":
    main()

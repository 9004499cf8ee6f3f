"""Collect each bundled model's measured figures into `facenet/weights/models.json`.

    python tools/measure_models.py [--seconds 2]

For every model in `facenet.catalog.MODELS`: parameters (counted from the file), LFW View 2
through the whole pipeline (read from `docs/models/NAME/lfw-view2/report.json`, written by
`bash tools/measure_model.sh NAME`), and embedding throughput at batch 1 and 32 on this machine
(aligned crops, median of 3 timed rounds; the load average is recorded beside it, since the
machine may be shared). `facenet models` shows these figures; `facenet models --measure`
measures the speed again on the user's machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import date
from pathlib import Path

from facenet import FaceNet
from facenet.catalog import MEASUREMENTS, MODELS
from facenet.evaluate.speed import throughput

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models"


def parameters(path: Path) -> int:
    """Weights in an ONNX file (initialisers), or in a Keras file (the network's count)."""
    if path.suffix == ".onnx":
        import numpy as np
        import onnx

        return int(sum(np.prod(t.dims) for t in onnx.load(str(path)).graph.initializer))
    import keras

    return int(keras.models.load_model(path, compile=False).count_params())


def lfw_figures(name: str) -> dict | None:
    report = DOCS / name / "lfw-view2" / "report.json"
    if not report.is_file():
        return None
    data = json.loads(report.read_text())
    metrics = data["metrics"]
    return {
        "accuracy": round(float(metrics["accuracy"]), 4),
        "std": round(float(metrics["accuracy_std"]), 4),
        "val_at_far_1e-3": round(float(metrics["val"]), 4),
        "report": str(report.relative_to(DOCS.parents[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per timed round")
    args = parser.parse_args()
    out = {}
    for name in MODELS:
        model = FaceNet.load(name)
        load = os.getloadavg()[0]
        out[name] = {
            "parameters": parameters(Path(model.source)),
            "lfw_view2": lfw_figures(name),
            "images_per_s": {
                "batch_1": round(throughput(model, 1, seconds=args.seconds), 1),
                "batch_32": round(throughput(model, 32, seconds=args.seconds), 1),
                "machine": f"{os.cpu_count()} cores, {platform.machine()}",
                "load_average": round(load, 1),
                "date": date.today().isoformat(),
            },
        }
        print(name, json.dumps(out[name]))
    MEASUREMENTS.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

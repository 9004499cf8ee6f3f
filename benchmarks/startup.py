"""Start-up time and peak memory of `facenet verify A B --no-detect --model M`, per model file.

Each run is a fresh subprocess; wall time and peak RSS (ru_maxrss of the child, via
resource.getrusage(RUSAGE_CHILDREN) measured around each run in a fresh helper process) are
reported as medians. Compares a .keras model (TensorFlow) with its .onnx and .tflite exports,
and, with --light-python, the .onnx model in a venv without TensorFlow.

    python benchmarks/startup.py [--runs 5] [--light-python /tmp/light/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Runs one command and prints its wall time and the peak RSS of its process tree's largest child.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rc": done.returncode, "wall": wall, "rss_mb": peak, "err": done.stderr[-500:]}))
"""


def measure(command: list[str], runs: int) -> tuple[float, float]:
    walls, peaks = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True
        )
        result = json.loads(out.stdout)
        if result["rc"]:
            raise SystemExit(f"{' '.join(command)} failed: {result['err']}")
        walls.append(result["wall"])
        peaks.append(result["rss_mb"])
    return statistics.median(walls), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--light-python", default=None, help="python of a venv without TensorFlow")
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from facenet import export
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet, save_model

    tmp = Path(tempfile.mkdtemp(prefix="facenet-startup-"))
    info = ModelInfo(input_size=160, alpha=args.alpha, name="startup")
    network = build_facenet("mobilenet", (160, 160, 3), 128, alpha=args.alpha)
    keras_path = save_model(network, info, tmp / "m.keras")
    onnx_path = export.export_onnx(network, info, tmp / "m.onnx")
    models = {".keras (TensorFlow)": keras_path, ".onnx": onnx_path}
    try:
        models[".tflite"] = export.export_tflite(network, info, tmp / "m.tflite")
    except Exception as exc:  # no converter
        print(f"(no .tflite row: {exc})")
    faces = np.random.default_rng(0).integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
    images = []
    for i, face in enumerate(faces):
        images.append(str(tmp / f"{i}.png"))
        Image.fromarray(face).save(images[-1])

    def command(python: str, model: Path) -> list[str]:
        return [python, "-m", "facenet", "verify", "--no-detect", "--model", str(model), *images]

    rows = [(name, command(sys.executable, path)) for name, path in models.items()]
    if args.light_python:
        rows.append((".onnx, light venv (no TF)", command(args.light_python, onnx_path)))
    rows.append(("python -c pass (baseline)", [sys.executable, "-c", "pass"]))
    print(
        f"facenet verify --no-detect, MobileNet alpha {args.alpha:g} 160 px, median of {args.runs}"
    )
    print(f"| {'model':28} | wall s | peak RSS MB |")
    print(f"|{'-' * 30}|--------|-------------|")
    for name, cmd in rows:
        wall, rss = measure(cmd, args.runs)
        print(f"| {name:28} | {wall:6.2f} | {rss:11.0f} |")


if __name__ == "__main__":
    main()

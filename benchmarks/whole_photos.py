"""Whole photos per second: detect + align + embed raw LFW photos, each bundled model beside
face_recognition (dlib's HOG detector + its ResNet encoder) on the same photos, same run.

    python benchmarks/whole_photos.py [--photos 200] [--rounds 3] [--batch 32]

face_recognition is the reference users compare with (`pip install dlib-bin
face_recognition_models` and `pip install --no-deps face_recognition`); it is skipped, and said
so, when absent. Each round embeds the same photos with every engine in turn (interleaved, so
a noisy machine slows all alike); the medians and the ratios to face_recognition are printed,
with the faces each engine found and the CPU time each used per photo (process time: every
thread of the engine; a figure that depends less on what else runs on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_common import DEFAULT_LFW, people  # noqa: E402


def engines(batch: int) -> dict:
    from facenet import FaceNet
    from facenet.catalog import MODELS

    out = {}
    for name in MODELS:
        model = FaceNet.load(name)
        out[name] = lambda files, m=model: int(
            np.isfinite(m.embed(files, batch_size=batch, on_missing="nan")[:, 0]).sum()
        )
    try:
        import face_recognition
    except ImportError:
        print("face_recognition is not installed: no reference engine", file=sys.stderr)
        return out

    def reference(files) -> int:
        found = 0
        for file in files:
            image = face_recognition.load_image_file(file)
            found += len(face_recognition.face_encodings(image)[:1])
        return found

    out["face_recognition"] = reference
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = [str(f[0]) for f in people(args.lfw).values()][: args.photos]
    runners = engines(args.batch)
    for run in runners.values():  # warm-up: sessions, thread pools
        run(files[:4])
    rates: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    found: dict[str, int] = {}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, run in runners.items():
            start, used = time.perf_counter(), time.process_time()
            found[name] = run(files)
            rates[name].append(len(files) / (time.perf_counter() - start))
            cpu[name].append(1000 * (time.process_time() - used) / len(files))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    cpu_ms = {name: statistics.median(c) for name, c in cpu.items()}
    base = medians.get("face_recognition")
    print(
        f"{len(files)} LFW photos, {args.rounds} rounds, load average {load:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    for name, rate in medians.items():
        ratio = f"{rate / base:.2f}x face_recognition" if base else ""
        work = f"(CPU time {cpu_ms['face_recognition'] / cpu_ms[name]:.2f}x less)" if base else ""
        print(
            f"{name:18} {rate:7.1f} photos/s {cpu_ms[name]:6.1f} ms CPU/photo  "
            f"faces {found[name]:4d}  {ratio} {work}"
        )
    if args.json:
        print(json.dumps({"photos": len(files), "photos_per_s": medians, "cpu_ms": cpu_ms,
                          "faces": found}))  # fmt: skip


if __name__ == "__main__":
    main()

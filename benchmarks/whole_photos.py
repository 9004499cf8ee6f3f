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


def _profile(files: list[str], batch: int) -> None:
    """CPU ms per photo of each step `embed` takes for the default model, one after another
    (decode, detect in batches, align, embed the crops), detection split by network."""
    from detect_profile import line, profile

    from facenet import FaceNet
    from facenet.detect import MTCNN
    from facenet.detect.crops import aligned, face_crops
    from facenet.detect.detector import detector_settings
    from facenet.images import load_image

    model = FaceNet.load()
    info = model.info
    detector = MTCNN(threads=1, **detector_settings(info.detection))
    cut = aligned(info.input_size, info.alignment, info.margin)
    n = len(files)

    def cpu_ms(fn) -> tuple[float, object]:
        start = time.process_time()
        out = fn()
        return 1000 * (time.process_time() - start) / n, out

    decode, rgbs = cpu_ms(lambda: [load_image(f) for f in files])
    chunks = [rgbs[i : i + batch] for i in range(0, n, batch)]
    detector.detect_batch(chunks[0][:1])
    nets = profile(detector, [lambda c=c: detector.detect_batch(c) for c in chunks])
    found = [f for c in chunks for f in detector.detect_batch(c)]
    align, faces = cpu_ms(lambda: face_crops(rgbs, detector, cut, None, found))
    crops = np.stack([f.crop for f in faces if f is not None])
    model.embed_crops(crops[:2])
    embed, _ = cpu_ms(lambda: model.embed_crops(crops, batch_size=batch))
    print(f"\n{model.name or 'default model'}: CPU ms per photo, detection on one thread, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"  decode {decode:.1f}, align {align:.1f}, embed {embed:.1f} (the embedder's threads)")
    print(line(f"detect, batches of {batch}", {k: v * len(chunks) / n for k, v in nets.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile", action="store_true",
        help="also: CPU ms per photo in each step of the default model's pipeline",
    )  # fmt: skip
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
    if args.profile:
        _profile(files, args.batch)
    if args.json:
        print(json.dumps({"photos": len(files), "photos_per_s": medians, "cpu_ms": cpu_ms,
                          "faces": found}))  # fmt: skip


if __name__ == "__main__":
    main()

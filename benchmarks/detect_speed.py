"""Face detection speed: facenet.detect.MTCNN (ONNX Runtime) beside facenet-pytorch and PyPI mtcnn.

Images per second (median over repeats) for 250 x 250 LFW images, one at a time and batched, and
for a 1920 x 1080 photo (LFW faces pasted on a textured background). Every detector uses the same
settings (min face 20 px, thresholds 0.6/0.7/0.7, factor 0.709) and the same number of threads.
Detectors whose package is missing in this interpreter are skipped with a note, so run it twice:

    # ours + facenet-pytorch (torch lives in its own venv)
    PYTHONPATH=/work/main /work/torch-venv/bin/python benchmarks/detect_speed.py
    # ours + PyPI mtcnn (needs TensorFlow: the main venv; mtcnn unpacked with --target)
    PYTHONPATH=/work/main:/work/mtcnn-pkg /work/main/.venv/bin/python benchmarks/detect_speed.py

    --max-side-sweep also times ours on a 4000 x 3000 photo for several max_side values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"
SETTINGS = {"min_face_size": 20, "thresholds": (0.6, 0.7, 0.7), "factor": 0.709}


def lfw_images(n: int) -> list[np.ndarray]:
    people = sorted(p for p in LFW.iterdir() if p.is_dir())
    step = max(len(people) // n, 1)
    files = [sorted(p.glob("*.jpg"))[0] for p in people[::step][:n]]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def photo(width: int, height: int, faces: list[np.ndarray], face_px: list[int]) -> np.ndarray:
    """A textured background with LFW images pasted at the given sizes (deterministic)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 80 * xx / width, 90 + 60 * yy / height, 140 - 50 * xx / width], -1)
    noise = rng.normal(0, 12, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)
    canvas = np.clip(base + noise[:height, :width], 0, 255).astype(np.uint8)
    x, y, row_h = 40, 40, 0
    for face, size in zip(faces, face_px, strict=False):
        if x + size > width - 40:
            x, y, row_h = 40, y + row_h + 40, 0
        if y + size > height - 40:
            break
        canvas[y : y + size, x : x + size] = np.asarray(Image.fromarray(face).resize((size, size)))
        x, row_h = x + size + 60, max(row_h, size)
    return canvas


def timeit(fn, items: int, repeats: int, warmup: int = 1) -> tuple[float, int]:
    """Median images per second of fn() (which handles `items` images), and its last face count."""
    found = 0
    for _ in range(warmup):
        found = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        found = fn()
        times.append(time.perf_counter() - start)
    return items / statistics.median(times), found


# ---------------------------------------------------------------------- detectors


def ours(threads: int, max_side: int | None = 1600):
    from facenet.detect import MTCNN

    det = MTCNN(threads=threads, max_side=max_side, **SETTINGS)
    return {
        "one": lambda img: len(det.detect(img)),
        "batch": lambda imgs: sum(len(f) for f in det.detect_batch(imgs)),
    }


def _torchvision_stand_in() -> str | None:
    """facenet-pytorch imports torchvision for `batched_nms` alone (detection). PyPI's
    torchvision wheels are CUDA builds whose compiled ops do not load beside the CPU torch, so
    when its ops are missing the same greedy NMS this package uses (mtcnn.nms, NumPy) stands in:
    both detectors then pay the same for NMS. Returns a note when the stand-in is used."""
    import types

    try:
        from torchvision.ops.boxes import batched_nms  # noqa: F401

        return None
    except (ImportError, RuntimeError, OSError):
        pass
    import torch

    from facenet.detect.mtcnn import nms

    def batched(boxes, scores, idxs, iou_threshold):
        rows = np.column_stack([boxes.numpy(), scores.numpy()])  # CPU tensors: no copies
        keep = nms(rows, float(iou_threshold), groups=idxs.numpy())
        return torch.from_numpy(keep)

    tv = types.ModuleType("torchvision")
    ops, box_ops = types.ModuleType("torchvision.ops"), types.ModuleType("torchvision.ops.boxes")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    box_ops.batched_nms = batched
    tv.ops, ops.boxes, tv.transforms, transforms.functional = ops, box_ops, transforms, functional
    for name in list(sys.modules):
        if name == "torchvision" or name.startswith("torchvision."):
            del sys.modules[name]
    sys.modules.update({
        "torchvision": tv, "torchvision.ops": ops, "torchvision.ops.boxes": box_ops,
        "torchvision.transforms": transforms, "torchvision.transforms.functional": functional,
    })  # fmt: skip
    return (
        "facenet-pytorch: torchvision's compiled NMS does not load here; "
        "facenet.detect's NMS stands in"
    )


def facenet_pytorch(threads: int):
    import torch

    note = _torchvision_stand_in()
    if note:
        print(note, flush=True)
    from facenet_pytorch import MTCNN

    torch.set_num_threads(threads)
    det = MTCNN(
        keep_all=True,
        device="cpu",
        min_face_size=SETTINGS["min_face_size"],
        thresholds=list(SETTINGS["thresholds"]),
        factor=SETTINGS["factor"],
    )

    def count(boxes) -> int:
        return 0 if boxes is None else len(boxes)

    def one(img):
        with torch.inference_mode():
            return count(det.detect(img)[0])

    def batch(imgs):
        with torch.inference_mode():
            return sum(count(b) for b in det.detect(np.stack(imgs))[0])

    return {"one": one, "batch": batch}


def pypi_mtcnn(threads: int):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from mtcnn import MTCNN

    det = MTCNN(device="CPU:0")
    kw = {
        "min_face_size": SETTINGS["min_face_size"],
        "scale_factor": SETTINGS["factor"],
        "threshold_pnet": SETTINGS["thresholds"][0],
        "threshold_rnet": SETTINGS["thresholds"][1],
        "threshold_onet": SETTINGS["thresholds"][2],
    }
    return {
        "one": lambda img: len(det.detect_faces(img, **kw)),
        "batch": lambda imgs: sum(len(f) for f in det.detect_faces(list(imgs), **kw)),
    }


DETECTORS = {
    # full resolution (max_side=None), so every detector does the same work; see --max-side-sweep
    "facenet (ours, ONNX)": lambda threads: ours(threads, None),
    "facenet-pytorch": facenet_pytorch,
    "PyPI mtcnn": pypi_mtcnn,
}


def _profile(small: list[np.ndarray], big: np.ndarray) -> None:
    """CPU time per image in each of our networks, one thread (see detect_profile.py)."""
    from detect_profile import line, profile

    from facenet.detect import MTCNN

    det = MTCNN(threads=1, max_side=None, **SETTINGS)
    det.detect(big)
    print(f"\nours, one thread, CPU ms per image (load average {os.getloadavg()[0]:.2f}):")
    one = profile(det, [lambda i=i: det.detect(i) for i in small])
    print(line("LFW 250x250, one at a time", one))
    batch = profile(det, [lambda: det.detect_batch(small)])
    print(
        line(f"LFW 250x250, batch of {len(small)}", {k: v / len(small) for k, v in batch.items()})
    )
    print(line("1920x1080 photo", profile(det, [lambda: det.detect(big)] * 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--lfw", type=int, default=32, help="LFW images to time")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-side-sweep", action="store_true")
    parser.add_argument(
        "--profile", action="store_true",
        help="also: CPU ms per image in each of our networks (one thread)",
    )  # fmt: skip
    args = parser.parse_args()
    if not LFW.is_dir():
        sys.exit(f"LFW not found at {LFW}")

    small = lfw_images(args.lfw)
    big = photo(1920, 1080, small, [220, 160, 120, 90, 300, 70, 140, 200])
    tasks = [
        (
            "LFW 250x250, one at a time",
            len(small),
            lambda d: lambda: sum(d["one"](i) for i in small),
        ),
        (f"LFW 250x250, batch of {len(small)}", len(small), lambda d: lambda: d["batch"](small)),
        ("1920x1080 photo, one", 1, lambda d: lambda: d["one"](big)),
    ]
    print(
        f"python {sys.version.split()[0]}, {args.threads} threads, "
        f"{args.repeats} repeats (median), "
        f"settings {SETTINGS}, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    detectors = {}
    for name, make in DETECTORS.items():
        try:
            detectors[name] = make(args.threads)
        except ImportError as exc:
            print(f"{name}: skipped, not importable here ({exc.name or exc})", flush=True)
        except Exception as exc:  # e.g. an incompatible TensorFlow
            print(f"{name}: skipped, failed to start ({type(exc).__name__}: {exc})", flush=True)
    # Repeats are interleaved across detectors, so a busy shared machine slows all alike.
    table: dict[str, dict[str, tuple[float, int, float]]] = {name: {} for name in detectors}
    for task, items, fn in tasks:
        runs = {name: fn(d) for name, d in detectors.items()}
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        found: dict[str, int] = {}
        for name, run in list(runs.items()):
            try:
                found[name] = run()  # warm-up
            except Exception as exc:
                print(f"{name} / {task}: failed ({type(exc).__name__}: {exc})", flush=True)
                del runs[name]
        for _ in range(args.repeats):
            for name, run in runs.items():
                start, used = time.perf_counter(), time.process_time()
                found[name] = run()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - used)
        for name in runs:
            ips = items / statistics.median(times[name])
            cpu_ms = 1000 * statistics.median(cpu[name]) / items
            table[name][task] = (ips, found[name], cpu_ms)
            print(
                f"  {name:22s} {task:30s} {ips:8.2f} img/s {cpu_ms:8.1f} ms CPU/img "
                f"({found[name]} faces)",
                flush=True,
            )

    base = "facenet (ours, ONNX)"
    print(f"\nimages/s (median); ratio = ours / other; load average {os.getloadavg()[0]:.2f}")
    names = list(table)
    print(
        f"{'task':32s}"
        + "".join(f"{n:>24s}" for n in names)
        + "".join(f"{'ours/' + n:>26s}" for n in names if n != base)
    )
    for task, _, _ in tasks:
        row = f"{task:32s}"
        for n in names:
            v = table[n].get(task)
            row += f"{v[0]:24.2f}" if v else f"{'-':>24s}"
        for n in names:
            if n == base:
                continue
            a, b = table[base].get(task), table[n].get(task)
            row += f"{a[0] / b[0]:25.2f}x" if a and b else f"{'-':>26s}"
        print(row)
    print("CPU time per image (process time, every thread), ratio = other / ours:")
    for task, _, _ in tasks:
        row = f"{task:32s}"
        for n in names:
            v = table[n].get(task)
            row += f"{v[2]:21.1f} ms" if v else f"{'-':>24s}"
        for n in names:
            if n != base and table[base].get(task) and table[n].get(task):
                row += f"{table[n][task][2] / table[base][task][2]:25.2f}x"
        print(row)

    if args.profile:
        _profile(small, big)

    if args.max_side_sweep:
        huge = photo(4000, 3000, small, [400, 300, 220, 160, 120, 600, 90, 250])
        print("\nours on a 4000x3000 photo (8 faces of 90-600 px) by max_side:")
        for max_side in (800, 1200, 1600, 2400, None):
            d = ours(args.threads, max_side)
            ips, found = timeit(lambda d=d: d["one"](huge), 1, max(args.repeats // 2, 1))
            print(
                f"  max_side={max_side!s:5s} {1000 / ips:8.0f} ms/img  faces found: {found}",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Share of images in which MTCNN finds at least one face (LFW, CelebA, or any folder).

    python benchmarks/detection_rate.py                       # LFW and CelebA from ../shared/data
    python benchmarks/detection_rate.py --data lfw --min-face-size 40 --misses /tmp/lfw_misses.txt

Multiprocess (one detector per worker, one ONNX Runtime thread each), progress on stderr.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = {"lfw": DATA / "lfw" / "lfw-deepfunneled", "celeba": DATA / "celeba"}
EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

_detector = None
_pad_retry = False


def _init(options: dict, pad_retry: bool) -> None:
    global _detector, _pad_retry
    sys.path.insert(0, str(ROOT))
    from facenet.detect import MTCNN

    _detector = MTCNN(threads=1, **options)
    _pad_retry = pad_retry


def _count(paths: list[str]) -> list[tuple[str, int]]:
    from facenet.errors import ImageError
    from facenet.images import load_image

    images, names, out = [], [], []
    for p in paths:
        try:
            images.append(load_image(p))
            names.append(p)
        except ImageError:
            out.append((p, -1))
    found = [len(faces) for faces in _detector.detect_batch(images)]
    if _pad_retry:  # as `facenet align` does: look again in an edge-padded copy
        from facenet.detect.aligner import edge_pad

        missed = [k for k, n in enumerate(found) if n == 0]
        again = _detector.detect_batch([edge_pad(images[k]) for k in missed])
        for k, faces in zip(missed, again, strict=True):
            found[k] = len(faces)
    out.extend(zip(names, found, strict=True))
    return out


def rate(folder: Path, options: dict, workers: int, batch: int, misses, pad_retry) -> dict:
    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS)
    chunks = [paths[i : i + batch] for i in range(0, len(paths), batch)]
    counts: dict[str, int] = {}
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init, initargs=(options, pad_retry)) as pool:
        with tqdm(total=len(paths), desc=folder.name, unit="img", file=sys.stderr) as bar:
            for result in pool.imap_unordered(_count, chunks):
                counts.update(result)
                bar.update(len(result))
    seconds = time.perf_counter() - start
    found = sum(1 for n in counts.values() if n >= 1)
    several = sum(1 for n in counts.values() if n > 1)
    unreadable = sum(1 for n in counts.values() if n < 0)
    missed = sorted(p for p, n in counts.items() if n == 0)
    if misses is not None:
        misses.write_text("".join(f"{p}\n" for p in missed))
    return {
        "images": len(paths),
        "with_face": found,
        "rate": found / max(len(paths), 1),
        "several_faces": several,
        "no_face": len(missed),
        "unreadable": unreadable,
        "seconds": seconds,
        "missed_examples": missed[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", nargs="+", default=["lfw", "celeba"], help="lfw, celeba or a folder"
    )
    parser.add_argument("--min-face-size", type=float, default=20)
    parser.add_argument("--thresholds", type=float, nargs=3, default=(0.6, 0.7, 0.7))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pad-retry", action="store_true", help="retry misses edge-padded")
    parser.add_argument("--misses", type=Path, default=None, help="write images with no face here")
    args = parser.parse_args()
    options = {"min_face_size": args.min_face_size, "thresholds": tuple(args.thresholds)}
    print(f"MTCNN {options}, pad_retry={args.pad_retry}, workers={args.workers}", flush=True)
    for name in args.data:
        folder = SETS.get(name, Path(name))
        if not folder.is_dir():
            print(f"{name}: {folder} not found, skipped", flush=True)
            continue
        misses = None
        if args.misses is not None:
            misses = args.misses if len(args.data) == 1 else args.misses.with_suffix(f".{name}.txt")
        r = rate(folder, options, args.workers, args.batch, misses, args.pad_retry)
        print(
            f"{name}: {r['with_face']}/{r['images']} images with >= 1 face "
            f"= {100 * r['rate']:.2f}% "
            f"(no face {r['no_face']}, several faces {r['several_faces']}, unreadable "
            f"{r['unreadable']}; {r['seconds']:.0f} s, {r['images'] / r['seconds']:.1f} img/s)",
            flush=True,
        )
        if r["missed_examples"]:
            print(
                "  no face, e.g.: " + ", ".join(Path(p).name for p in r["missed_examples"]),
                flush=True,
            )


if __name__ == "__main__":
    main()

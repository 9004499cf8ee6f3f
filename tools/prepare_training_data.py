"""Align the training data (and LFW View 1, for teacher checks only) with the project's aligner.

Runs `facenet align` on:
    /work/shared/data/celeba   -> /work/data-cache/celeba-182
    /work/shared/data/utkface  -> /work/data-cache/utkface-182
    LFW View 1 images          -> /work/data-cache/lfw-view1-182   (evaluation use only)
all at 182 px, margin 44 (scaled by the CLI: 44 * 182 / 160 = 50.05 image pixels in total),
mode crop. LFW View 1 means only the images named in pairsDevTrain.txt / pairsDevTest.txt: they
are linked into /work/data-cache/lfw-view1-src/<Person>/<file>.jpg first (symlinks), so the
aligner sees a folder-per-identity dataset. View 2 (pairs.txt) images are never touched here.

Every step is resumable (the aligner skips what is done). Usage:

    nice -n 5 nohup .venv/bin/python tools/prepare_training_data.py [--only lfw,celeba,utkface] \
        [-j 2] > /work/data-cache/prepare.log 2>&1 &

Prints the counts of each aligner report at the end (also in <dst>/align_report.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path("/work/shared/data")
CACHE = Path("/work/data-cache")
SIZE, MARGIN, MODE = 182, 44, "crop"
FACENET = str(Path(sys.executable).with_name("facenet"))


def view1_images(lfw: Path = DATA / "lfw") -> list[str]:
    """Relative paths `<Person>/<Person>_NNNN.jpg` of every image in the View 1 pair lists."""
    rels: set[str] = set()
    for name in ("pairsDevTrain.txt", "pairsDevTest.txt"):
        lines = (lfw / name).read_text().split("\n")[1:]
        for line in lines:
            parts = line.split()
            if len(parts) == 3:
                pairs = [(parts[0], parts[1]), (parts[0], parts[2])]
            elif len(parts) == 4:
                pairs = [(parts[0], parts[1]), (parts[2], parts[3])]
            else:
                continue
            for person, idx in pairs:
                rels.add(f"{person}/{person}_{int(idx):04d}.jpg")
    return sorted(rels)


def link_view1(dst: Path = CACHE / "lfw-view1-src") -> Path:
    root = DATA / "lfw" / "lfw-deepfunneled"
    for rel in view1_images():
        link = dst / rel
        if link.is_symlink() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(root / rel, link)
    return dst


def align(src: Path, dst: Path, workers: int) -> dict:
    cmd = [
        FACENET,
        "align",
        str(src),
        str(dst),
        "--size",
        str(SIZE),
        "--margin",
        str(MARGIN),
        "--mode",
        MODE,
        "-j",
        str(workers),
    ]
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    report = json.loads((dst / "align_report.json").read_text())
    print(f"{dst.name}: {json.dumps(report['counts'])} in {time.time() - t0:.0f} s", flush=True)
    return report["counts"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="lfw,celeba,utkface")
    ap.add_argument("-j", "--workers", type=int, default=2)
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    counts = {}
    for what in args.only.split(","):
        if what == "lfw":
            counts[what] = align(link_view1(), CACHE / "lfw-view1-182", args.workers)
        elif what in ("celeba", "utkface"):
            counts[what] = align(DATA / what, CACHE / f"{what}-182", args.workers)
        else:
            raise SystemExit(f"unknown dataset {what!r}")
    print(json.dumps(counts, indent=2))


if __name__ == "__main__":
    main()

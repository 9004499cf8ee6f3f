"""Peak memory and wall time of `facenet embed` on a batch of large photos, per source tree.

Why: a batch's photos are decoded and detected together; camera-sized photos make that batch
gigabytes (`facenet.images.DECODED_PIXELS` bounds it now). This writes `--photos` LFW photos
upscaled to `--size` (JPEG q85) into a temporary folder and runs `facenet embed` on all of them
as one batch in a fresh process, once per `--tree` per round, interleaved (a tree: a checkout
whose `facenet` is imported through PYTHONPATH, e.g. a `git worktree` of the commit before a
change), and prints the median peak RSS and wall time with ratios against the first tree, and
whether every tree gave the same embeddings.

    git worktree add /tmp/base HEAD~1
    python benchmarks/large_photos.py --tree /tmp/base . [--photos 8] [--size 6000 4500]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw" / "lfw-deepfunneled"
#: `facenet` from the tree on PYTHONPATH (asserted: a run that imported another one fails).
RUN = (
    "import os, sys, facenet; from facenet.cli import main; sys.argv[0] = 'facenet'; "
    "assert facenet.__file__.startswith(os.environ['PYTHONPATH']); main()"
)


def write_photos(folder: Path, count: int, size: tuple[int, int]) -> list[str]:
    """`count` LFW photos (the first of as many people) upscaled to `size`."""
    paths = []
    for i, source in enumerate(sorted(LFW.glob("*/*_0001.jpg"))[:count]):
        path = folder / f"photo{i}.jpg"
        Image.open(source).convert("RGB").resize(size, Image.BILINEAR).save(path, quality=85)
        paths.append(str(path))
    return paths


def run(tree: str, photos: list[str], out: Path) -> tuple[float, float]:
    """(peak RSS MB, wall s) of one `facenet embed` of `photos` with `tree`'s facenet."""
    command = ["/usr/bin/time", "-f", "%M %e", sys.executable, "-c", RUN, "embed", *photos,
               "--out", str(out), "--no-progress"]  # fmt: skip
    env = {"PYTHONPATH": str(Path(tree).resolve()), "PATH": "/usr/bin:/bin"}
    # run from the photos' folder: `python -c` puts the working directory first on sys.path,
    # which from a checkout would import that checkout's facenet whatever the tree
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=out.parent, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{tree}: facenet embed failed: {done.stderr.strip().splitlines()[-1]}")
    kb, seconds = done.stderr.strip().splitlines()[-1].split()
    return int(kb) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", nargs="+", required=True, help="checkouts; the first is the base")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[6000, 4500], metavar=("W", "H"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        photos = write_photos(Path(folder), args.photos, tuple(args.size))
        results = {tree: [] for tree in args.tree}
        for _ in range(args.rounds):
            for i, tree in enumerate(args.tree):
                results[tree].append(run(tree, photos, Path(folder) / f"out{i}.npz"))
        vectors = [
            np.load(Path(folder) / f"out{i}.npz")["embeddings"] for i in range(len(args.tree))
        ]
    base_mb = statistics.median(r[0] for r in results[args.tree[0]])
    base_s = statistics.median(r[1] for r in results[args.tree[0]])
    print(
        f"{args.photos} photos of {args.size[0]} x {args.size[1]}, one batch, {args.rounds} rounds"
    )
    print(f"{'tree':<30} {'peak MB':>9} {'x base':>7} {'wall s':>8} {'x base':>7}")
    for tree, runs in results.items():
        mb, s = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        print(f"{tree:<30} {mb:>9.0f} {mb / base_mb:>7.2f} {s:>8.2f} {s / base_s:>7.2f}")
    same = all(np.allclose(v, vectors[0], atol=1e-6, equal_nan=True) for v in vectors)
    print("same embeddings in every tree:", same)


if __name__ == "__main__":
    main()

"""A detection + embedding cache for the people-library benchmarks: each photo's faces as the
model's `represent` returns them, computed once and kept in a file under /tmp, so that reruns
skip the CPU-heavy part while the library still goes through its normal `add` path.

`CachedModel` wraps the real model: `represent(image)` answers from the cache (keyed by the
image's pixels) and falls back to the model for photos it has not seen.
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facenet.images import load_image  # noqa: E402
from facenet.types import Face  # noqa: E402


def pixel_key(rgb: np.ndarray) -> str:
    """The cache key of a decoded photo."""
    digest = hashlib.sha1(f"{rgb.shape}".encode())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


class CachedModel:
    """The model, with `represent` served from a cache of {pixel key: [Face, ...]}."""

    def __init__(self, model, faces: dict[str, list[Face]]):
        self.model = model
        self.model_id = model.model_id
        self.faces = faces

    @property
    def info(self):
        return self.model.info

    def represent(self, image) -> list[Face]:
        rgb = load_image(image)
        key = pixel_key(rgb)
        if key not in self.faces:
            self.faces[key] = self.model.represent(rgb)
        return self.faces[key]


def build(model, paths: list[Path], cache: Path) -> CachedModel:
    """Load the cache at `cache` (when it is the same model's) and fill in missing photos."""
    faces: dict[str, list[Face]] = {}
    keys: dict[str, str] = {}
    if cache.is_file():
        with open(cache, "rb") as f:
            data = pickle.load(f)
        if data["model_id"] == model.model_id:
            faces, keys = data["faces"], data["keys"]
    todo = [p for p in paths if str(p) not in keys]
    start = time.monotonic()
    for n, path in enumerate(todo, 1):
        rgb = load_image(path)
        key = pixel_key(rgb)
        faces[key] = model.represent(rgb)
        keys[str(path)] = key
        if n % 500 == 0 or n == len(todo):
            print(f"cache: {n}/{len(todo)} photos, {time.monotonic() - start:.0f} s", flush=True)
            tmp = cache.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                pickle.dump({"model_id": model.model_id, "faces": faces, "keys": keys}, f)
            tmp.replace(cache)
    return CachedModel(model, faces)


if __name__ == "__main__":
    import argparse

    from facenet import FaceNet

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--min-images", type=int, default=4)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--glob", default="*/*.jpg")
    args = parser.parse_args()
    files = sorted(args.root.glob(args.glob))
    if args.min_images > 1:
        by_person: dict[str, list[Path]] = {}
        for f in files:
            by_person.setdefault(f.parent.name, []).append(f)
        files = [f for fs in by_person.values() if len(fs) >= args.min_images for f in fs]
    build(FaceNet.load(), files, args.cache)

"""LFW pairs of people the default model confuses most: how many of their cross pairs (each
photo's most prominent face) fall under the model's verification threshold. The look-alikes
test (tests/test_people_siblings.py) takes its pair from here.

    python benchmarks/people_lookalikes.py --min-images 5 --top 15
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_cache import build  # noqa: E402
from lfw_common import DEFAULT_LFW, people  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/people_lfw_faces.pkl"))
    parser.add_argument("--min-images", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    from face_cache import pixel_key

    from facenet import FaceNet
    from facenet.images import load_image

    model = FaceNet.load()
    found = people(args.lfw, 4)
    paths = [p for files in found.values() for p in files]
    cached = build(model, paths, args.cache)
    names, vectors = [], []
    for path in paths:
        if len(found[path.parent.name]) < args.min_images:
            continue
        faces = cached.faces[pixel_key(load_image(path))]
        if faces:
            names.append(path.parent.name)
            vectors.append(max(faces, key=lambda f: f.area).embedding)
    x, names = np.array(vectors), np.array(names)
    threshold = model.info.verification_threshold
    close = (2 - 2 * x @ x.T < threshold) & (names[:, None] != names[None, :])
    pairs: Counter = Counter()
    for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True):
        pairs[tuple(sorted((names[i], names[j])))] += 1
    count = Counter(names.tolist())
    print(f"{len(names)} faces of {len(count)} people; threshold {threshold}")
    for (a, b), n in pairs.most_common(args.top):
        print(f"{a} ({count[a]})\t{b} ({count[b]})\t{n} of {count[a] * count[b]} cross pairs")


if __name__ == "__main__":
    main()

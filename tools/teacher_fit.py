"""How closely a distilled student follows its teacher, on training faces and on unseen ones.

For 1,500 crops of each set, the cosine between the student's embedding and the teacher's
target (the teacher descriptor in the training space of `facenet/train/distill.py`: the same
rotation and scale), after removing each side's mean over the set, so the large common
direction of the dlib space does not hide how much of each face's own part is matched. A small
train/held-out gap with a low training figure means the student is under-fitted (needs more
image-steps), a large gap that it over-fits.

    python tools/teacher_fit.py facenet/weights/facenet-mobilenet.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facenet import FaceNet  # noqa: E402
from facenet.train.distill import target_projection  # noqa: E402

CACHE = Path("/work/data-cache")
SETS = {  # name: (crops in the model's alignment, teacher file of the same images)
    "celeba (training)": (CACHE / "celeba-chip-112", CACHE / "teacher_celeba.npz"),
    "LFW View 1 (unseen)": (CACHE / "lfw-view1-chip112", CACHE / "teacher_lfw-view1.npz"),
}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--n", type=int, default=1500)
    args = parser.parse_args()

    model = FaceNet.load(args.model)
    with np.load(SETS["celeba (training)"][1]) as z:
        desc = z["desc"].astype(np.float64)  # the training targets' space is fitted on CelebA
    to_targets = target_projection(desc)
    for name, (root, teacher) in SETS.items():
        with np.load(teacher) as z:
            paths, their = list(z["paths"]), z["desc"]
        pick = np.random.default_rng(0).choice(len(paths), min(args.n, len(paths)), replace=False)
        pick = [i for i in sorted(pick) if (root / paths[i]).is_file()]
        crops = np.stack([np.asarray(Image.open(root / paths[i]).convert("RGB")) for i in pick])
        student = unit(model.embed_crops(crops))
        target = unit(their[pick] @ to_targets)
        raw = float(np.mean((student * target).sum(1)))
        centred = unit(student - student.mean(0)) * unit(target - target.mean(0))
        print(f"{name}: {len(pick)} faces, cosine {raw:.4f}, centred {centred.sum(1).mean():.4f}")


if __name__ == "__main__":
    main()

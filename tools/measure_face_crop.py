"""How large a face crop the gallery must keep to re-embed a face without its photo.

For LFW faces (the first photo of the first N people), prints:
1. the footprint each alignment mode needs around the detection box, as a multiple of the box's
   longer side (chip and similarity at any size; FaceNet's margin crop at 160 px);
2. for each bundled model (`facenet models`), the squared-L2 distance between the embedding
   aligned from the photo and the one aligned from a stored crop, per crop factor and side,
   with the mean JPEG size.

    PYTHONPATH=$PWD python tools/measure_face_crop.py --people 60 [--upscale 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facenet import FaceNet  # noqa: E402
from facenet.catalog import MODELS  # noqa: E402
from facenet.detect import MTCNN, align_face  # noqa: E402
from facenet.detect.align import most_prominent, similarity_transform, template  # noqa: E402
from facenet.errors import ModelNotFoundError  # noqa: E402
from facenet.gallery.crops import cut_crop  # noqa: E402
from facenet.images import load_image  # noqa: E402

LFW = ROOT.parent / "shared" / "data" / "lfw" / "lfw-deepfunneled"


def footprint(face, mode: str, size: int = 160, margin: float = 32) -> float:
    """Side of the box-centred square holding this mode's crop, over the box's longer side."""
    x1, y1, x2, y2 = face.box
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1)
    if mode == "crop":
        corners = np.array([[x1, y1], [x2, y2]]) + [[-margin / 2], [margin / 2]]
    else:
        m = similarity_transform(np.asarray(face.landmarks), template(size, mode))
        inv = np.linalg.inv(m[:, :2])
        square = np.array([[0, 0], [size, 0], [0, size], [size, size]], float)
        corners = (square - m[:, 2]) @ inv.T
    return float(2 * np.abs(corners - [cx, cy]).max() / side)


def faces(people: int, upscale: int = 1):
    detector = MTCNN()
    names = sorted(p.name for p in LFW.iterdir() if p.is_dir())[:people]
    for name in names:
        rgb = load_image(LFW / name / f"{name}_0001.jpg")
        if upscale > 1:  # a high-resolution photo: the stored crop is then downscaled
            rgb = resize_by(rgb, upscale)
        face = most_prominent(detector.detect(rgb), rgb.shape)
        if face is not None and face.landmarks is not None:
            yield rgb, face


def resize_by(rgb: np.ndarray, factor: int) -> np.ndarray:
    from PIL import Image

    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((w * factor, h * factor), Image.BICUBIC))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=80)
    ap.add_argument("--factors", default="1.6,1.9,2.2")
    ap.add_argument("--sides", default="160,224,288")
    ap.add_argument("--upscale", type=int, default=1, help="Enlarge the photos this many times.")
    args = ap.parse_args()
    found = list(faces(args.people, args.upscale))
    print(f"{len(found)} LFW faces")
    for mode in ("chip", "similarity", "crop"):
        f = np.array([footprint(face, mode) for _, face in found])
        print(f"footprint {mode:10s} p50 {np.median(f):.2f}  p99 {np.quantile(f, 0.99):.2f}  "
              f"max {f.max():.2f}")  # fmt: skip
    models = {}
    for name in sorted(MODELS):
        try:
            model = FaceNet.load(name)
        except ModelNotFoundError:
            print(f"({name} is not installed)")
            continue
        models[name] = (model.info.input_size, model.info.alignment, model.embed_crops)
    for name, (size, mode, embed) in models.items():
        ref = embed(np.stack([align_face(rgb, f, size=size, mode=mode) for rgb, f in found]))
        for factor in (float(v) for v in args.factors.split(",")):
            for side in (int(v) for v in args.sides.split(",")):
                crops, nbytes = [], []
                for rgb, face in found:
                    stored = cut_crop(rgb, face.box, factor=factor, side=side)
                    nbytes.append(len(stored.image))
                    local = stored.face_in_crop(face.box, face.landmarks)
                    crops.append(align_face(stored.decode(), local, size=size, mode=mode))
                d = np.sum((embed(np.stack(crops)) - ref) ** 2, axis=1)
                print(f"{name:12s} factor {factor:.1f} side {side:3d}: distance mean {d.mean():.4f}"
                      f"  p95 {np.quantile(d, 0.95):.4f}  max {d.max():.4f}  "
                      f"JPEG {np.mean(nbytes) / 1024:.1f} KB")  # fmt: skip


if __name__ == "__main__":
    main()

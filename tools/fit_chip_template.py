"""Fit the five-point template of the "chip" alignment mode: dlib's face-chip framing from MTCNN.

The dlib teacher sees `dlib.get_face_chip(size=150, padding=0.25)` chips, cut by dlib's own
5-point landmarks (eye corners and nose base). The student, and every user of the shipped model,
only has MTCNN's landmarks (eye centres, nose tip, mouth corners). This tool finds the template T
(in unit coordinates of the chip) such that the similarity warp MTCNN-landmarks -> T * size cuts
the same chip as dlib does: it detects faces in aligned crops whose dlib chip maps are recorded in
a teacher file (`tools/teacher_dlib.py`, `affine`), carries MTCNN's landmarks into each dlib chip
and averages them. It then reports how far the fitted warp's chip corners land from dlib's.

    python tools/fit_chip_template.py /work/data-cache/celeba-182 \
        /work/data-cache/teacher_celeba.npz --limit 3000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facenet.detect import MTCNN, most_prominent, similarity_transform  # noqa: E402
from facenet.images import load_image  # noqa: E402

CHIP = 150  # dlib chip side the teacher file's affine maps are expressed in


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="aligned crops the teacher file was computed on")
    parser.add_argument("teacher", type=Path, help="teacher_*.npz with paths and affine")
    parser.add_argument("--limit", type=int, default=3000, help="crops to use (evenly spaced)")
    args = parser.parse_args()

    with np.load(args.teacher) as z:
        paths, affine, source = z["paths"], z["affine"].astype(np.float64), z["rect_source"]
    usable = np.flatnonzero(source == 0)  # HOG rectangles: dlib's own landmarks are reliable
    pick = usable[np.linspace(0, len(usable) - 1, min(args.limit, len(usable))).astype(int)]
    detector = MTCNN()
    chips, kept = [], []
    for i in pick:
        image = load_image(args.root / str(paths[i]))
        face = most_prominent(detector.detect(image), image.shape)
        if face is None:
            continue
        a, t = affine[i][:, :2], affine[i][:, 2]
        crop_idx = np.asarray(face.landmarks, float) - 0.5  # dlib: pixel centres at integers
        chip_idx = (crop_idx - t) @ np.linalg.inv(a).T
        chips.append((chip_idx + 0.5) / CHIP)
        kept.append(i)
    chips = np.array(chips)
    template = chips.mean(axis=0)

    # How well the fitted template reproduces dlib's chips: chip corners, in chip pixels.
    corners = np.array([[0, 0], [CHIP, 0], [0, CHIP], [CHIP, CHIP]], float)
    errors = []
    for pts in chips:
        m = similarity_transform(pts * CHIP, template * CHIP)  # dlib chip -> our chip
        moved = corners @ m[:, :2].T + m[:, 2]
        errors.append(np.sqrt(((moved - corners) ** 2).sum(1)).mean())
    errors = np.array(errors)
    report = {
        "template_unit": np.round(template, 5).tolist(),
        "landmark_std_unit": np.round(chips.std(axis=0), 4).tolist(),
        "faces": len(kept),
        "of": int(len(pick)),
        "corner_error_px_at_150": {
            "median": round(float(np.median(errors)), 2),
            "p90": round(float(np.percentile(errors, 90)), 2),
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

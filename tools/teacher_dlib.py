"""Pre-compute dlib ResNet teacher descriptors for a folder of aligned face crops (distillation).

A training-time tool: needs `pip install dlib-bin face_recognition_models` (CC0 models), never a
dependency of the package.

For every crop under ROOT (the output of `facenet align ... --size 182 --margin 44`), and for two
views - the crop and its horizontal mirror - it:
  1. finds the face rectangle in the crop: dlib's HOG frontal detector on the crop (no upsampling;
     the largest, most central box), or, when HOG finds nothing (profiles), the crop minus a
     fixed margin (`--margin-px` per side at 182 px, scaled with the crop size). The mirror view
     uses the mirrored rectangle. (`--rect margin` uses the fixed rectangle always.)
  2. runs dlib's 5-point shape predictor on that rectangle and cuts dlib's own chip:
     `dlib.get_face_chip(img, shape, size=150, padding=0.25)`;
  3. computes the 128-d descriptor - with `tools/dlib_resnet.py` (the same network in Keras,
     verified equal to dlib to < 1e-6, ~100x faster than the BLAS-less dlib-bin wheel here) by
     default, or with `dlib.face_recognition_model_v1.compute_face_descriptor` (`--backend dlib`).

Output: OUT/teacher_<name>.npz with
    paths        (n,) str     crop paths relative to ROOT
    desc         (n, 128) f4  raw dlib descriptors of the crop (NOT unit length: |d| ~ 1.3-1.6)
    desc_flip    (n, 128) f4  same for the mirrored crop
    shape, shape_flip (n, 5, 2) f4  dlib's 5 landmarks (x, y) in crop pixels, per view
    rect_source  (n,) i1      0 = HOG rectangle, 1 = fixed-margin fallback
    affine, affine_flip (n, 2, 3) f4  chip pixel -> crop pixel maps of each view's dlib chip
                              (for running the teacher online on augmented crops: see
                              `chip_affine` and `dlib_resnet.warp_chips`)
    settings     ()  str      JSON of the settings
Work is done in chunks saved under OUT/teacher_<name>.parts/ (atomic writes); a rerun resumes
and the final file is written atomically. Progress (chips/s, ETA) goes to stdout.

    nice -n 5 nohup .venv/bin/python tools/teacher_dlib.py /work/data-cache/celeba-182 \
        --name celeba > /work/data-cache/teacher_celeba.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHIP_SIZE, CHIP_PADDING = 150, 0.25
DEFAULT_MARGIN_PX = 28.0  # per side at 182 px: 44 * 182 / 160 / 2 image px, for a ~100 px face


def list_crops(root: Path) -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.endswith(".png") and not f.startswith("."):
                out.append((Path(dirpath) / f).relative_to(root).as_posix())
    return sorted(out)


class ChipMaker:
    """Crop -> (chips for the crop and its mirror, landmarks, rect source)."""

    def __init__(self, rect: str = "hog", margin_px: float = DEFAULT_MARGIN_PX):
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.rect = rect
        self.margin_px = margin_px
        self.sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self.hog = dlib.get_frontal_face_detector() if rect == "hog" else None

    def _rect(self, img: np.ndarray):
        h, w = img.shape[:2]
        if self.hog is not None:
            found = list(self.hog(img, 0))
            if found:
                cx, cy = w / 2, h / 2

                def key(r):
                    centre = ((r.left() + r.right()) / 2 - cx) ** 2 + (
                        (r.top() + r.bottom()) / 2 - cy
                    ) ** 2
                    return (-r.area(), centre)

                return min(found, key=key), 0
        m = self.margin_px * w / 182.0
        return self.dlib.rectangle(
            int(round(m)), int(round(m)), int(round(w - 1 - m)), int(round(h - 1 - m))
        ), 1

    def __call__(self, img: np.ndarray):
        dlib = self.dlib
        rect, source = self._rect(img)
        w = img.shape[1]
        flipped = np.ascontiguousarray(img[:, ::-1])
        rect_f = dlib.rectangle(
            w - 1 - rect.right(), rect.top(), w - 1 - rect.left(), rect.bottom()
        )
        out = []
        for im, r in ((img, rect), (flipped, rect_f)):
            shape = self.sp(im, r)
            chip = dlib.get_face_chip(im, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            pts = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
            out.append((chip, pts))
        return out[0][0], out[1][0], out[0][1], out[1][1], source


class Descriptor:
    def __init__(self, backend: str = "keras", batch: int = 64):
        self.backend, self.batch = backend, batch
        if backend == "dlib":
            import dlib
            import face_recognition_models as frm

            self.fr = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
        else:
            import tensorflow as tf
            from dlib_resnet import build_keras

            self.model = build_keras()
            self.fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        if self.backend == "dlib":
            return np.array(self.fr.compute_face_descriptor(list(chips)), np.float32).reshape(
                -1, 128
            )
        out = []
        for i in range(0, len(chips), self.batch):
            x = chips[i : i + self.batch].astype(np.float32)
            n = len(x)
            if n < self.batch:  # one traced shape
                x = np.concatenate([x, np.zeros((self.batch - n, *x.shape[1:]), np.float32)])
            out.append(np.asarray(self.fn(x))[:n])
        return np.concatenate(out).astype(np.float32)


def chip_affine(
    points: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING
) -> np.ndarray:
    """The 2 x 3 map chip pixel (x, y, 1) -> crop pixel that `dlib.get_face_chip` samples, from
    the 5 landmarks (dlib's chip_details: similarity fit to its template, rect corners rotated
    by the angle, mapped onto the chip corners). Pixel centres at integer coordinates - the
    convention of TensorFlow's ImageProjectiveTransformV3, so
    `dlib_resnet.warp_chips(crops, affines)` reproduces dlib's chips (descriptor L2 < 0.03)."""
    import dlib

    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    d = dlib.get_face_chip_details(
        dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), pts), size, padding
    )
    r = d.rect
    c = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
    ca, sa = np.cos(d.angle), np.sin(d.angle)
    rot = np.array([[ca, -sa], [sa, ca]])
    src = (
        np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]]) - c
    ) @ rot.T + c
    dst = np.array([[0, 0, 1], [d.cols - 1, 0, 1], [d.cols - 1, d.rows - 1, 1]], float)
    return np.linalg.solve(dst, src).T.astype(np.float32)


def add_affines(path: Path) -> None:
    """Add `affine` / `affine_flip` (n, 2, 3): chip -> crop (resp. mirrored crop) maps."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["affine"] = np.stack([chip_affine(p) for p in arrays["shape"]])
    arrays["affine_flip"] = np.stack([chip_affine(p) for p in arrays["shape_flip"]])
    _save_npz(path, **arrays)
    print(f"{path}: added affine, affine_flip", flush=True)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def run(
    root: Path,
    name: str,
    out_dir: Path,
    rect: str,
    margin_px: float,
    backend: str,
    chunk: int,
    batch: int,
    limit: int | None,
) -> Path:
    paths = list_crops(root)
    if limit:
        paths = paths[:limit]
    final = out_dir / f"teacher_{name}.npz"
    parts = out_dir / f"teacher_{name}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    settings = {
        "root": str(root),
        "rect": rect,
        "margin_px": margin_px,
        "chip_size": CHIP_SIZE,
        "chip_padding": CHIP_PADDING,
        "backend": backend,
        "chunk": chunk,
        "views": ["crop", "mirror"],
    }
    stamp = parts / "settings.json"
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if {k: v for k, v in old.items() if k != "backend"} != {
            k: v for k, v in settings.items() if k != "backend"
        }:
            raise SystemExit(f"{parts} was made with other settings {old}; delete it to restart")
    else:
        stamp.write_text(json.dumps(settings))
    print(f"{len(paths)} crops under {root}; {settings}", flush=True)
    maker = ChipMaker(rect, margin_px)
    desc = Descriptor(backend, batch)
    n_chunks = (len(paths) + chunk - 1) // chunk
    t_start, done_now = time.time(), 0
    t_chip = t_desc = 0.0
    for c in range(n_chunks):
        part = parts / f"{c:05d}.npz"
        sub = paths[c * chunk : (c + 1) * chunk]
        if part.exists():
            with np.load(part) as z:
                if list(z["paths"]) == sub:
                    continue
            print(f"chunk {c}: stale, recomputing", flush=True)
        t0 = time.time()
        chips, chips_f, shp, shp_f, src = [], [], [], [], []
        for rel in sub:
            a, b, p, q, s = maker(load_rgb(root / rel))
            chips.append(a), chips_f.append(b), shp.append(p), shp_f.append(q), src.append(s)
        t1 = time.time()
        both = desc(np.stack(chips + chips_f))
        t2 = time.time()
        t_chip, t_desc = t_chip + t1 - t0, t_desc + t2 - t1
        n = len(sub)
        _save_npz(
            part,
            paths=np.array(sub),
            desc=both[:n],
            desc_flip=both[n:],
            shape=np.stack(shp),
            shape_flip=np.stack(shp_f),
            rect_source=np.array(src, np.int8),
        )
        done_now += n
        el = time.time() - t_start
        left = len(paths) - min((c + 1) * chunk, len(paths))
        print(
            f"chunk {c + 1}/{n_chunks}: {min((c + 1) * chunk, len(paths))}/{len(paths)} crops; "
            f"{2 * done_now / el:.1f} chips/s overall "
            f"(landmarks+chips {2 * done_now / t_chip:.0f}/s, "
            f"descriptors {2 * done_now / t_desc:.0f}/s); ETA {left * el / done_now / 60:.1f} min",
            flush=True,
        )
    merged: dict[str, list] = {}
    for c in range(n_chunks):
        with np.load(parts / f"{c:05d}.npz") as z:
            for k in z.files:
                merged.setdefault(k, []).append(z[k])
    arrays = {k: np.concatenate(v) for k, v in merged.items()}
    assert list(arrays["paths"]) == paths
    norms = np.linalg.norm(arrays["desc"], axis=1)
    settings["n"] = len(paths)
    settings["hog_fallback"] = int(arrays["rect_source"].sum())
    arrays["affine"] = np.stack([chip_affine(p) for p in arrays["shape"]])
    arrays["affine_flip"] = np.stack([chip_affine(p) for p in arrays["shape_flip"]])
    _save_npz(final, settings=np.array(json.dumps(settings)), **arrays)
    print(
        f"wrote {final}: {len(paths)} crops, {settings['hog_fallback']} without a HOG face "
        f"(fixed-margin rectangle); |desc| min {norms.min():.3f} mean {norms.mean():.3f} "
        f"max {norms.max():.3f}",
        flush=True,
    )
    return final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path, help="aligned crops (facenet align output)")
    ap.add_argument("--name", help="output name: OUT/teacher_<name>.npz")
    ap.add_argument(
        "--add-affines",
        action="store_true",
        help="only add affine/affine_flip to an existing OUT/teacher_<name>.npz",
    )
    ap.add_argument("--out", type=Path, default=Path("/work/data-cache"))
    ap.add_argument("--rect", choices=("hog", "margin"), default="hog")
    ap.add_argument(
        "--margin-px",
        type=float,
        default=DEFAULT_MARGIN_PX,
        help="fixed rectangle: this many px per side at 182 px (fallback or --rect margin)",
    )
    ap.add_argument("--backend", choices=("keras", "dlib"), default="keras")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--limit", type=int, default=None, help="first N crops only (tests)")
    ap.add_argument("--threads", type=int, default=2, help="TensorFlow threads")
    args = ap.parse_args()
    if not args.name:
        ap.error("--name is required")
    if args.add_affines:
        add_affines(args.out / f"teacher_{args.name}.npz")
        return
    if args.backend == "keras":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    run(
        args.root.resolve(),
        args.name,
        args.out,
        args.rect,
        args.margin_px,
        args.backend,
        args.chunk,
        args.batch,
        args.limit,
    )


if __name__ == "__main__":
    main()

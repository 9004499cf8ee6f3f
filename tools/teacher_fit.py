"""How closely a distilled student follows its teacher, on training faces and on unseen ones.

For up to 1,500 faces of each set, the teacher (default: dlib's ResNet without its flip, the
teacher of the consistent-views runs) sees the face's centre view at its input size (150 px) and
the student the same view at its own (112 px), both rendered from a 128 px chip by
`facenet.data.views.render_view` with the identity row: the framing the views trainer gives an
un-augmented face. The teacher's output is mapped into the student's training space by the run's
target projection (`checkpoint.npz`), and the cosine between the student's embedding and that
target is averaged over the set, as it is ("cosine") and after removing each side's mean over the
set ("centred"), so that the large common direction of the dlib space does not hide how much of
each face's own part is matched. A small train/unseen gap with a low training figure means the
student is under-fitted (it needs more image-steps); a large gap that it over-fits.

Sets: CelebA chips (training faces of every run so far), UTKFace chips (training faces only of a
run whose data holds them: each line says how many of the faces the run trained on) and LFW
View 1 DevTest faces (never trained on), aligned once like the training chips (MTCNN, chip mode,
128 px) and cached in --lfw-cache. The teacher's outputs do not depend on the student: they are
cached in --cache, so a second model costs only its own forward passes.

Without --run (the shipped model, trained with `distill.target_projection(descriptors)`, a
fixed random rotation times one scale): the projection is fitted the same way on the teacher's
outputs for the CelebA sample. Neither cosine depends on that
scale, so for these figures it is the shipped model's own map; its teacher, though, was dlib's
ResNet on dlib's own chip of each 112 px crop (a file since replaced), not the one used here.

    python tools/teacher_fit.py MODEL.keras [--run RUN_DIR] [--save A.npz] [--compare B.npz]

--save keeps the per-face cosines; --compare adds, per set, the paired difference from another
model's saved ones (the same faces, so their own difficulty cancels: its standard error is a
third of an unpaired one's here).

Exit status: 0 done; 2 usage error (a missing file, a run without a projection) or interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = Path("/work/data-cache")
CHIP = 128  # the chips' side (`facenet align ... --size 128 --mode chip`)
SUFFIXES = (".png", ".jpg", ".jpeg")


class FitError(Exception):
    """An input the tool cannot use: reported in one line, exit status 2."""


@dataclass
class FaceSet:
    """A sample of one set: names (file paths, or LFW crop indices) and 128 px chips."""

    name: str
    names: list[str]
    crops: np.ndarray  # (n, CHIP, CHIP, 3) uint8


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def face_cosines(student: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face: the cosine between the student's embedding and the teacher's target, as they
    are and after removing each side's mean over the set (of the unit vectors), which leaves only
    the part of each face that differs from the set's average."""
    if student.shape != target.shape or student.ndim != 2:
        raise ValueError(f"paired (n, D) arrays needed; got {student.shape} and {target.shape}")
    s, t = unit(student.astype(np.float64)), unit(target.astype(np.float64))
    return np.sum(s * t, axis=1), np.sum(unit(s - s.mean(0)) * unit(t - t.mean(0)), axis=1)


def fit_cosines(student: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(cosine, centred): the set's means of `face_cosines`."""
    raw, centred = face_cosines(student, target)
    return float(raw.mean()), float(centred.mean())


def sample(count: int, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `n` of `count` items, the same for every model (seeded)."""
    return np.sort(np.random.default_rng(seed).choice(count, min(n, count), replace=False))


def folder_set(name: str, root: Path, n: int) -> FaceSet:
    """`n` chips drawn from the image files under `root` (any depth), in sorted order."""
    from facenet.images import load_image

    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise FitError(f"{root}: no images")
    picked = [files[i] for i in sample(len(files), n)]
    crops = np.stack([_chip(load_image(p), str(p)) for p in picked])
    return FaceSet(name, [str(p) for p in picked], crops)


def lfw_set(pairs: Path, cache: Path, n: int) -> FaceSet:
    """`n` of the View 1 faces in `pairs`, aligned as the training chips are (cached)."""
    from facenet.train.validation import PairValidator

    val = PairValidator.from_pairs_file(pairs, CHIP, 32, cache, alignment="chip")
    picked = sample(len(val.crops), n)
    return FaceSet("lfw", [f"{pairs}#{i}" for i in picked], val.crops[picked])


def _chip(img: np.ndarray, name: str) -> np.ndarray:
    if img.shape[:2] != (CHIP, CHIP):
        raise FitError(f"{name}: a {img.shape[1]}x{img.shape[0]} image, not a {CHIP} px chip")
    return img


def centre_views(crops: np.ndarray, size: int) -> np.ndarray:
    """The identity view of each crop at `size` px (float32 0..255), as the views trainer
    renders an un-augmented face for the student and the teacher."""
    from facenet.data.views import ViewSpec, draw_views, render_view

    row = draw_views(0, 1, ViewSpec.identity())[0]
    with ThreadPoolExecutor(2) as pool:
        return np.stack(list(pool.map(lambda c: render_view(c, row, size), crops)))


def embed(model, crops: np.ndarray, batch: int = 64) -> np.ndarray:
    """The model's embedding of each crop's centre view at the model's input size."""
    size = int(model.input_shape[1])
    parts = [
        np.asarray(model.predict_on_batch(centre_views(crops[i : i + batch], size)), np.float64)
        for i in range(0, len(crops), batch)
    ]
    return np.concatenate(parts)


def teacher_outputs(teacher_path: Path, sets: list[FaceSet], cache: Path) -> dict[str, np.ndarray]:
    """The teacher's output on every face of `sets`, by set name, from `cache` when it holds
    exactly these faces for this teacher, else computed and cached (written atomically)."""
    key = json.dumps([str(teacher_path.resolve()), teacher_path.stat().st_mtime_ns,
                      [(s.name, s.names) for s in sets]])  # fmt: skip
    if cache.is_file():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                return {s.name: z[s.name] for s in sets}
    teacher = load_embedding_model(teacher_path)
    out = {}
    for s in sets:
        print(f"teacher on {len(s.names)} {s.name} faces ...", file=sys.stderr, flush=True)
        out[s.name] = embed(teacher, s.crops)
    write_npz(cache, {"key": np.array(key), **out})
    return out


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """`arrays` as one .npz, written atomically (an interrupted run leaves no half file)."""
    import io

    from facenet.train.runfiles import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def load_embedding_model(path: Path):
    from facenet.models import load_keras_model
    from facenet.models.facenet import embedding_model

    return embedding_model(load_keras_model(path)[0])


def run_projection(run: Path | None, celeba: np.ndarray) -> np.ndarray:
    """The run's target projection, or (no run) the shipped recipe's, fitted on `celeba`."""
    if run is None:
        from facenet.train.distill import target_projection

        return target_projection(celeba)
    ckpt = run / "checkpoint.npz"
    if not ckpt.is_file():
        raise FitError(f"{run}: no checkpoint.npz")
    z = load_npz(ckpt)
    if "projection" not in z:
        raise FitError(f"{ckpt}: no target projection (a run without --teacher)")
    return z["projection"].astype(np.float64)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file, or a FitError naming the file."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise FitError(f"{path}: not a readable .npz ({exc})") from None


def trained_on(run: Path | None) -> set[str] | None:
    """The resolved paths of the run's training faces (None without a run)."""
    if run is None:
        return None
    from facenet.data.dataset import scan_folder

    try:
        data = json.loads((run / "config.json").read_text())["data"]
        return {str(Path(p).resolve()) for p in scan_folder(data).paths}
    except (OSError, ValueError, KeyError) as exc:  # JSON errors are ValueErrors
        raise FitError(f"{run}/config.json: its training data cannot be listed ({exc})") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the student, a .keras file")
    parser.add_argument("--run", type=Path, help="its run folder (checkpoint.npz, config.json)")
    parser.add_argument("--teacher", type=Path, default=CACHE / "dlib-resnet-noflip.keras")
    parser.add_argument("--celeba", type=Path, default=CACHE / "celeba-chip-128")
    parser.add_argument("--utkface", type=Path, default=CACHE / "utkface-chip-128")
    parser.add_argument("--pairs", type=Path,
                        default=ROOT.parent / "shared/data/lfw/pairsDevTest.txt")  # fmt: skip
    parser.add_argument("--lfw-cache", type=Path, default=Path("view1-crops-128.npz"))
    parser.add_argument("--cache", type=Path, default=Path("teacher-fit-cache.npz"),
                        help="the teacher's outputs on the sampled faces")  # fmt: skip
    parser.add_argument("--n", type=int, default=1500, help="faces per set")
    parser.add_argument("--save", type=Path, help="write the per-face cosines here (.npz)")
    parser.add_argument("--compare", type=Path,
                        help="another model's --save file: paired differences")  # fmt: skip
    args = parser.parse_args()
    for path, what in ((args.model, "file"), (args.teacher, "file"), (args.celeba, "dir"),
                       (args.utkface, "dir"), (args.pairs, "file")):  # fmt: skip
        if not (path.is_file() if what == "file" else path.is_dir()):
            parser.error(f"{path}: no such {'file' if what == 'file' else 'folder'}")
    if args.run is not None and not (args.run / "config.json").is_file():
        parser.error(f"{args.run}: not a run folder (no config.json)")
    if args.n < 2:
        parser.error("--n must be at least 2")
    if args.compare is not None and not args.compare.is_file():
        parser.error(f"{args.compare}: no such file")
    from facenet.errors import FaceNetError

    try:
        report(args)
    except (FitError, FaceNetError) as exc:  # e.g. a file that is not a model
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 2
    return 0


def report(args: argparse.Namespace) -> None:
    """Print one line per set: faces, of them trained on, cosine, centred cosine ± its
    standard error over the faces (and, with --compare, the paired difference)."""
    other = load_npz(args.compare) if args.compare else {}
    sets = [folder_set("celeba", args.celeba, args.n), folder_set("utkface", args.utkface, args.n),
            lfw_set(args.pairs, args.lfw_cache, args.n)]  # fmt: skip
    teacher = teacher_outputs(args.teacher, sets, args.cache)
    projection = run_projection(args.run, teacher["celeba"])
    trained = trained_on(args.run)
    student = load_embedding_model(args.model)
    if projection.shape != (student.output_shape[-1],) * 2:
        raise FitError(f"a {projection.shape} projection for a "
                         f"{student.output_shape[-1]}-d student")  # fmt: skip
    print(f"{args.model} (projection: {args.run / 'checkpoint.npz' if args.run else 'fitted'}; "
          f"teacher {args.teacher.name})")  # fmt: skip
    per_face = {}
    for s in sets:
        raw, centred = face_cosines(embed(student, s.crops), teacher[s.name] @ projection)
        per_face.update({f"{s.name}_names": np.array(s.names), f"{s.name}_raw": raw,
                         f"{s.name}_centred": centred})  # fmt: skip
        seen = "n/a" if trained is None else sum(str(Path(p).resolve()) in trained for p in s.names)
        line = (f"{s.name}\t{len(s.names)} faces\ttrained on {seen}\tcosine {raw.mean():.4f}\t"
                f"centred {centred.mean():.4f} ± {mean_se(centred)[1]:.4f}")  # fmt: skip
        if other:
            line += "\t" + compare_line(s, centred, other, args.compare.name)
        print(line, flush=True)
    if args.save:
        write_npz(args.save, per_face)


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """The mean and its standard error over the faces."""
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x)))


def compare_line(s: FaceSet, centred: np.ndarray, other: dict, label: str) -> str:
    """The paired difference of the centred cosine against another model's saved per-face
    values for the same faces (paired: the faces' own difficulty cancels)."""
    names = other.get(f"{s.name}_names")
    if names is None or [str(n) for n in names] != s.names:
        return f"vs {label}: other faces, not compared"
    diff, se = mean_se(centred - other[f"{s.name}_centred"])
    return f"vs {label}: {diff:+.4f} ± {se:.4f} (paired)"


if __name__ == "__main__":
    sys.exit(main())

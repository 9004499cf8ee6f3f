"""Precompute a teacher's outputs on K consistent views of every training face.

Why: on a CPU the teacher is too slow to run inside each training step, yet distillation wants
the student and the teacher to see the *same* augmented face (Beyer et al., CVPR 2022). This
draws K view rows per face (`facenet.data.views`: scale / shift / rotation, flip, colour,
greyscale, low resolution, mixup partner and weight), renders each at the teacher's input size,
runs the teacher, and stores the rows beside the outputs, so a trainer regenerates exactly the
same view for the student (`render_view(crop, rows[i, k], student_size, partner)`).

Output .npz: `paths` (n,) relative to DATA; `rows` (n, K, len(PARAMS)) float64 view rows (a
row's `partner` is an index into `paths`); `desc` (n, K, D) float32 teacher outputs;
`params` (the column names), `settings` (JSON: teacher, its input size, seed, the ViewSpec).
Written atomically at the end.

    python tools/teacher_views.py ALIGNED_DIR --teacher T.keras --views 8 --out views.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facenet.data.dataset import scan_folder  # noqa: E402
from facenet.data.loader import ViewLoader  # noqa: E402
from facenet.data.views import PARAMS, ViewSpec, draw_views  # noqa: E402
from facenet.train.runfiles import write_atomic  # noqa: E402


def teacher_views(
    data: Path, teacher_path: Path, views: int, *, seed: int = 0, spec: ViewSpec | None = None,
    batch: int = 64, workers: int = 2, limit: int | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The arrays of the output file (see the module docstring)."""
    from tqdm.auto import tqdm

    from facenet.models import load_keras_model

    spec = spec or ViewSpec()
    dataset = scan_folder(data)
    paths = dataset.paths[:limit] if limit else dataset.paths
    n = len(paths)
    teacher, _ = load_keras_model(teacher_path)
    size = int(teacher.input_shape[1])
    rows = draw_views(seed, n * views, spec, n).reshape(n, views, len(PARAMS))
    loader = ViewLoader(paths, dataset.labels[:n], [size], spec=spec, workers=workers)
    flat_index = np.repeat(np.arange(n), views)
    flat_rows = rows.reshape(n * views, len(PARAMS))
    parts = []
    try:
        for start in tqdm(range(0, n * views, batch), unit="batch", desc="teacher views"):
            chunk = slice(start, start + batch)
            images = loader.batch(flat_index[chunk], rows=flat_rows[chunk])["views"][0]
            parts.append(np.asarray(teacher.predict_on_batch(images), np.float32))
    finally:
        loader.close()
    desc = np.concatenate(parts).reshape(n, views, -1)
    settings = {"teacher": str(teacher_path), "teacher_size": size, "seed": seed,
                "views": views, "spec": dataclasses.asdict(spec)}  # fmt: skip
    relative = [str(Path(p).relative_to(data)) for p in paths]
    return {"paths": np.array(relative), "rows": rows, "desc": desc,
            "params": np.array(PARAMS), "settings": np.array(json.dumps(settings))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="aligned faces, <identity>/<image>")
    parser.add_argument("--teacher", type=Path, required=True, help="a FaceNet-style .keras")
    parser.add_argument("--views", type=int, default=8, help="K views per face")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixup", type=float, default=0.2, help="probability of a mixed view")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N faces")
    args = parser.parse_args()
    for path, kind in ((args.data, "folder"), (args.teacher, "file")):
        if not (path.is_dir() if kind == "folder" else path.is_file()):
            sys.exit(f"error: {path}: no such {kind}")
    if args.views < 1:
        sys.exit("error: --views must be at least 1")
    started = time.perf_counter()
    arrays = teacher_views(args.data, args.teacher, args.views, seed=args.seed,
                           spec=ViewSpec(mixup=args.mixup), batch=args.batch,
                           workers=args.workers, limit=args.limit)  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, buffer.getvalue())
    n, k, d = arrays["desc"].shape
    print(f"{n} faces x {k} views -> {args.out} ({d}-d; {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

"""The people library at 10,000 faces: `add` of 100 photos and `recluster` (issue 19).

The library holds `--background` synthetic faces (identities of 5 faces each: a random unit
centre plus noise, giving same-identity squared distances near real ones, ~0.09) stored
straight into the database as `add` would leave them, then 100 real LFW photos go through
`Library.add`. Timed, side by side with a baseline:
- add of the 100 photos to an empty library vs to the 10k one (detection and embedding from the
  face cache, so the figures are the library's own work; `--real` runs the model too);
- recluster of the 10k library vs `facenet.clustering.cluster` (plain batch average linkage,
  no constraints) on the same embeddings;
- with `--lfw-library`, real faces too: the 6,733 LFW photos of people with >= 4 photos (7,872
  faces) but 100 added in one call, then those 100 (an add among real neighbours, whose
  machine-made clusters it regroups), then a recluster from scratch (real faces form far larger
  connected components under the threshold than the synthetic identities).

    nice -n 10 python benchmarks/people_scale.py
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_cache import build  # noqa: E402
from lfw_common import DEFAULT_LFW, people  # noqa: E402


def synthetic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n unit vectors in identities of 5 (same-identity squared L2 around 0.09)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 5 + 1, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.repeat(centres, 5, axis=0)[:n] + rng.normal(scale=0.019, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def fill(path: Path, vectors: np.ndarray, model_id: str) -> None:
    """Store synthetic faces (one photo each, unassigned, placed) as `add` leaves them."""
    db = sqlite3.connect(path)
    quality = json.dumps({"eye_px": 40.0, "score": 0.99, "blur": 300.0, "yaw": 0.0, "roll": 0.0})
    with db:
        db.executemany(
            "INSERT INTO photos VALUES (?, ?, 1, 'now')",
            [(f"synthetic-{i}", f"synthetic-{i}") for i in range(len(vectors))],
        )
        db.executemany(
            "INSERT INTO faces (source, content_hash, box, score, embedding, model_id, created, "
            "quality, low_quality, pending) VALUES (?, ?, '[0, 0, 100, 100]', 0.99, ?, ?, 'now', "
            "?, 0, 0)",
            [(f"s{i}", f"synthetic-{i}", v.tobytes(), model_id, quality)
             for i, v in enumerate(vectors)],
        )  # fmt: skip
    db.close()


def timed(what: str, function):
    start = time.perf_counter()
    out = function()
    seconds = time.perf_counter() - start
    print(f"{what:58} {seconds:8.2f} s")
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/people_lfw_faces.pkl"))
    parser.add_argument("--background", type=int, default=9_900)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--real", action="store_true", help="Detect and embed for real.")
    parser.add_argument("--lfw-library", action="store_true", help="Also time real LFW faces.")
    args = parser.parse_args()

    from facenet import FaceNet
    from facenet.clustering import cluster
    from facenet.people import Library

    model = FaceNet.load()
    photos = [p for files in people(args.lfw, 4).values() for p in files]
    rng = np.random.default_rng(1)
    chosen = [photos[i] for i in sorted(rng.choice(len(photos), args.photos, replace=False))]
    source = model if args.real else build(model, chosen, args.cache)
    tmp = Path(tempfile.mkdtemp(prefix="people_scale_"))
    x = synthetic(args.background, model.info.embedding_size)

    with Library.open(tmp / "empty.db", source) as lib:
        _, base_add = timed(
            f"add {len(chosen)} photos to an empty library", lambda: lib.add(chosen)
        )
    with Library.open(tmp / "big.db", source):
        pass
    fill(tmp / "big.db", x, model.model_id)
    with Library.open(tmp / "big.db", source) as lib:
        report, _ = timed(f"recluster {len(x)} faces (first time)", lib.recluster)
        print(f"{'':58} {report.summary()}")
        report, add_s = timed(f"add {len(chosen)} photos to the {len(x):,}-face library",
                              lambda: lib.add(chosen))  # fmt: skip
        print(f"{'':58} {report.summary()}")
        report, again = timed(f"recluster {len(x) + report.faces:,} faces", lib.recluster)
        print(f"{'':58} {report.summary()}")
        assert not lib.violations()
    _, base_cluster = timed(f"baseline: facenet.clustering.cluster on {len(x):,}",
                            lambda: cluster(x, model.info.verification_threshold))  # fmt: skip
    print(f"ratio add (10k / empty): {add_s / base_add:.2f}; "
          f"ratio recluster / plain clustering: {again / base_cluster:.2f}")  # fmt: skip
    if args.lfw_library:
        real_library(build(model, photos, args.cache), photos, tmp / "lfw.db")


def real_library(model, photos: list[Path], path: Path, last: int = 100) -> None:
    """Add every photo but `last` (a fixed random choice) in one call, then the `last` ones
    (real neighbours: the machine-made clusters near them are regrouped), then recluster
    everything from scratch."""
    from facenet.people import Library

    order = [photos[i] for i in np.random.default_rng(0).permutation(len(photos))]
    first, rest = order[:-last], order[-last:]
    with Library.open(path, model) as lib:
        report, _ = timed(f"add {len(first):,} LFW photos in one call", lambda: lib.add(first))
        print(f"{'':58} {report.summary()}")
        report, _ = timed(f"add {len(rest)} more to those {report.faces:,} faces",
                          lambda: lib.add(rest))  # fmt: skip
        print(f"{'':58} {report.summary()}")
        report.faces = lib._store.db.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        db = lib._store.db
        with lib._store.transaction():
            db.execute("UPDATE faces SET person_id = NULL")
            db.execute("DELETE FROM people")
        report, _ = timed(f"recluster {report.faces:,} real faces from scratch", lib.recluster)
        print(f"{'':58} {report.summary()}")


if __name__ == "__main__":
    main()

"""The people library on a simulated photo collection (issue 19's acceptance).

LFW people with at least 4 photos; their photos are added in 5 batches in a fixed random order,
through `Library.add` (detection and embedding come from a cache, see face_cache.py; quality,
crops, storage, index and assignment run for real). Every face of every photo is stored; the
photo's subject (its most prominent face) carries the identity, background faces are scored
with nobody (they are in the library, not in the metrics).

After each batch, pairwise precision/recall/F1 and BCubed F1 against the identities for
- incremental: `add` only;
- batch: a full re-clustering of the same faces (the library's `recluster` on a copy with every
  assignment cleared);
- add+recluster: a library that re-clusters after each add (no corrections);
- corrected: another library that re-clusters after each add, where an oracle user fixes the
  largest remaining error (a merge or a split) `--corrections` times between batches; F1 after
  each correction, and F1 of the faces already there before vs after the next add/recluster.

    nice -n 10 python benchmarks/people_library.py --tsv /tmp/people_library.tsv
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_cache import build  # noqa: E402
from lfw_common import DEFAULT_LFW, people  # noqa: E402

from facenet.clustering import pairwise_scores  # noqa: E402


def bcubed(true: list, pred: list) -> tuple[float, float, float]:
    """BCubed precision, recall, F1 (Amigo et al. 2009): per face, the share of its cluster
    that is its person, and of its person that is in its cluster; averaged over faces."""
    pairs = Counter(zip(true, pred, strict=True))
    by_true, by_pred = Counter(true), Counter(pred)
    p = np.mean([pairs[(t, c)] / by_pred[c] for t, c in zip(true, pred, strict=True)])
    r = np.mean([pairs[(t, c)] / by_true[t] for t, c in zip(true, pred, strict=True)])
    return float(p), float(r), float(2 * p * r / (p + r))


def labelled(db_path: Path, identity: dict[str, str]) -> tuple[list[int], list[str]]:
    """(face ids, identities) of the faces that are their photo's subject (largest box)."""
    db = sqlite3.connect(db_path)
    best: dict[str, tuple[float, int]] = {}
    for fid, photo, box in db.execute("SELECT id, photo, box FROM faces"):
        x1, y1, x2, y2 = (float(v) for v in box.strip("[]").split(","))
        area = (x2 - x1) * (y2 - y1)
        if photo not in best or area > best[photo][0]:
            best[photo] = (area, fid)
    db.close()
    ids = sorted(fid for _, fid in best.values())
    owner = {fid: identity[photo] for photo, (_, fid) in best.items()}
    return ids, [owner[i] for i in ids]


def scores(lib, ids: list[int], true: list[str]) -> dict:
    """Pairwise and BCubed scores of the library's assignment of `ids`."""
    person = dict(lib._store.db.execute("SELECT id, person_id FROM faces").fetchall())
    pred = [person[i] if person[i] is not None else -1 for i in ids]
    pw = pairwise_scores(true, pred)
    singles = [p if p != -1 else -(k + 2) for k, p in enumerate(pred)]
    bp, br, bf = bcubed(true, singles)
    return {"P": pw.precision, "R": pw.recall, "F1": pw.f1, "BP": bp, "BR": br, "BF1": bf,
            "clusters": pw.clusters, "unassigned": pw.noise}  # fmt: skip


def batch_scores(lib, ids, true, tmp: Path) -> dict:
    """Scores of a full re-clustering of the library's faces (a copy, assignments cleared)."""
    from facenet.people import Library

    copy = tmp / "batch.db"
    for leftover in tmp.glob("batch.db*"):
        leftover.unlink()
    with sqlite3.connect(copy) as target:
        lib._store.db.backup(target)
    db = sqlite3.connect(copy)
    db.execute("UPDATE faces SET person_id = NULL")
    db.execute("DELETE FROM people")
    db.commit()
    db.close()
    with Library.open(copy, create=False) as other:
        start = time.monotonic()
        other.recluster()
        seconds = time.monotonic() - start
        out = scores(other, ids, true)
    out["seconds"] = seconds
    return out


def largest_error(lib, ids, true) -> tuple[str, object] | None:
    """The oracle's next fix: ("split", (person, faces)) for the most faces of one identity
    inside another identity's cluster, or ("merge", (main, other)) for the largest fragment
    of an identity outside its main cluster; whichever moves more faces."""
    person = dict(lib._store.db.execute("SELECT id, person_id FROM faces").fetchall())
    members: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for fid, t in zip(ids, true, strict=True):
        if person[fid] is not None:
            members[person[fid]].append((fid, t))
    majority = {p: Counter(t for _, t in m).most_common(1)[0][0] for p, m in members.items()}
    best = None
    for p, m in members.items():
        count = Counter(t for _, t in m)
        for t, n in count.items():
            if t != majority[p] and (best is None or n > best[0]):
                best = (n, "split", (p, [f for f, tt in m if tt == t]))
    clusters_of: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for p, t in majority.items():
        clusters_of[t].append((sum(1 for _, tt in members[p] if tt == t), p))
    for found in clusters_of.values():
        if len(found) > 1:
            found.sort(reverse=True)
            n, p = found[1]
            if best is None or n > best[0]:
                best = (n, "merge", (found[0][1], p))
    return None if best is None else best[1:]


def correct(lib, ids, true, times: int, log) -> None:
    """The oracle: `times` fixes of the largest error, F1 after each."""
    for k in range(times):
        error = largest_error(lib, ids, true)
        if error is None:
            return
        kind, what = error
        if kind == "split":
            lib.split(*what)
        else:
            lib.merge(list(what))
        assert not lib.violations()
        log(f"correction {k + 1}", kind, scores(lib, ids, true))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/people_lfw_faces.pkl"))
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--corrections", type=int, default=20)
    parser.add_argument("--limit", type=int, default=0, help="Only this many photos (a quick run).")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--tsv", type=Path, default=None)
    args = parser.parse_args()

    from facenet import FaceNet
    from facenet.people import Library

    photos = [p for files in people(args.lfw, 4).values() for p in files]
    identity = {str(p.resolve()): p.parent.name for p in photos}
    rng = np.random.default_rng(0)
    order = [photos[i] for i in rng.permutation(len(photos))]
    if args.limit:
        order = order[: args.limit]
    model = build(FaceNet.load(), order, args.cache)
    batches = np.array_split(np.arange(len(order)), args.batches)
    rows = []
    max_id = 0

    def log(step, what, s):
        rows.append((step, what, s))
        cells = " ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items()
        )
        print(f"{step:>14} {what:>12} {cells}", flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="people_bench_"))
    plain = Library.open(tmp / "plain.db", model, threshold=args.threshold)
    fixed = Library.open(tmp / "fixed.db", model, threshold=args.threshold)
    flow = Library.open(tmp / "flow.db", model, threshold=args.threshold)
    print(f"{len(order)} photos, {len(set(identity[str(p.resolve())] for p in order))} people, "
          f"threshold {plain.threshold}")  # fmt: skip
    for b, chunk in enumerate(batches, 1):
        files = [order[i] for i in chunk]
        start = time.monotonic()
        report = plain.add(files)
        seconds = time.monotonic() - start
        ids, true = labelled(plain.path, identity)
        log(f"batch {b}", "incremental", {**scores(plain, ids, true), "seconds": seconds})
        print(f"{'':>14} {'':>12} {report.summary()}")
        log(f"batch {b}", "batch", batch_scores(plain, ids, true, tmp))
        flow.add(files)
        flow.recluster()
        log(f"batch {b}", "add+recluster", scores(flow, ids, true))
        before = b > 1
        fixed.add(files)
        ids, true = labelled(fixed.path, identity)
        if before:
            old = [i for i in ids if i <= max_id]
            old_true = [t for i, t in zip(ids, true, strict=True) if i <= max_id]
            log(f"batch {b}", "old+add", scores(fixed, old, old_true))
        fixed.recluster()
        if before:
            log(f"batch {b}", "old+reclust", scores(fixed, old, old_true))
        log(f"batch {b}", "reclustered", scores(fixed, ids, true))
        assert not fixed.violations()
        if b < args.batches:
            correct(fixed, ids, true, args.corrections, lambda s, k, v: log(s, k, v))
            max_id = max(ids)
            log(f"batch {b}", "corrected", scores(fixed, ids, true))
    plain.close()
    flow.close()
    fixed.close()
    if args.tsv:
        keys = sorted({k for _, _, s in rows for k in s})
        lines = ["step\twhat\t" + "\t".join(keys)]
        lines += [f"{a}\t{b}\t" + "\t".join(f"{s.get(k, '')}" for k in keys) for a, b, s in rows]
        args.tsv.write_text("\n".join(lines) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

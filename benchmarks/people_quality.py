"""The people library's quality gate on LFW and UTKFace: what share of faces each gate drops, and
what the kept faces gain in verification and clustering (issue 19).

Faces: every face the default model's detector finds (LFW: the photos of people with at least 4,
from the face cache of people_library.py; UTKFace: a fixed sample of `--utk` chips, detected
here and cached too). The measures are `facenet.people.quality.measure`, the gates
`facenet.people.quality.GATE`.

Accuracy (LFW only, its subjects: the most prominent face of each photo, labelled by folder):
- verification at the model's threshold: false-reject rate of all same-person pairs and
  false-accept rate of 200,000 random different-person pairs, for pairs where both faces pass
  against pairs where at least one fails;
- clustering: average linkage at the threshold, pairwise F1 and BCubed F1, on every subject
  face vs on the subjects that pass.

    nice -n 10 python benchmarks/people_quality.py --tsv /tmp/people_quality.tsv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from face_cache import build, pixel_key  # noqa: E402
from lfw_common import DEFAULT_LFW, people  # noqa: E402
from people_library import bcubed  # noqa: E402

from facenet.clustering import cluster, pairwise_scores  # noqa: E402
from facenet.images import load_image  # noqa: E402
from facenet.people.quality import GATE, measure  # noqa: E402

GATES = ("size", "score", "blur", "yaw", "roll")


def faces_with_quality(model, paths: list[Path]) -> list[tuple[Path, object, object]]:
    """(photo, Face, Quality) of every detected face."""
    out = []
    for path in paths:
        rgb = load_image(path)
        for face in model.faces[pixel_key(rgb)]:
            out.append((path, face, measure(rgb, face.box, face.landmarks, face.score)))
    return out


def drop_table(name: str, found) -> list[tuple]:
    """Per gate: the share of faces it drops (alone), and the share the whole gate drops."""
    rows = []
    fails = [set(q.failures()) for _, _, q in found]
    for gate in GATES:
        share = np.mean([gate in f for f in fails])
        rows.append((name, gate, len(found), share))
    rows.append((name, "any", len(found), np.mean([bool(f) for f in fails])))
    for key in ("eye_px", "score", "blur", "yaw", "roll"):
        values = np.array([abs(getattr(q, key)) for _, _, q in found])
        pct = np.percentile(values, [1, 5, 50, 95, 99])
        print(f"{name:8} {key:7} p1 {pct[0]:8.2f} p5 {pct[1]:8.2f} p50 {pct[2]:8.2f} "
              f"p95 {pct[3]:8.2f} p99 {pct[4]:8.2f}")  # fmt: skip
    return rows


def subjects(found) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(embeddings, identity labels, passes gate, gate -> fails it) of each photo's most
    prominent face."""
    best: dict[Path, tuple] = {}
    for path, face, quality in found:
        if path not in best or face.area > best[path][0].area:
            best[path] = (face, quality)
    paths = sorted(best)
    x = np.stack([best[p][0].embedding for p in paths]).astype(np.float32)
    labels = np.array([p.parent.name for p in paths])
    ok = np.array([not best[p][1].failures() for p in paths])
    fails = {g: np.array([g in best[p][1].failures() for p in paths]) for g in GATES}
    return x, labels, ok, fails


def verification(x, labels, ok, fails, threshold: float, rng) -> list[tuple]:
    """FRR / FAR at the threshold for pairs where both pass vs at least one fails (any gate,
    then each gate alone)."""
    n = len(labels)
    same_i, same_j = np.nonzero(np.triu(labels[:, None] == labels[None, :], 1))
    diff_i = rng.integers(0, n, 400_000)
    diff_j = rng.integers(0, n, 400_000)
    keep = labels[diff_i] != labels[diff_j]
    diff_i, diff_j = diff_i[keep][:200_000], diff_j[keep][:200_000]
    rows = []
    for kind, (i, j) in (("same", (same_i, same_j)), ("different", (diff_i, diff_j))):
        d = np.sum((x[i] - x[j]) ** 2, axis=1)
        both = ok[i] & ok[j]
        groups = [("both pass", both), ("one fails", ~both), ("all", both | ~both)]
        groups += [(f"one fails {g}", fails[g][i] | fails[g][j]) for g in GATES]
        for group, mask in groups:
            wrong = d[mask] > threshold if kind == "same" else d[mask] <= threshold
            rate = "FRR" if kind == "same" else "FAR"
            value = float(np.mean(wrong)) if mask.any() else float("nan")
            rows.append(("LFW", f"{rate} {group}", int(mask.sum()), value))
    return rows


def clustering(x, labels, ok, threshold: float) -> list[tuple]:
    """Average-linkage pairwise and BCubed F1, all subjects vs those that pass."""
    rows = []
    for group, mask in (("all subjects", np.ones(len(labels), bool)), ("passing", ok)):
        pred = cluster(x[mask], threshold, "agglomerative")
        pw = pairwise_scores(labels[mask], pred)
        bf = bcubed(labels[mask].tolist(), pred.tolist())[2]
        rows.append(("LFW", f"cluster F1 {group}", int(mask.sum()), pw.f1))
        rows.append(("LFW", f"cluster BCubed F1 {group}", int(mask.sum()), bf))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--utkface", type=Path, default=DEFAULT_LFW.parents[1] / "utkface")
    parser.add_argument("--utk", type=int, default=3000, help="UTKFace chips sampled.")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/people_lfw_faces.pkl"))
    parser.add_argument("--utk-cache", type=Path, default=Path("/tmp/people_utk_faces.pkl"))
    parser.add_argument("--tsv", type=Path, default=None)
    args = parser.parse_args()
    from facenet import FaceNet

    print(f"gate: {GATE}")
    model = FaceNet.load()
    lfw = [p for files in people(args.lfw, 4).values() for p in files]
    lfw_found = faces_with_quality(build(model, lfw, args.cache), lfw)
    rng = np.random.default_rng(0)
    chips = sorted(args.utkface.glob("*.jpg"))
    chips = [chips[i] for i in sorted(rng.choice(len(chips), min(args.utk, len(chips)), False))]
    utk_found = faces_with_quality(build(model, chips, args.utk_cache), chips)
    rows = drop_table("LFW", lfw_found) + drop_table("UTKFace", utk_found)
    print(f"UTKFace: {len(chips)} chips, {len(utk_found)} faces found")
    x, labels, ok, fails = subjects(lfw_found)
    threshold = model.info.verification_threshold
    rows += verification(x, labels, ok, fails, threshold, rng)
    rows += clustering(x, labels, ok, threshold)
    for row in rows:
        print(f"{row[0]:8} {row[1]:32} n {row[2]:8d} {row[3]:.4f}")
    if args.tsv:
        text = "data\tmeasure\tn\tvalue\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)
        args.tsv.write_text(text)


if __name__ == "__main__":
    main()

"""Open-set identification on LFW with the gallery: rank-1/rank-5 and DIR at FAR 1% / 0.1%.

Protocol: every LFW person with at least `--min-photos` photos (3) is enrolled with their first
photo (`Gallery.add_embeddings`, one face per photo); their second photo (`--probes second`) or
all their other photos (`--probes rest`) are genuine probes. Every person with a single photo is
never enrolled: their photos are impostor (stranger) probes. For genuine
probes, rank-k is the share whose own person is among the k nearest people. For the open set,
the threshold is set on impostors so that FAR (impostor probes whose best match is within the
threshold) is 1% or 0.1%, and DIR (detection and identification rate) is the share of genuine
probes whose best match is their own person and within that threshold. At the gallery's own
threshold (the model's stored identification threshold) it reports the share of strangers
answered "unknown" and of genuine probes still identified. Probes without a detected face
count as misses (and impostors without a face as rejected).

    python benchmarks/identification_lfw.py --model NAME|PATH [--max-people 300] [--cache e.npz]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lfw_common import DEFAULT_LFW, embed, people  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model name or file (default: the default).")
    parser.add_argument("--min-photos", type=int, default=3, help="Photos to be enrolled.")
    parser.add_argument("--probes", choices=["second", "rest"], default="second")
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--max-people", type=int, default=None, help="Enrolled people (sampled).")
    parser.add_argument(
        "--max-impostors", type=int, default=None, help="Impostor people (sampled)."
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache", type=Path, default=None, help="npz embedding cache.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON too.")
    args = parser.parse_args()

    from facenet import FaceNet
    from facenet.gallery import Gallery

    rng = np.random.default_rng(args.seed)
    everyone = people(args.lfw)
    enrolled = sorted(n for n, files in everyone.items() if len(files) >= args.min_photos)
    impostors = sorted(n for n, files in everyone.items() if len(files) == 1)
    if args.max_people and len(enrolled) > args.max_people:
        enrolled = sorted(rng.choice(enrolled, args.max_people, replace=False).tolist())
    if args.max_impostors and len(impostors) > args.max_impostors:
        impostors = sorted(rng.choice(impostors, args.max_impostors, replace=False).tolist())

    model = FaceNet.load(args.model)
    paths, owner, role = [], [], []
    for name in enrolled:
        photos = everyone[name][:2] if args.probes == "second" else everyone[name]
        for i, file in enumerate(photos):
            paths.append(file)
            owner.append(name)
            role.append("enrol" if i == 0 else "genuine")
    for name in impostors:
        paths.append(everyone[name][0])
        owner.append(name)
        role.append("impostor")
    owner, role = np.array(owner), np.array(role)
    started = time.perf_counter()
    x = embed(model, paths, args.cache, args.batch_size)
    embed_s = time.perf_counter() - started
    found = ~np.isnan(x[:, 0])

    with tempfile.TemporaryDirectory() as tmp:
        gallery = Gallery.create(Path(tmp) / "lfw.db", model)
        for name in enrolled:
            rows = np.flatnonzero((owner == name) & (role == "enrol") & found)
            if len(rows):
                gallery.add_embeddings(name, x[rows], [str(paths[i]) for i in rows])
        probes = np.flatnonzero((role != "enrol") & found)
        gallery_threshold = gallery.threshold
        started = time.perf_counter()
        matches = gallery.search(x[probes], k=5)
        search_ms = (time.perf_counter() - started) * 1000 / max(len(probes), 1)
        gallery.close()

    best = np.full(len(paths), np.inf)
    rank = np.full(len(paths), 99)
    top1 = np.array([""] * len(paths), dtype=object)
    for i, found_matches in zip(probes, matches, strict=True):
        if found_matches:
            best[i] = found_matches[0].distance
            top1[i] = found_matches[0].name
        names = [m.name for m in found_matches]
        if owner[i] in names:
            rank[i] = names.index(owner[i]) + 1
    genuine = role == "genuine"
    impostor = role == "impostor"
    n_genuine, n_impostor = int(genuine.sum()), int(impostor.sum())
    results = {
        "model": model.info.name,
        "model_id": model.model_id,
        "enrolled_people": len(enrolled),
        "genuine_probes": n_genuine,
        "impostor_probes": n_impostor,
        "no_face": int((~found).sum()),
        "rank1": float((rank[genuine] <= 1).sum() / n_genuine),
        "rank5": float((rank[genuine] <= 5).sum() / n_genuine),
        "embed_seconds": round(embed_s, 1),
        "search_ms_per_probe": round(search_ms, 3),
    }
    impostor_best = np.sort(best[impostor])
    correct = genuine & (top1 == owner)
    for far in (0.01, 0.001):
        allowed = int(np.floor(far * n_impostor))  # impostors that may be accepted
        if allowed >= len(impostor_best) or not np.isfinite(impostor_best[allowed]):
            threshold = np.inf
        else:  # accept distances strictly below the (allowed+1)-th nearest impostor
            threshold = float(impostor_best[allowed])
        dir_ = float((correct & (best < threshold)).sum() / n_genuine)
        results[f"dir_at_far_{far:g}"] = dir_
        results[f"threshold_at_far_{far:g}"] = threshold
    t = model.info.verification_threshold
    results["model_threshold"] = t
    results["dir_at_model_threshold"] = float((correct & (best <= t)).sum() / n_genuine)
    results["far_at_model_threshold"] = float((best[impostor] <= t).sum() / n_impostor)
    g = gallery_threshold
    results["identification_threshold"] = g
    results["strangers_unknown"] = float((best[impostor] > g).sum() / n_impostor)
    results["genuine_identified"] = float((correct & (best <= g)).sum() / n_genuine)

    print(
        f"model {results['model']} ({model.model_id}); {len(enrolled)} people enrolled, "
        f"{n_genuine} genuine and {n_impostor} impostor probes, {results['no_face']} without a face"
    )
    print(f"rank-1 {results['rank1']:.4f}   rank-5 {results['rank5']:.4f}")
    for far in (0.01, 0.001):
        print(
            f"DIR at FAR {far:.1%}: {results[f'dir_at_far_{far:g}']:.4f} "
            f"(threshold {results[f'threshold_at_far_{far:g}']:.3f})"
        )
    print(
        f"at the model's threshold {t:.3f}: DIR {results['dir_at_model_threshold']:.4f}, "
        f"FAR {results['far_at_model_threshold']:.4f}"
    )
    print(
        f"at the identification threshold {g:.3f}: strangers unknown "
        f"{results['strangers_unknown']:.4f}, "
        f"genuine identified {results['genuine_identified']:.4f}"
    )
    print(f"embedding {embed_s:.0f} s; search {search_ms:.3f} ms per probe")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()

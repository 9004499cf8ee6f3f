"""The dlib teacher's descriptor space: centring mean, PCA whitening, and View 1 checks.

Reads the outputs of `tools/teacher_dlib.py`:
    /work/data-cache/teacher_celeba.npz      (training set: the statistics come from here only)
    /work/data-cache/teacher_<lfw>.npz       (LFW View 1 crops; evaluation only, never fitted on)
Writes /work/data-cache/teacher_space.npz:
    mean        (128,) f4   mean raw descriptor over CelebA crops, both views (crop + mirror)
    scale       ()          RMS distance of a descriptor to the mean: t = (d - mean) / scale
                            has E|t|^2 = 1 and keeps every distance ratio of the raw space
    rank        ()          PCA directions with non-zero variance (dlib's space is ~78-d)
    components  (128, 128)  PCA axes (rows), eigenvalues descending, of the centred descriptors
    eigvals     (128,)      PCA variances
    whiten      (128, 128)  components.T / sqrt(eigvals + eps): z = (d - mean) @ whiten
    eps         ()          the regulariser (1e-3 x the mean eigenvalue... see EPS_REL)
and prints (and writes as JSON with --json) LFW View 1 10-fold accuracies (squared L2 on
unit vectors after each transform; pairsDevTest, and pairsDevTrain as a second sample) for
raw / normalised / centred / whitened descriptors, each with and without flip-averaging, and
the mean cosine of random different- and same-identity CelebA pairs in each space.

    .venv/bin/python tools/teacher_space.py [--lfw lfw-view1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CACHE = Path("/work/data-cache")
LFW = Path("/work/shared/data/lfw")
EPS_REL = 1e-2  # whitening regulariser, relative to the mean eigenvalue


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fit_space(desc: np.ndarray, eps_rel: float = EPS_REL) -> dict:
    mean = desc.mean(0)
    c = desc - mean
    cov = c.T @ c / len(c)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    eps = eps_rel * vals.mean()
    whiten = vecs / np.sqrt(vals + eps)
    scale = np.sqrt((c**2).sum(1).mean())  # RMS distance to the mean
    rank = int((vals > 1e-6 * vals[0]).sum())
    return {
        "mean": mean.astype(np.float32),
        "components": vecs.T.astype(np.float32),
        "eigvals": vals.astype(np.float32),
        "whiten": whiten.astype(np.float32),
        "eps": np.float32(eps),
        "scale": np.float32(scale),
        "rank": np.int32(rank),
    }


def transforms(space: dict) -> dict:
    mean, whiten = space["mean"], space["whiten"]
    vecs, vals, eps = space["components"].T, space["eigvals"], space["eps"]
    half = vecs / (vals + eps) ** 0.25  # "half whitening" (eigenvalues to the power -1/2 of std)
    return {
        "raw": lambda d: d,
        "normalised": unit,
        "centred": lambda d: unit(d - mean),
        "centred, not renormalised": lambda d: (d - mean) / space["scale"],
        "whitened, not renorm.": lambda d: (d - mean) @ whiten / np.sqrt(len(mean)),
        "whitened": lambda d: unit((d - mean) @ whiten),
        "half-whitened": lambda d: unit((d - mean) @ half),
    }


def lfw_arrays(name: str, pairs_file: str):
    from facenet.evaluate.protocols import read_lfw_pairs

    z = np.load(CACHE / f"teacher_{name}.npz")
    index = {p: i for i, p in enumerate(z["paths"])}
    pairs = read_lfw_pairs(LFW / pairs_file, LFW / "lfw-deepfunneled")
    png = lambda p: p[: -len(".jpg")] + ".png"  # noqa: E731
    ia = np.array([index[png(p)] for p in pairs.paths_a])
    ib = np.array([index[png(p)] for p in pairs.paths_b])
    return z["desc"], z["desc_flip"], ia, ib, pairs


def view1_accuracy(name: str, space: dict | None, pairs_file: str = "pairsDevTest.txt") -> dict:
    from facenet.evaluate.verification import evaluate_embeddings

    d, df, ia, ib, pairs = lfw_arrays(name, pairs_file)
    ts = transforms(space) if space else {"raw": lambda x: x, "normalised": unit}
    out = {}
    for tname, t in ts.items():
        for flip in (False, True):
            x = (d + df) / 2 if flip else d
            e = t(x)
            r = evaluate_embeddings(e[ia], e[ib], pairs.labels, pairs.folds, metric="euclidean")
            out[f"{tname}{' +flip' if flip else ''}"] = {
                "accuracy": round(r["accuracy"], 4),
                "std": round(r["accuracy_std"], 4),
                "threshold": round(r["threshold_mean"], 4),
                "auc": round(r["roc_auc"], 5),
            }
    return out


def pair_cosines(
    desc: np.ndarray, ids: np.ndarray, space: dict, n: int = 20000, seed: int = 0
) -> dict:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(desc), n), rng.integers(0, len(desc), n)
    diff = ids[a] != ids[b]
    a, b = a[diff], b[diff]
    # same-identity pairs
    by_id: dict = {}
    for i, k in enumerate(ids):
        by_id.setdefault(k, []).append(i)
    multi = [v for v in by_id.values() if len(v) > 1]
    sa, sb = [], []
    for _ in range(n):
        v = multi[rng.integers(len(multi))]
        i, j = rng.choice(len(v), 2, replace=False)
        sa.append(v[i]), sb.append(v[j])
    sa, sb = np.array(sa), np.array(sb)
    out = {}
    for tname, t in transforms(space).items():
        if tname == "raw" or "not renorm" in tname:
            continue
        e = t(desc)
        out[tname] = {
            "different": round(float((e[a] * e[b]).sum(1).mean()), 4),
            "different_std": round(float((e[a] * e[b]).sum(1).std()), 4),
            "same": round(float((e[sa] * e[sb]).sum(1).mean()), 4),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default="celeba", help="teacher_<train>.npz to fit the space on")
    ap.add_argument("--lfw", nargs="+", default=["lfw-view1"], help="teacher_<lfw>.npz to check")
    ap.add_argument("--eps-rel", type=float, default=EPS_REL)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    report: dict = {}
    space = None
    train = CACHE / f"teacher_{args.train}.npz"
    if train.exists():
        z = np.load(train)
        both = np.concatenate([z["desc"], z["desc_flip"]])
        space = fit_space(both, args.eps_rel)
        if not args.no_save:
            out = CACHE / "teacher_space.npz"
            tmp = out.with_name(".teacher_space.tmp.npz")
            np.savez(tmp, fitted_on=np.array(str(train)), **space)
            tmp.replace(out)
            print(f"wrote {out}")
        ids = np.array([p.split("/")[0] for p in z["paths"]])
        norms = np.linalg.norm(z["desc"], axis=1)
        vals = space["eigvals"]
        report["celeba"] = {
            "n": int(len(z["paths"])),
            "norm": {
                "min": float(norms.min()),
                "mean": float(norms.mean()),
                "max": float(norms.max()),
            },
            "norm_of_mean": float(np.linalg.norm(space["mean"])),
            "scale": float(space["scale"]),
            "rank": int(space["rank"]),
            "eigvals_top5": [float(v) for v in vals[:5]],
            "eigvals_bottom3": [float(v) for v in vals[-3:]],
            "var_in_top10_pct": float(vals[:10].sum() / vals.sum() * 100),
            "cosines": pair_cosines(z["desc"], ids, space),
        }
        print(json.dumps(report["celeba"], indent=1))
    else:
        print(f"{train} missing: raw / normalised only")
    for name in args.lfw:
        for pf in ("pairsDevTest.txt", "pairsDevTrain.txt"):
            r = view1_accuracy(name, space, pf)
            report[f"{name}/{pf}"] = r
            print(f"== {name} {pf}")
            for k, v in r.items():
                print(
                    f"  {k:22s} {100 * v['accuracy']:.2f} +- {100 * v['std']:.2f}  "
                    f"thr {v['threshold']:.3f}  auc {v['auc']:.4f}"
                )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""Where a distilled student still loses to its teacher on unseen faces (LFW View 1 DevTest).

Why: the student's accuracy has flattened while its teacher is six points ahead; this says which
errors it makes and which part of the teacher's space it fails to copy, so that the next lever
is chosen from a measurement. On the View 1 DevTest faces (aligned like the training chips, as
`tools/teacher_fit.py` does, and cached in --lfw-cache) it prints, for teacher and student:

- 10-fold accuracy, and at the best threshold the pairs each gets wrong, by kind (different
  people called the same = false accepts; the same person called different = false rejects);
- how spread the embeddings are: participation ratio of the centred embeddings' covariance
  eigenvalues (sum^2 / sum of squares: the number of directions in use) and the top-10 share;
- d' between same- and different-person distances;
- the teacher's accuracy kept to its top-k principal directions (fitted on CelebA faces): how
  many directions verification needs;
- the student's correlation with the teacher along those directions, in bands, on the unseen
  faces (the student's embedding turned back by the fixed rotation of its target space,
  `distill.random_rotation(D, TARGET_ROTATION_SEED)`: valid for students trained with
  `distill.target_projection`, as every shipped one is);
- the student's accuracy after centring its embeddings on the training faces' mean (CelebA and
  UTKFace) and on the evaluated faces' own mean (a statistic of the test set: shown to say how
  much a domain's mean matters, not a method).

    python tools/student_diagnosis.py MODEL.keras [--json OUT.json]

Exit status: 0 done; 2 usage error (a missing file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import teacher_fit as fit  # noqa: E402

BANDS = ((0, 10), (10, 20), (20, 40), (40, None))
TOP_K = (10, 20, 40)


def spread(emb: np.ndarray) -> dict[str, float]:
    """Participation ratio and top-10 variance share of the centred embeddings."""
    eig = np.linalg.eigvalsh(np.cov((emb - emb.mean(0)).T))[::-1]
    share = eig / eig.sum()
    return {
        "participation_ratio": float(1 / np.sum(share**2)),
        "top10_share": float(share[:10].sum()),
    }


def verification(emb: np.ndarray, val) -> dict:
    """Accuracy, error kinds at the best threshold and d' of unit embeddings on `val`'s pairs."""
    from facenet.evaluate.verification import evaluate_embeddings

    emb = fit.unit(emb)
    a, b, same = emb[val.index_a], emb[val.index_b], val.labels
    out = evaluate_embeddings(a, b, same, val.folds)
    dist = np.sum((a - b) ** 2, axis=1)
    wrong = (dist < out["best_threshold"]) != same
    ds, dd = dist[same], dist[~same]
    return {
        "accuracy": out["accuracy"],
        "wrong": wrong,
        "false_accepts": int(np.sum(wrong & ~same)),
        "false_rejects": int(np.sum(wrong & same)),
        "d_prime": float((dd.mean() - ds.mean()) / np.sqrt(0.5 * (dd.var() + ds.var()))),
    }


def principal_axes(teacher_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's mean and principal directions (columns, largest first) on training faces."""
    mean = teacher_train.mean(0)
    eig, vec = np.linalg.eigh(np.cov((teacher_train - mean).T))
    return mean, vec[:, ::-1]


def band_correlations(student: np.ndarray, teacher: np.ndarray, axes: np.ndarray) -> dict:
    """Mean correlation of student and teacher coordinates along the teacher's directions."""
    from facenet.train.distill import TARGET_ROTATION_SEED, random_rotation

    turned = fit.unit(student) @ random_rotation(student.shape[1], TARGET_ROTATION_SEED)
    s = (turned - turned.mean(0)) @ axes
    t = (teacher - teacher.mean(0)) @ axes
    corr = np.array([np.corrcoef(s[:, k], t[:, k])[0, 1] for k in range(axes.shape[1])])
    return {f"{lo + 1}-{hi or len(corr)}": float(corr[lo:hi].mean()) for lo, hi in BANDS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="the student, a .keras file")
    parser.add_argument("--teacher", type=Path, default=fit.CACHE / "dlib-resnet-noflip.keras")
    parser.add_argument("--celeba", type=Path, default=fit.CACHE / "celeba-chip-128")
    parser.add_argument("--utkface", type=Path, default=fit.CACHE / "utkface-chip-128")
    parser.add_argument("--pairs", type=Path,
                        default=ROOT.parent / "shared/data/lfw/pairsDevTest.txt")  # fmt: skip
    parser.add_argument("--lfw-cache", type=Path, default=Path("view1-crops-128.npz"))
    parser.add_argument("--n", type=int, default=3000, help="training faces a set")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    for path in (args.model, args.teacher, args.pairs, args.celeba, args.utkface):
        if not path.exists():
            print(f"{path}: no such file or folder", file=sys.stderr)
            return 2
    from facenet.train.validation import PairValidator

    val = PairValidator.from_pairs_file(args.pairs, fit.CHIP, 32, args.lfw_cache, alignment="chip")
    celeba = fit.folder_set("celeba", args.celeba, args.n)
    utk = fit.folder_set("utkface", args.utkface, args.n)
    teacher_model = fit.load_embedding_model(args.teacher)
    student_model = fit.load_embedding_model(args.model)
    teacher = fit.embed(teacher_model, val.crops)
    teacher_train = fit.embed(teacher_model, celeba.crops)
    student = fit.embed(student_model, val.crops)
    student_train = fit.embed(student_model, np.concatenate([celeba.crops, utk.crops]))
    report = diagnose(val, teacher, teacher_train, student, student_train)
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def diagnose(val, teacher, teacher_train, student, student_train) -> dict:
    """Every figure of the module docstring, as a JSON-ready dict."""
    mean, axes = principal_axes(teacher_train)
    out: dict = {"pairs": len(val), "faces": len(val.crops)}
    wrong = {}
    for name, emb in (("teacher", teacher), ("student", student)):
        v = verification(emb, val)
        wrong[name] = v.pop("wrong")
        out[name] = {**v, **spread(fit.unit(emb))}
    only = wrong["student"] & ~wrong["teacher"]
    out["student_only_wrong"] = {
        "false_accepts": int(np.sum(only & ~val.labels)),
        "false_rejects": int(np.sum(only & val.labels)),
    }
    out["teacher_top_k_accuracy"] = {
        str(k): verification(mean + (teacher - mean) @ axes[:, :k] @ axes[:, :k].T, val)["accuracy"]
        for k in TOP_K
    }
    out["student_teacher_correlation_by_direction"] = band_correlations(student, teacher, axes)
    unit_student, train_mean = fit.unit(student), fit.unit(student_train).mean(0)
    out["student_centred_accuracy"] = {
        "training_mean": verification(unit_student - train_mean, val)["accuracy"],
        "test_set_mean": verification(unit_student - unit_student.mean(0), val)["accuracy"],
    }
    return out


if __name__ == "__main__":
    sys.exit(main())

"""Verification metrics over pair distances: pure NumPy, no TensorFlow, no SciPy.

Conventions, used by every function here:

- A pair is predicted "same" iff ``distance <= threshold``.
- Candidate thresholds are the unique finite distance values, plus one just below the smallest
  (accept nothing). Between two consecutive unique values no prediction changes, so this set
  is exhaustive and ties are handled exactly: equal distances are always accepted together.
- A distance of ``+inf`` is never accepted and ``-inf`` is always accepted: a pair that must
  count as a wrong answer whatever the threshold (no face found, unreadable image) is given
  ``+inf`` when it is a matched pair and ``-inf`` when it is a mismatched one. ``NaN`` distances
  are turned into such forced-wrong pairs and counted (``n_wrong``), never dropped.
- Folds are integer labels per pair. k-fold figures pick, for each fold, a threshold on the
  other folds only and apply it to the held-out fold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DISTANCES = ("euclidean", "cosine")
#: FAR levels at which TAR is reported over all pairs.
FAR_LEVELS = (1e-2, 1e-3, 1e-4)
#: FAR target of the k-fold VAL figure (FaceNet paper, davidsandberg/facenet `calculate_val`).
VAL_FAR_TARGET = 1e-3


# --------------------------------------------------------------------------- distances


def pair_distances(emb_a: np.ndarray, emb_b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distance between row i of `emb_a` and row i of `emb_b`.

    euclidean: squared L2 distance (0..4 on unit vectors); cosine: ``1 - cos`` (0..2), computed
    on the normalised rows. Rows containing NaN (no embedding) give NaN.
    """
    if metric not in DISTANCES:
        raise ValueError(f"metric must be one of {', '.join(DISTANCES)}; got {metric!r}")
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"embeddings must be two (n, d) arrays of one shape; got {a.shape}, {b.shape}"
        )
    if metric == "euclidean":
        return np.sum((a - b) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        cos = np.sum(a * b, axis=1) / (na * nb)
    return 1.0 - np.clip(cos, -1.0, 1.0)


# --------------------------------------------------------------------------- core counting


def prepare_pairs(distances, labels) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate; map NaN distances to forced-wrong infinities. Returns (d, same, n_nan)."""
    d = np.asarray(distances, dtype=np.float64).reshape(-1).copy()
    y = np.asarray(labels).reshape(-1)
    if d.shape != y.shape:
        raise ValueError(f"distances and labels differ in length: {d.size} vs {y.size}")
    if y.dtype != np.bool_:
        if not np.all(np.isin(y, (0, 1))):
            raise ValueError("labels must be booleans or 0/1 (1 = same person)")
        y = y.astype(bool)
    nan = np.isnan(d)
    d[nan & y] = np.inf
    d[nan & ~y] = -np.inf
    return d, y, int(nan.sum())


def _candidates(d: np.ndarray) -> np.ndarray:
    """Ascending candidate thresholds: just below the smallest finite value, then each unique
    finite value. (+inf would add nothing: +inf distances are never accepted.)"""
    u = np.unique(d[np.isfinite(d)])
    below = np.nextafter(u[0], -np.inf) if u.size else 0.0
    return np.concatenate([[below], u])


def _accept_counts(d, y, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(true accepts, false accepts) at each threshold, with "same" iff d <= t."""
    pos = np.sort(d[y])
    neg = np.sort(d[~y])
    tp = np.searchsorted(pos, thresholds, side="right")
    fp = np.searchsorted(neg, thresholds, side="right")
    # +inf pairs are never accepted, even at threshold +inf.
    tp = np.minimum(tp, np.count_nonzero(pos < np.inf))
    fp = np.minimum(fp, np.count_nonzero(neg < np.inf))
    return tp, fp


# --------------------------------------------------------------------------- single set


def accuracy(distances, labels, threshold: float) -> float:
    """Fraction of pairs answered right with "same" iff distance <= threshold."""
    d, y, _ = prepare_pairs(distances, labels)
    if d.size == 0:
        return float("nan")
    predict = d <= threshold
    predict[d == np.inf] = False
    return float(np.mean(predict == y))


def val_far(distances, labels, threshold: float) -> tuple[float, float]:
    """(VAL, FAR) at a threshold: true-accept rate over matched pairs, false-accept rate over
    mismatched ones (FaceNet paper, eq. 6). NaN where a class is empty."""
    d, y, _ = prepare_pairs(distances, labels)
    tp, fp = _accept_counts(d, y, np.array([threshold], dtype=np.float64))
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    val = tp[0] / n_pos if n_pos else float("nan")
    far = fp[0] / n_neg if n_neg else float("nan")
    return float(val), float(far)


def best_threshold(distances, labels) -> tuple[float, float]:
    """(threshold, accuracy): a threshold of highest accuracy on these pairs.

    Accuracy is evaluated at every candidate threshold (the unique distances). The first run of
    consecutive candidates reaching the maximum gives the same predictions for any threshold
    from its first value up to (not including) the next distance value; the midpoint of that
    interval is returned, so a held-out pair just outside the training range is not decided
    by which edge was picked. A run ending at the largest distance returns that distance; the
    accept-nothing candidate returns a value just below the smallest distance.
    """
    d, y, _ = prepare_pairs(distances, labels)
    if d.size == 0:
        raise ValueError("no pairs to choose a threshold on")
    t = _candidates(d)
    tp, fp = _accept_counts(d, y, t)
    n_neg = int((~y).sum())
    correct = tp + (n_neg - fp)
    best = correct.max()
    k = int(np.argmax(correct))
    if k == 0:
        return float(t[0]), float(best / d.size)
    m = k
    while m + 1 < t.size and correct[m + 1] == best:
        m += 1
    thr = t[m] if m + 1 == t.size else (t[k] + t[m + 1]) / 2.0
    return float(thr), float(best / d.size)


def roc_curve(distances, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds) at every candidate threshold, thresholds ascending.

    The first point accepts nothing (0, 0) unless pairs are forced to be accepted; the last
    accepts everything finite. Contains every point of scikit-learn's `roc_curve` computed on
    ``-distance`` (which drops collinear points).
    """
    d, y, _ = prepare_pairs(distances, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs both matched and mismatched pairs")
    t = _candidates(d)
    tp, fp = _accept_counts(d, y, t)
    far, tar = fp / n_neg, tp / n_pos
    if far[-1] < 1.0 or tar[-1] < 1.0:  # forced-wrong pairs: close the curve at (1, 1)
        far, tar, t = np.append(far, 1.0), np.append(tar, 1.0), np.append(t, np.inf)
    return far, tar, t


def roc_auc(distances, labels) -> float:
    """Area under the ROC curve (trapezoids; a tie between a matched and a mismatched pair
    counts one half, as in the Mann-Whitney statistic and scikit-learn's `roc_auc_score`)."""
    far, tar, _ = roc_curve(distances, labels)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2.0))


def equal_error_rate(distances, labels) -> tuple[float, float]:
    """(EER, threshold) where FAR equals FRR = 1 - TAR on the linearly interpolated ROC curve
    (the same point as davidsandberg/facenet's ``brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x))``).
    The threshold is interpolated along the same segment."""
    far, tar, t = roc_curve(distances, labels)
    diff = (1.0 - tar) - far  # non-increasing along ascending thresholds
    k = int(np.argmax(diff <= 0.0))
    if k == 0:
        return float(far[0]), float(t[0])
    d0, d1 = diff[k - 1], diff[k]
    s = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = far[k - 1] + s * (far[k] - far[k - 1])
    t0, t1 = t[k - 1], t[k]
    thr = t0 + s * (t1 - t0) if np.isfinite(t1) else t0
    return float(eer), float(thr)


def tar_at_far(distances, labels, far_target: float) -> dict[str, Any]:
    """TAR at the largest threshold whose FAR does not exceed `far_target` (no interpolation).

    `resolvable` is False when there are too few mismatched pairs for one false accept to be
    within the target (n_different * far_target < 1): the figure is then TAR at FAR 0.
    """
    d, y, _ = prepare_pairs(distances, labels)
    far, tar, t = roc_curve(d, y)
    ok = far <= far_target
    k = int(np.flatnonzero(ok)[-1]) if ok.any() else 0
    n_neg = int((~y).sum())
    return {
        "far_target": far_target,
        "tar": float(tar[k]) if ok.any() else 0.0,
        "far": float(far[k]) if ok.any() else 0.0,
        "threshold": float(t[k]),
        "resolvable": bool(n_neg * far_target >= 1.0),
    }


def threshold_at_far(distances, labels, far_target: float) -> float:
    """The threshold at which FAR reaches `far_target`, interpolating FAR as a function of the
    threshold (as davidsandberg/facenet `calculate_val` does with `interp1d` over a grid).

    FAR(t) is taken as the piecewise-linear curve through the points (u_i, F_i), u_i being the
    unique distances of the mismatched pairs and F_i the FAR with "same" iff distance <= u_i;
    the threshold is where that curve meets the target. Between u_i and u_{i+1} only the
    pairs at u_i are accepted, so the FAR on these pairs never exceeds the target. Below the
    first false accept (target < F_1) FAR is 0 up to u_1 and the threshold is the largest one
    that accepts no mismatched pair (just below u_1), which is the limit of the grid version.
    """
    d, y, _ = prepare_pairs(distances, labels)
    n_neg = int((~y).sum())
    if n_neg == 0:
        raise ValueError("FAR needs mismatched pairs")
    neg = d[~y]
    u = np.unique(neg[np.isfinite(neg)])
    if u.size == 0:  # every mismatched pair is forced-accepted or forced-rejected
        return float(_candidates(d)[0])
    far = np.searchsorted(np.sort(neg), u, side="right") / n_neg
    forced = np.count_nonzero(neg == -np.inf) / n_neg
    if far_target < forced:
        return float(_candidates(d)[0])
    i = int(np.searchsorted(far, far_target, side="right")) - 1  # last with F_i <= target
    if i < 0:
        return float(np.nextafter(u[0], -np.inf))
    if i == u.size - 1:
        return float(u[i])
    f0, f1 = far[i], far[i + 1]
    thr = u[i] + (far_target - f0) / (f1 - f0) * (u[i + 1] - u[i])
    return float(min(thr, np.nextafter(u[i + 1], -np.inf)))


# --------------------------------------------------------------------------- k-fold


def fold_ids(folds, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fold id per pair, the distinct ids); None: one fold."""
    if folds is None:
        return np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.int64)
    f = np.asarray(folds).reshape(-1)
    if f.size != n:
        raise ValueError(f"folds and distances differ in length: {f.size} vs {n}")
    return f, np.unique(f)


def kfold_accuracy(distances, labels, folds) -> dict[str, Any]:
    """k-fold accuracy: for each fold, the best threshold on the other folds, applied to it.

    Returns mean and (population) std of the held-out accuracies, mean and std of the
    thresholds, and both lists in fold order (sorted fold ids).
    """
    d, y, _ = prepare_pairs(distances, labels)
    f, ids = fold_ids(folds, d.size)
    if ids.size < 2:
        raise ValueError("k-fold accuracy needs at least two folds")
    accs, thrs = [], []
    for k in ids:
        test = f == k
        thr, _ = best_threshold(d[~test], y[~test])
        thrs.append(thr)
        accs.append(accuracy(d[test], y[test], thr))
    return {
        "accuracy": float(np.mean(accs)),
        "accuracy_std": float(np.std(accs)),
        "threshold_mean": float(np.mean(thrs)),
        "threshold_std": float(np.std(thrs)),
        "fold_accuracy": [float(a) for a in accs],
        "fold_threshold": [float(t) for t in thrs],
    }


def kfold_val(distances, labels, folds, far_target: float = VAL_FAR_TARGET) -> dict[str, Any]:
    """VAL at FAR `far_target`, k-fold: the threshold is chosen on the other folds by
    `threshold_at_far` and VAL/FAR are measured on the held-out fold (davidsandberg/facenet
    `calculate_val`; "same" iff distance <= threshold here)."""
    d, y, _ = prepare_pairs(distances, labels)
    f, ids = fold_ids(folds, d.size)
    if ids.size < 2:
        raise ValueError("k-fold VAL needs at least two folds")
    vals, fars, thrs = [], [], []
    for k in ids:
        test = f == k
        thr = threshold_at_far(d[~test], y[~test], far_target)
        v, fa = val_far(d[test], y[test], thr)
        vals.append(v)
        fars.append(fa)
        thrs.append(thr)
    return {
        "val": float(np.mean(vals)),
        "val_std": float(np.std(vals)),
        "val_far": float(np.mean(fars)),
        "val_far_target": far_target,
        "fold_val": [float(v) for v in vals],
        "fold_far": [float(v) for v in fars],
        "fold_val_threshold": [float(t) for t in thrs],
    }

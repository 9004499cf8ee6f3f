"""Every verification metric for one set of pairs, as one JSON-ready dict: the entry points
`facenet evaluate`, training's validation and the tools call (the pieces are in `metrics`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import (
    FAR_LEVELS,
    VAL_FAR_TARGET,
    accuracy,
    best_threshold,
    equal_error_rate,
    fold_ids,
    kfold_accuracy,
    kfold_val,
    pair_distances,
    prepare_pairs,
    roc_auc,
    tar_at_far,
    val_far,
)


def evaluate_distances(
    distances,
    labels,
    folds=None,
    *,
    threshold: float | None = None,
    wrong=None,
    far_levels: tuple[float, ...] = FAR_LEVELS,
    val_far_target: float = VAL_FAR_TARGET,
) -> dict[str, Any]:
    """Every verification metric for one set of pair distances, as a JSON-ready dict.

    Args:
        distances: (n,) pair distances (smaller = more alike). NaN = no embedding: the pair
            counts as a wrong answer under every threshold.
        labels: (n,) bool or 0/1, True/1 = same person.
        folds: (n,) fold ids, or None for one fold. With two or more folds the k-fold
            accuracy and VAL@FAR are reported; with one fold they are None (threshold-free
            metrics and accuracy at `threshold` only). VAL is None too when some fold's other
            folds hold no mismatched pair to set its threshold on.
        threshold: if given, accuracy / TAR / FAR at this fixed threshold are added.
        wrong: optional (n,) bool mask of pairs forced to count as wrong answers.

    Returns:
        dict with keys n_pairs, n_same, n_different, n_folds, n_wrong, accuracy, accuracy_std,
        threshold_mean, threshold_std, fold_accuracy, fold_threshold, val, val_std, val_far,
        val_far_target, fold_val, fold_far, fold_val_threshold, roc_auc, eer, eer_threshold,
        tar_at_far ({"0.01": {...}, ...}), best_accuracy, best_threshold (tuned on all pairs:
        optimistic), threshold, accuracy_at_threshold, tar_at_threshold, far_at_threshold.

    Example:
        >>> r = evaluate_distances([0.1, 0.2, 1.5, 1.7], [1, 1, 0, 0], [0, 1, 0, 1])
        >>> r["accuracy"], r["roc_auc"]
        (1.0, 1.0)
    """
    d, y, n_nan = prepare_pairs(distances, labels)
    if d.size == 0:
        raise ValueError("no pairs to evaluate")
    if wrong is not None:
        _force_wrong(d, y, wrong)
    n_wrong = int(np.count_nonzero(np.isinf(d)))
    f, ids = fold_ids(folds, d.size)
    out: dict[str, Any] = {
        "n_pairs": int(d.size),
        "n_same": int(y.sum()),
        "n_different": int((~y).sum()),
        "n_folds": int(ids.size),
        "n_wrong": n_wrong,
        "n_nan": n_nan,
    }
    kfold_keys = (
        "accuracy accuracy_std threshold_mean threshold_std fold_accuracy fold_threshold "
        "val val_std val_far val_far_target fold_val fold_far fold_val_threshold"
    ).split()
    out.update(dict.fromkeys(kfold_keys))
    if ids.size >= 2:
        out.update(kfold_accuracy(d, y, f))
        if _val_trainable(y, f, ids):
            out.update(kfold_val(d, y, f, val_far_target))
    both = out["n_same"] > 0 and out["n_different"] > 0
    out["roc_auc"] = roc_auc(d, y) if both else None
    out["eer"], out["eer_threshold"] = equal_error_rate(d, y) if both else (None, None)
    out["tar_at_far"] = {f"{far:g}": tar_at_far(d, y, far) for far in far_levels} if both else {}
    out["best_threshold"], out["best_accuracy"] = best_threshold(d, y)
    out.update(_at_fixed_threshold(d, y, threshold))
    return out


def _val_trainable(y: np.ndarray, f: np.ndarray, ids: np.ndarray) -> bool:
    """k-fold VAL sets each fold's threshold on the other folds' mismatched pairs: without any
    there (a fold list that puts every mismatched pair in one fold) VAL stays None."""
    return all(bool((~y[f != k]).any()) for k in ids)


def _force_wrong(d: np.ndarray, y: np.ndarray, wrong) -> None:
    """Move the `wrong` pairs' distances to where every threshold misjudges them (in place)."""
    w = np.asarray(wrong, dtype=bool).reshape(-1)
    if w.size != d.size:
        raise ValueError(f"wrong and distances differ in length: {w.size} vs {d.size}")
    d[w & y] = np.inf
    d[w & ~y] = -np.inf


def _at_fixed_threshold(d: np.ndarray, y: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """Accuracy, TAR and FAR at a threshold chosen elsewhere (None: the keys, empty)."""
    out: dict[str, Any] = {"threshold": None if threshold is None else float(threshold)}
    out["accuracy_at_threshold"] = out["tar_at_threshold"] = out["far_at_threshold"] = None
    if threshold is not None:
        out["accuracy_at_threshold"] = accuracy(d, y, threshold)
        tar, far = val_far(d, y, threshold)
        out["tar_at_threshold"] = None if np.isnan(tar) else tar
        out["far_at_threshold"] = None if np.isnan(far) else far
    return out


def evaluate_embeddings(
    emb_a,
    emb_b,
    labels,
    folds=None,
    metric: str = "euclidean",
    **kwargs,
) -> dict[str, Any]:
    """`evaluate_distances` on the distances between row pairs of two embedding arrays.

    Rows with NaN (no face) make their pair a forced wrong answer. `metric` is "euclidean"
    (squared L2) or "cosine" (1 - cos); the result records it under "distance".
    """
    out = evaluate_distances(pair_distances(emb_a, emb_b, metric), labels, folds, **kwargs)
    out["distance"] = metric
    return out

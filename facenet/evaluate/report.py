"""Evaluation outputs: the summary table, `report.json`, `roc.png` and `distances.png`.

Each is rendered to bytes here; `run.py` writes them together, all or none
(`facenet.outputs.write_files`). Plots use Matplotlib's Agg backend and never open a window.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import roc_curve


def json_bytes(data: Any) -> bytes:
    """`report.json`'s content: indented, NaN and infinities as null."""
    text = json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _finite(value):
    """NaN and infinities become None (JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return None
    return value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def plots_available() -> bool:
    """Whether matplotlib (the `plots` extra) is installed: the PNGs are optional, the report
    is not."""
    import importlib.util

    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # sys.modules["matplotlib"] = None (blocked)
        return False


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.8), dpi=100)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_roc(distances, labels, *, title: str = "", metrics=None) -> bytes:
    """ROC curve, TAR against FAR on a log scale (FAR 0 points drawn at half the resolution):
    the PNG's bytes."""
    y = np.asarray(labels, bool)
    n_diff = int(np.count_nonzero(~y))
    floor = 0.5 / max(n_diff, 1)
    fig = _figure()
    ax = fig.add_subplot()
    if n_diff == 0 or n_diff == y.size:
        ax.text(0.5, 0.5, "no ROC: the pairs are all of one class", ha="center", va="center")
        ax.set_title(title)
        return _png(fig)
    far, tar, _ = roc_curve(distances, labels)
    ax.step(np.maximum(far, floor), tar, where="post", color="C0", lw=1.5, label="ROC")
    if metrics:
        for key, entry in (metrics.get("tar_at_far") or {}).items():
            ax.plot(
                max(entry["far"], floor),
                entry["tar"],
                "o",
                ms=4,
                label=f"TAR@FAR={float(key):.0e}: {entry['tar']:.3f}",
            )
        if metrics.get("eer") is not None:
            eer = metrics["eer"]
            ax.plot(max(eer, floor), 1 - eer, "s", ms=4, color="C3", label=f"EER {eer:.3f}")
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (log scale)")
    ax.set_ylabel("true accept rate")
    auc = metrics.get("roc_auc") if metrics else None
    ax.set_title(title + (f"  AUC {auc:.4f}" if auc is not None else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def plot_distances(
    distances,
    labels,
    *,
    title: str = "",
    threshold: float | None = None,
    threshold_label: str = "threshold",
) -> bytes:
    """Histograms of the distances of matched and mismatched pairs (finite distances only): the
    PNG's bytes."""
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    finite = np.isfinite(d)
    fig = _figure()
    ax = fig.add_subplot()
    if finite.any():
        lo, hi = float(d[finite].min()), float(d[finite].max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 61)
        ax.hist(
            d[finite & y],
            bins=bins,
            alpha=0.6,
            color="C2",
            label=f"same ({int((finite & y).sum())})",
        )
        ax.hist(
            d[finite & ~y],
            bins=bins,
            alpha=0.6,
            color="C3",
            label=f"different ({int((finite & ~y).sum())})",
        )
    if threshold is not None and math.isfinite(threshold):
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"{threshold_label} {threshold:.3f}")
    excluded = int((~finite).sum())
    ax.set_xlabel("distance")
    ax.set_ylabel("pairs")
    ax.set_title(title + (f"  ({excluded} unusable pairs not shown)" if excluded else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def summary_table(report: dict[str, Any]) -> str:
    """A short human-readable table of the main figures of a report."""
    p = report["protocol"]
    rows = [*_setup_rows(report), *_metric_rows(report), *_failure_rows(report)]
    width = max(len(k) for k, _ in rows)
    head = f"{p['name']}" + (f"  [{p['source']}]" if p.get("source") else "")
    return "\n".join([head] + [f"  {k.ljust(width)}  {v}" for k, v in rows])


def _setup_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """What was evaluated: pairs, model, distance and alignment."""
    m = report["metrics"]
    o = report["options"]
    rows: list[tuple[str, str]] = []
    rows.append(
        (
            "pairs",
            f"{m['n_pairs']} ({m['n_same']} same, {m['n_different']} different), "
            f"{m['n_folds']} fold{'s' if m['n_folds'] != 1 else ''}",
        )
    )
    model = report.get("model") or {}
    rows.append(("model", model.get("source") or model.get("embeddings_file") or "-"))
    rows.append(
        (
            "distance",
            f"{o['distance']}, flip {'on' if o['flip'] else 'off'}, "
            f"alignment {o.get('alignment') or '-'}",
        )
    )
    return rows


def _metric_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The figures: accuracy, VAL@FAR, ROC AUC, EER, TAR@FAR, accuracy at the threshold."""
    m = report["metrics"]
    rows: list[tuple[str, str]] = []
    if m.get("accuracy") is not None:
        rows.append(
            (
                "accuracy",
                f"{_pct(m['accuracy'])} ± {_pct(m['accuracy_std'])}  "
                f"(threshold {m['threshold_mean']:.4f} ± {m['threshold_std']:.4f})",
            )
        )
    if m.get("val") is not None:
        rows.append(
            (
                f"VAL@FAR={m['val_far_target']:g} ({m['n_folds']}-fold)",
                f"{_pct(m['val'])} ± {_pct(m['val_std'])}  (threshold set on the other folds, "
                f"held-out FAR {m['val_far']:.5f})",
            )
        )
    rows.append(("ROC AUC", "-" if m["roc_auc"] is None else f"{m['roc_auc']:.5f}"))
    if m.get("eer") is not None:
        rows.append(("EER", f"{_pct(m['eer'])}  (threshold {m['eer_threshold']:.4f})"))
    for key, e in (m.get("tar_at_far") or {}).items():
        note = "" if e["resolvable"] else "  (too few different pairs: at FAR 0)"
        rows.append((f"TAR@FAR={key} (all pairs)", f"{_pct(e['tar'])}  (one ROC){note}"))
    if m.get("threshold") is not None:
        rows.append(
            (
                f"accuracy@{m['threshold']:.4f}",
                f"{_pct(m['accuracy_at_threshold'])}  ({report['options'].get('threshold_source')} "
                f"threshold; TAR {_pct(m['tar_at_threshold'])}, FAR {_pct(m['far_at_threshold'])})",
            )
        )
    if m.get("accuracy") is None:
        rows.append(
            (
                "best accuracy",
                f"{_pct(m['best_accuracy'])} at {m['best_threshold']:.4f} "
                "(tuned on these pairs: optimistic)",
            )
        )
    return rows


def _failure_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Images without a face, unusable images, and the time taken."""
    rows: list[tuple[str, str]] = []
    f = report["failures"]
    rows.append(
        (
            "no face",
            f"{f['n_no_face_images']} images, {f['n_no_face_pairs']} pairs ({f['no_face_policy']})",
        )
    )
    if f["n_failed_images"]:
        rows.append(
            (
                "unusable",
                f"{f['n_failed_images']} images, {f['n_failed_pairs']} pairs (counted wrong)",
            )
        )
    t = report["timing"]
    rows.append(
        (
            "time",
            f"embedding {t['embedding_s']:.1f} s ({t['n_images']} images, "
            f"{t['n_cached']} cached), metrics {t['metrics_s']:.2f} s",
        )
    )
    return rows

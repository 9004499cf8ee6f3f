"""One evaluation run: a pair list + a model (or an embeddings file) -> a report and plots."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..metadata import check_choice
from .embedding import Embedded, embed_images, load_embeddings_file
from .metrics import DISTANCES, evaluate_distances, pair_distances
from .protocols import PairList
from .report import plot_distances, plot_roc, plots_available, summary_table, write_json

log = logging.getLogger(__name__)

NO_FACE_POLICIES = ("centre-crop", "wrong")


def evaluate_pairs(
    pairs: PairList,
    *,
    model=None,
    embeddings_file: str | os.PathLike | None = None,
    distance: str = "euclidean",
    flip: bool = False,
    alignment: str | None = None,
    no_face_wrong: bool = False,
    threshold: float | None = None,
    normalize: bool = True,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    out_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Embed the images of `pairs` and compute every metric; write outputs to `out_dir`.

    Args:
        pairs: from `lfw_pairs`, `read_lfw_pairs` or `read_pair_tsv`.
        model: a loaded `facenet.FaceNet`; or None with `embeddings_file`.
        embeddings_file: an npz of precomputed embeddings (see `load_embeddings_file`).
        distance: "euclidean" (squared L2) or "cosine" (1 - cos).
        flip, alignment: embedding options (ignored with `embeddings_file`).
        no_face_wrong: pairs with an image where no face was found count as wrong answers;
            by default such images are embedded from their centred crop and reported.
        threshold: the fixed threshold for `accuracy_at_threshold`; default the model's own
            (halved for cosine, which equals squared L2 / 2 on unit vectors).
        out_dir: where `report.json`, `roc.png` and `distances.png` go (None: nothing written).

    Returns:
        The report dict (what `report.json` holds), with the summary text under "summary".
    """
    check_choice("distance", distance, DISTANCES)
    if (model is None) == (embeddings_file is None):
        raise ValueError("give exactly one of model and embeddings_file")
    started = time.perf_counter()
    images = pairs.images()
    if embeddings_file is not None:
        embedded = load_embeddings_file(
            embeddings_file, images, normalize=normalize, root=pairs.root
        )
    else:
        embedded = embed_images(
            model,
            images,
            pairs.root,
            flip=flip,
            alignment=alignment,
            batch_size=batch_size,
            cache_dir=cache_dir,
            use_cache=use_cache,
            progress=progress,
        )

    t0 = time.perf_counter()
    index = embedded.index()
    ia = np.array([index[p] for p in pairs.paths_a], dtype=np.int64)
    ib = np.array([index[p] for p in pairs.paths_b], dtype=np.int64)
    distances = pair_distances(embedded.embeddings[ia], embedded.embeddings[ib], distance)
    no_face_pair = embedded.no_face[ia] | embedded.no_face[ib]
    failed_pair = np.isnan(distances)
    wrong = no_face_pair if no_face_wrong else None

    threshold_source = "option"
    if threshold is None and model is not None:
        threshold = model.info.verification_threshold
        threshold_source = "model" if model.info.threshold is not None else "default"
        if distance == "cosine":
            threshold = threshold / 2.0
    elif threshold is None:
        threshold_source = None
    metrics = evaluate_distances(
        distances, pairs.labels, pairs.folds, threshold=threshold, wrong=wrong
    )
    metrics["distance"] = distance
    metrics_s = time.perf_counter() - t0

    no_face_images = [p for p, nf in zip(embedded.paths, embedded.no_face, strict=True) if nf]
    report: dict[str, Any] = {
        "protocol": {
            "name": pairs.name,
            "source": pairs.source,
            "root": str(pairs.root),
            **{k: v for k, v in pairs.extra.items()},
            "n_pairs": len(pairs),
            "n_images": len(images),
        },
        "model": _model_entry(model, embedded, embeddings_file, alignment),
        "options": {
            "distance": distance,
            "flip": bool(flip) if model is not None else None,
            "alignment": (alignment or model.info.alignment) if model is not None else None,
            "no_face_wrong": bool(no_face_wrong),
            "threshold": threshold,
            "threshold_source": threshold_source,
            "normalize": bool(normalize) if embeddings_file is not None else True,
            "batch_size": batch_size,
            "cache": bool(use_cache) if model is not None else None,
        },
        "metrics": metrics,
        "failures": {
            "no_face_policy": "counted wrong" if no_face_wrong else "centred crop embedded",
            "n_no_face_images": len(no_face_images),
            "n_no_face_pairs": int(no_face_pair.sum()),
            "no_face_images": no_face_images,
            "n_failed_images": len(embedded.failed),
            "n_failed_pairs": int(failed_pair.sum()),
            "failed_images": dict(embedded.failed),
        },
        "timing": {
            "embedding_s": round(embedded.seconds, 3),
            "metrics_s": round(metrics_s, 4),
            "total_s": None,
            "n_images": len(images),
            "n_cached": embedded.n_cached,
            "images_per_s": _rate(len(images) - embedded.n_cached, embedded.seconds),
        },
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": {"python": platform.python_version(), "machine": platform.machine()},
    }
    try:
        from .. import __version__

        report["facenet_version"] = __version__
    except ImportError:  # pragma: no cover
        report["facenet_version"] = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report["files"] = {"report": str(out / "report.json")}
        if plots_available():
            title = f"{pairs.name} ({distance})"
            plot_roc(
                distances_for_plot(distances, pairs.labels, metrics_wrong(wrong, failed_pair)),
                pairs.labels,
                out / "roc.png",
                title=title,
                metrics=metrics,
            )
            kfold = metrics["threshold_mean"] is not None
            label = "mean k-fold threshold" if kfold else f"{threshold_source} threshold"
            plot_distances(
                distances, pairs.labels, out / "distances.png", title=title,
                threshold=metrics["threshold_mean"] if kfold else threshold, threshold_label=label,
            )  # fmt: skip
            report["files"].update(roc=str(out / "roc.png"), distances=str(out / "distances.png"))
        else:
            log.warning(
                "roc.png and distances.png need matplotlib: pip install 'facenet-keras[plots]'"
            )
    report["timing"]["total_s"] = round(time.perf_counter() - started, 3)
    report["summary"] = summary_table(report)
    if out_dir is not None:
        write_json(Path(out_dir) / "report.json", report)
    return report


def metrics_wrong(wrong, failed):
    return failed if wrong is None else (wrong | failed)


def distances_for_plot(distances, labels, wrong) -> np.ndarray:
    """Distances with forced-wrong pairs at +inf (same) / -inf (different), as metrics see them."""
    d = np.asarray(distances, dtype=np.float64).copy()
    y = np.asarray(labels, dtype=bool)
    d[wrong & y] = np.inf
    d[wrong & ~y] = -np.inf
    return d


def _rate(n: int, seconds: float) -> float | None:
    return round(n / seconds, 2) if n and seconds > 0 else None


def _model_entry(model, embedded: Embedded, embeddings_file, alignment) -> dict[str, Any]:
    if model is None:
        return {"source": None, "embeddings_file": str(embeddings_file), "model_id": None}
    info = dataclasses.asdict(model.info)
    return {
        "source": getattr(model, "source", None),
        "model_id": getattr(model, "model_id", None),
        "runtime": getattr(getattr(model, "embedder", None), "runtime", None),
        "info": info,
        "alignment_override": alignment
        if alignment and alignment != model.info.alignment
        else None,
    }

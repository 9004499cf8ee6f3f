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

from ..images import MAX_BATCH_SIZE, check_batch_size
from ..metadata import check_choice
from ..outputs import write_files
from .embedding import Embedded, embed_images, load_embeddings_file
from .metrics import DISTANCES, pair_distances
from .protocols import PairList
from .report import json_bytes, plot_distances, plot_roc, plots_available, summary_table
from .verification import evaluate_distances

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
        out_dir: where `report.json`, `roc.png` and `distances.png` go (None: nothing written);
            written all or none: one that cannot be written (disk full, read-only) is a
            one-line OutputError, and the previous outputs there stay as they were.

    Returns:
        The report dict (what `report.json` holds), with the summary text under "summary".
    """
    check_batch_size(batch_size, MAX_BATCH_SIZE)
    _check(model, embeddings_file, distance)
    started = time.perf_counter()
    if embeddings_file is not None:
        embedded = load_embeddings_file(embeddings_file, pairs.images(), normalize=normalize,
                                        root=pairs.root)  # fmt: skip
    else:
        embedded = embed_images(model, pairs.images(), pairs.root, flip=flip, alignment=alignment,
                                batch_size=batch_size, cache_dir=cache_dir, use_cache=use_cache,
                                progress=progress)  # fmt: skip
    t0 = time.perf_counter()
    scored = _score(pairs, embedded, distance, no_face_wrong)
    threshold, threshold_source = _threshold(threshold, model, distance)
    options = _embedding_options(model, flip, alignment, normalize, use_cache) | {
        "distance": distance, "no_face_wrong": bool(no_face_wrong), "threshold": threshold,
        "threshold_source": threshold_source, "batch_size": batch_size}  # fmt: skip
    metrics = _metrics(pairs, scored, options)
    report = _report(pairs, embedded, scored, metrics, options, time.perf_counter() - t0)
    report["model"] = _model_entry(model, embedded, embeddings_file, alignment)
    return _finish(report, pairs, scored, metrics, options, out_dir, started)


def _metrics(pairs: PairList, scored: _Scored, options: dict[str, Any]) -> dict[str, Any]:
    """Every metric of the scored pairs, at the options' fixed threshold and distance."""
    metrics = evaluate_distances(scored.distances, pairs.labels, pairs.folds,
                                 threshold=options["threshold"], wrong=scored.wrong)  # fmt: skip
    return metrics | {"distance": options["distance"]}


def _finish(report: dict[str, Any], pairs: PairList, scored: _Scored, metrics: dict[str, Any],
            options: dict[str, Any], out_dir, started: float) -> dict[str, Any]:  # fmt: skip
    """`report` with its files (under `out_dir`; None: none), total time and summary; the
    plots and `report.json` written all or none (`write_files`)."""
    files: dict[str, bytes] = {}
    if out_dir is not None:
        files = {"report.json": b""} | _plots(pairs, scored, metrics, options)
        report["files"] = {name.split(".")[0]: str(Path(out_dir, name)) for name in files}
    report["timing"]["total_s"] = round(time.perf_counter() - started, 3)
    report["summary"] = summary_table(report)
    if out_dir is not None:
        files["report.json"] = json_bytes(report)
        write_files({Path(out_dir, name): _writer(content) for name, content in files.items()})
    return report


def _writer(content: bytes):
    """A `write_files` writer of `content`."""
    return lambda f: f.write(content)


def _check(model, embeddings_file, distance: str) -> None:
    check_choice("distance", distance, DISTANCES)
    if (model is None) == (embeddings_file is None):
        raise ValueError("give exactly one of model and embeddings_file")


@dataclasses.dataclass
class _Scored:
    """Each pair's distance, and which pairs lost a face (no face found, unreadable)."""

    distances: np.ndarray
    no_face_pair: np.ndarray
    failed_pair: np.ndarray
    wrong: np.ndarray | None  # pairs forced wrong (no face, with --no-face-wrong)


def _score(pairs: PairList, embedded: Embedded, distance: str, no_face_wrong: bool) -> _Scored:
    index = embedded.index()
    ia = np.array([index[p] for p in pairs.paths_a], dtype=np.int64)
    ib = np.array([index[p] for p in pairs.paths_b], dtype=np.int64)
    distances = pair_distances(embedded.embeddings[ia], embedded.embeddings[ib], distance)
    no_face_pair = embedded.no_face[ia] | embedded.no_face[ib]
    wrong = no_face_pair if no_face_wrong else None
    return _Scored(distances, no_face_pair, np.isnan(distances), wrong)


def _embedding_options(model, flip, alignment, normalize, use_cache) -> dict[str, Any]:
    """The report's options that depend on embedding with a model or reading a file."""
    if model is None:
        return {"flip": None, "alignment": None, "normalize": bool(normalize), "cache": None}
    alignment = alignment or model.info.alignment
    return {"flip": bool(flip), "alignment": alignment, "normalize": True, "cache": bool(use_cache)}


def _threshold(threshold: float | None, model, distance: str) -> tuple[float | None, str | None]:
    """The fixed threshold and where it came from: the option, the model, or the default."""
    if threshold is not None:
        return threshold, "option"
    if model is None:
        return None, None
    threshold = model.info.verification_threshold
    source = "model" if model.info.threshold is not None else "default"
    return (threshold / 2.0 if distance == "cosine" else threshold), source


def _report(pairs, embedded: Embedded, scored: _Scored, metrics, options, metrics_s) -> dict:
    """The report dict, less the model entry, files and total time."""
    images = pairs.images()
    no_face_images = [p for p, nf in zip(embedded.paths, embedded.no_face, strict=True) if nf]
    try:
        from .. import __version__
    except ImportError:  # pragma: no cover
        __version__ = None
    return {
        "protocol": {
            "name": pairs.name,
            "source": pairs.source,
            "root": str(pairs.root),
            **{k: v for k, v in pairs.extra.items()},
            "n_pairs": len(pairs),
            "n_images": len(images),
        },
        "model": None,
        "options": options,
        "metrics": metrics,
        "failures": {
            "no_face_policy": "counted wrong"
            if options["no_face_wrong"]
            else "centred crop embedded",
            "n_no_face_images": len(no_face_images),
            "n_no_face_pairs": int(scored.no_face_pair.sum()),
            "no_face_images": no_face_images,
            "n_failed_images": len(embedded.failed),
            "n_failed_pairs": int(scored.failed_pair.sum()),
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
        "facenet_version": __version__,
    }


def _plots(pairs: PairList, scored: _Scored, metrics, options) -> dict[str, bytes]:
    """roc.png and distances.png, by file name (none without matplotlib)."""
    if not plots_available():
        log.warning("roc.png and distances.png need matplotlib: pip install 'facenet-keras[plots]'")
        return {}
    title = f"{pairs.name} ({options['distance']})"
    wrong = metrics_wrong(scored.wrong, scored.failed_pair)
    roc = plot_roc(distances_for_plot(scored.distances, pairs.labels, wrong), pairs.labels,
                   title=title, metrics=metrics)  # fmt: skip
    kfold = metrics["threshold_mean"] is not None
    label = "mean k-fold threshold" if kfold else f"{options['threshold_source']} threshold"
    distances = plot_distances(
        scored.distances, pairs.labels, title=title,
        threshold=metrics["threshold_mean"] if kfold else options["threshold"],
        threshold_label=label,
    )  # fmt: skip
    return {"roc.png": roc, "distances.png": distances}


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

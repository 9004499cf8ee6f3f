"""facenet embed | verify | info."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click
import numpy as np

from . import model_option


def _load(model_path: str | None):
    from ..api import FaceNet

    return FaceNet.load(model_path)


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@model_option
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Output .npz.")
@click.option("--no-detect", is_flag=True, help="Inputs are aligned face crops: skip detection.")
@click.option(
    "--on-missing",
    type=click.Choice(["raise", "nan"]),
    default="raise",
    show_default=True,
    help="An image without a face: stop with an error, or write a NaN row.",
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
def embed(images, model_path, out, no_detect, on_missing, batch_size):
    """Embed IMAGES; write an npz with `paths` and `embeddings` (one unit row per image)."""
    model = _load(model_path)
    embeddings = model.embed(
        list(images), batch_size=batch_size, detect=not no_detect, on_missing=on_missing,
        show_progress=len(images) > batch_size,
    )  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=out.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, paths=np.array(images), embeddings=embeddings, model_id=model.model_id)
    os.replace(tmp, out)
    missing = int(np.isnan(embeddings[:, 0]).sum()) if len(embeddings) else 0
    note = f" ({missing} without a face: NaN rows)" if missing else ""
    click.echo(f"wrote {len(images)} embeddings of {model.embedding_size} dims to {out}{note}")


@click.command()
@click.argument("first", type=click.Path(dir_okay=False))
@click.argument("second", type=click.Path(dir_okay=False))
@model_option
@click.option("--threshold", type=float, default=None, help="Override the model's threshold.")
@click.option("--no-detect", is_flag=True, help="Inputs are aligned face crops: skip detection.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(first, second, model_path, threshold, no_detect, as_json):
    """Say whether two photos show the same person."""
    model = _load(model_path)
    result = model.verify(first, second, threshold=threshold, detect=not no_detect)
    if as_json:
        click.echo(json.dumps({"first": first, "second": second, **result.to_dict()}))
        return
    decision = "same person" if result.same else "different people"
    click.echo(f"distance {result.distance:.4f}  threshold {result.threshold:.4f}  -> {decision}")


@click.command()
@model_option
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def info(model_path, path):
    """Describe a model file: backbone, parameters, input size, preprocessing, threshold."""
    model = _load(path or model_path)
    i = model.info
    rows = [
        ("file", model.source),
        ("model id", model.model_id),
        ("name", i.name),
        (
            "backbone",
            f"{i.backbone}" + (f" (alpha {i.alpha:g})" if i.backbone == "mobilenet" else ""),
        ),
        ("parameters", _parameters(model)),
        ("input size", f"{i.input_size}x{i.input_size}x3"),
        ("embedding size", i.embedding_size),
        ("preprocessing", i.preprocessing),
        (
            "alignment",
            f"{i.alignment} (margin {i.margin})" if i.alignment == "crop" else i.alignment,
        ),
        ("threshold", "none (default 1.1)" if i.threshold is None else f"{i.threshold:.4f}"),
        ("identify at", f"{i.open_set_threshold:.4f} (open-set identification threshold)"),
        ("runtime", model.embedder.runtime),
    ]
    for key, value in rows:
        click.echo(f"{key:15} {value}")


def _parameters(model) -> str:
    network = getattr(model.embedder, "model", None)
    if network is None or not hasattr(network, "count_params"):
        return "n/a"
    return f"{network.count_params():,}"

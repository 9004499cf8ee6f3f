"""facenet models: the bundled models, with what a user needs to choose one."""

from __future__ import annotations

import json
import os

import click


def _describe(name: str, measure: bool) -> dict:
    """One model's row: its file's ModelInfo, the catalog entry and the recorded figures."""
    from ..api import FaceNet
    from ..catalog import DEFAULT_MODEL, MODELS, measurements

    entry = MODELS[name]
    model = FaceNet.load(name)
    info = model.info
    figures = measurements().get(name, {})
    row = {
        "name": name,
        "default": name == DEFAULT_MODEL,
        "architecture": info.backbone,
        "parameters": figures.get("parameters"),
        "input_size": info.input_size,
        "alignment": info.alignment,
        "embedding_size": info.embedding_size,
        "threshold": info.threshold,
        "identification_threshold": info.identification_threshold,
        "lfw_view2": figures.get("lfw_view2"),
        "images_per_s": figures.get("images_per_s"),
        "file": os.path.basename(model.source or ""),
        "file_mb": round(os.path.getsize(model.source) / 1e6, 1) if model.source else None,
        "licence": entry.licence,
        "training_data": entry.training_data,
        "card": entry.card,
    }
    if measure:
        from ..evaluate.speed import throughput

        row["images_per_s"] = {
            "batch_1": round(throughput(model, 1), 1),
            "batch_32": round(throughput(model, 32), 1),
            "measured": "now, on this machine",
        }
    return row


def _lines(row: dict) -> list[str]:
    lfw = row["lfw_view2"] or {}
    speed = row["images_per_s"] or {}
    accuracy = f"{100 * lfw['accuracy']:.2f}% ± {100 * lfw['std']:.2f}" if lfw else "not measured"
    rate = (
        f"{speed['batch_1']:.0f} img/s at batch 1, {speed['batch_32']:.0f} at batch 32 "
        f"({speed.get('measured') or speed.get('machine', '')})"
        if speed
        else "not measured"
    )
    params = f"{row['parameters']:,}" if row["parameters"] else "n/a"
    return [
        f"{row['name']}{'  (default)' if row['default'] else ''}",
        f"  {row['architecture']}, {params} parameters, {row['input_size']} px "
        f"{row['alignment']} alignment, {row['embedding_size']}-d",
        f"  LFW View 2 (whole pipeline): {accuracy}",
        f"  thresholds: verify {row['threshold']}, identify "
        + (
            f"{row['identification_threshold']}"
            if row["identification_threshold"] is not None
            else "= verify (none calibrated)"
        ),
        f"  speed: {rate}",
        f"  file: {row['file']} ({row['file_mb']} MB); licence: {row['licence']}",
        f"  trained on: {row['training_data']}; card: {row['card']}",
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per model (JSON lines).")
@click.option(
    "--measure", is_flag=True, help="Measure images/s on this machine now (a few seconds each)."
)
def models(as_json: bool, measure: bool) -> None:
    """List the bundled models: accuracy, speed, thresholds, licence. Use one with --model NAME."""
    from ..catalog import MODELS

    for name in MODELS:
        row = _describe(name, measure)
        if as_json:
            click.echo(json.dumps(row))
        else:
            click.echo("\n".join(_lines(row)))

"""facenet export: a Keras FaceNet model -> ONNX, LiteRT (.tflite) or SavedModel."""

from __future__ import annotations

import json

import click
import numpy as np

FORMATS = ("onnx", "tflite", "savedmodel")


def _batch(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """--batch: None for "dynamic", else an integer 1..MAX_BATCH (the error names the option)."""
    from ..export import MAX_BATCH

    if value == "dynamic":
        return None
    try:
        batch = int(value)
    except ValueError:
        batch = 0
    if not 1 <= batch <= MAX_BATCH:
        raise click.BadParameter(f"must be 'dynamic' or an integer 1..{MAX_BATCH}; got {value!r}")
    return batch


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "-f", "fmt", type=click.Choice(FORMATS), required=True)
@click.option(
    "--out", "-o", type=click.Path(), default=None,
    help="Output file (directory for savedmodel). Default: beside MODEL, e.g. model.onnx; "
    "in the current directory for a model bundled with facenet (facenet/weights/).",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option(
    "--batch", default="dynamic", show_default=True, metavar="dynamic|N", callback=_batch,
    help="Batch dimension of the exported graph: dynamic, or fixed at N.",
)  # fmt: skip
@click.option(
    "--input-dtype", type=click.Choice(["uint8", "float32"]), default="uint8", show_default=True,
    help="Pixel type of the graph input (values 0..255 either way).",
)  # fmt: skip
@click.option(
    "--quantize", type=click.Choice(["int8"]), default=None, help="Static int8 quantisation."
)
@click.option(
    "--calibration", type=click.Path(exists=True, file_okay=False), default=None,
    help="Folder of photos (e.g. LFW) or aligned crops to calibrate int8 ranges on.",
)  # fmt: skip
@click.option(
    "--aligned", is_flag=True,
    help="Calibration images are already aligned face crops: skip detection.",
)  # fmt: skip
@click.option("--calibration-size", default=200, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--check/--no-check", default=True, show_default=True,
    help="Compare the export's embeddings with the Keras model's on a few crops.",
)  # fmt: skip
def export(
    model, fmt, out, force, batch, input_dtype, quantize, calibration, aligned, calibration_size,
    check,
):  # fmt: skip
    """Export MODEL (.keras or .h5) with its preprocessing folded in; metadata travels inside.

    An existing output is not replaced without --force (exit status 2).
    """
    from .. import export as exporting

    if quantize and fmt == "savedmodel":
        raise click.UsageError("--quantize int8 is for onnx and tflite exports, not savedmodel")
    if quantize and calibration is None:
        raise click.UsageError("--quantize int8 needs --calibration DIR (photos or aligned crops)")
    if calibration and not quantize:
        raise click.UsageError("--calibration is only used with --quantize int8")
    if aligned and not quantize:
        raise click.UsageError("--aligned is only used with --quantize int8")
    out = exporting.output_path(model, fmt, out, quantize, force=force)
    crops = None
    keras_model, info = exporting.load_keras(model)
    if quantize:
        from ..quantize import calibration_crops

        aligner = None
        if not aligned:
            from ..api import FaceNet

            aligner = FaceNet.from_keras(keras_model, info)
        crops = calibration_crops(
            calibration, info.input_size, limit=calibration_size, aligner=aligner
        )
        click.echo(f"calibrating on {len(crops)} aligned faces from {calibration}", err=True)
    path = exporting.export(
        model, fmt, out, batch=batch, input_dtype=input_dtype, quantize=quantize,
        calibration=crops, force=force,
    )  # fmt: skip
    click.echo(f"wrote {path}")
    if check and fmt != "savedmodel":
        report = _check(keras_model, info, path, crops)
        click.echo(json.dumps({"parity": report}))


def _check(keras_model, info, path, crops) -> dict[str, float]:
    from .. import export as exporting
    from ..models.embedder import KerasEmbedder
    from ..runtime import load_exported

    if crops is None:
        size = info.input_size
        crops = np.random.default_rng(0).integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    crops = crops[:32]
    embedder, _ = load_exported(path)
    return exporting.parity(KerasEmbedder(keras_model, info)(crops), embedder(crops))

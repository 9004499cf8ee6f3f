"""facenet embed | verify | info."""

from __future__ import annotations

import json

import click
import numpy as np

from ..batch import DEFAULT_WORKERS
from ..errors import ImageError, NoFaceError
from ..outputs import check_output_file, write_file
from ..text import plural
from . import model_option
from .conventions import (
    batch_size_option,
    emit,
    finish,
    json_option,
    photo_path,
    progress_option,
    threshold_option,
    want_progress,
    warn_uncalibrated,
)


def _load(model_path: str | None):
    from ..api import FaceNet

    return FaceNet.load(model_path)


@click.command()
@click.argument("images", nargs=-1, required=True, type=photo_path())
@model_option
@click.option(
    "--out", "-o", required=True, type=click.Path(),
    help="Output .npz; with --engine, a folder of Parquet parts.",
)  # fmt: skip
@click.option("--no-detect", is_flag=True, help="Inputs are aligned face crops: skip detection.")
@click.option(
    "--on-missing",
    type=click.Choice(["raise", "nan"]),
    default="raise",
    show_default=True,
    help="An image without a face (or, with nan, one that cannot be read): stop with an error, "
    "or write a NaN row (exit status 1).",
)
@batch_size_option(note="; with --engine, one Parquet part each")
@click.option(
    "--engine", type=click.Choice(["local", "ray"]), default=None,
    help="Batch mode: embed SRC (a folder, or a .parquet/.csv list of paths) into Parquet "
    "parts in the folder --out, resumably, in this process or on Ray.",
)  # fmt: skip
@click.option(
    "--address", default=None, help="Ray cluster: auto or ray://HOST:10001 (--engine ray)."
)
@click.option(
    "--workers", "-j", type=click.IntRange(min=1), default=None,
    help=f"Ray actors, one CPU each [default: {DEFAULT_WORKERS}, or the CPUs if fewer] "
    "(--engine ray); more than the CPUs (here, or the cluster's with --address): as many as "
    "CPUs, with a warning.",
)  # fmt: skip
@click.option(
    "--retry-failed", is_flag=True,
    help="With --engine: embed again the images --out holds as failures (unreadable, no "
    "face), replacing their failure rows; the others are skipped as usual.",
)  # fmt: skip
@progress_option
@json_option
def embed(images, model_path, out, no_detect, on_missing, batch_size, engine, address, workers,
          retry_failed, progress, as_json):  # fmt: skip
    """Embed IMAGES; write an npz with `paths` and `embeddings` (one unit row per image).

    With --engine local|ray: `facenet embed SRC --out DIR` writes one Parquet row per face
    (box, landmarks, score, eye distance, embedding, model) and one per failed image, and
    skips the images DIR already holds (a killed run's hidden temporary parts are removed);
    --retry-failed embeds again those it holds as failures, replacing their rows.
    --batch-size beyond 1..1024 is a usage error (exit 2); --workers beyond the CPUs starts
    one Ray actor per CPU, with a warning (without --workers, 2 or the CPUs if fewer, silently).
    """
    if engine is not None:
        from .embed_batch import run_batch

        if no_detect or on_missing != "raise":
            raise click.UsageError("--no-detect and --on-missing do not go with --engine")
        return run_batch(images, out, model_path, engine, address, batch_size, workers,
                         want_progress(progress), as_json, retry_failed=retry_failed)  # fmt: skip
    if address is not None or workers is not None or retry_failed:
        raise click.UsageError("--address, --workers and --retry-failed go with --engine")
    out = check_output_file(out, inputs=images)
    model = _load(model_path)
    options = {"batch_size": batch_size, "detect": not no_detect, "on_missing": on_missing}
    if on_missing == "nan":
        embeddings, errors = _embed_or_nan(model, list(images), options, want_progress(progress))
    else:
        embeddings, errors = model.embed(list(images), **options,
                                         show_progress=want_progress(progress)), {}  # fmt: skip
    arrays = {"paths": np.array(images), "embeddings": embeddings, "model_id": model.model_id}
    write_file(out, lambda f: np.savez(f, **arrays))
    no_face = [p for p, row in zip(images, embeddings, strict=True) if np.isnan(row[0])]
    if as_json:
        for row, (image, vector) in enumerate(zip(images, embeddings, strict=True)):
            missing = {"error": errors.get(image, "no face found")} if np.isnan(vector[0]) else {}
            emit({"path": image, "row": row, **missing})
    else:
        for image, error in errors.items():
            click.echo(f"{image}\terror: {error}", err=True)
    note = f" ({len(no_face)} without a face or unreadable: NaN rows)" if no_face else ""
    click.echo(
        f"wrote {plural(len(images), 'embedding')} of {model.embedding_size} dims to {out}{note}",
        err=as_json,
    )
    finish(len(images) - len(no_face), no_face, "image")


def _embed_or_nan(model, images: list[str], options: dict, progress: bool):
    """`--on-missing nan`: every image gets a row, NaN where it has no face or cannot be read
    (the error kept for the report), so one bad file does not lose the others' work. The API
    raises on an unreadable image; only then are the images embedded chunk by chunk, and a
    failing chunk one image at a time."""
    try:
        return model.embed(images, **options, show_progress=progress), {}
    except ImageError:
        pass
    out = np.full((len(images), model.embedding_size), np.nan, np.float32)
    errors: dict[str, str] = {}
    step = options["batch_size"]
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        try:
            out[start : start + len(chunk)] = model.embed(chunk, **options)
            continue
        except ImageError:
            pass
        for i, image in enumerate(chunk, start):
            try:
                out[i] = model.embed([image], **options)[0]
            except ImageError as exc:
                errors[image] = str(exc)
    return out, errors


@click.command()
@click.argument("first", type=photo_path(dir_okay=False))
@click.argument("second", type=photo_path(dir_okay=False))
@model_option
@threshold_option
@click.option("--no-detect", is_flag=True, help="Inputs are aligned face crops: skip detection.")
@click.option(
    "--all-faces",
    is_flag=True,
    help="Compare every face of FIRST with every face of SECOND; report the closest pair "
    "(default: the most prominent face of each).",
)
@json_option
def verify(first, second, model_path, threshold, no_detect, all_faces, as_json):
    """Say whether two photos show the same person; say which face was used when a photo has
    several.

    Exit status 0 when compared, same person or not; 2 when a photo cannot be read or shows no
    face (one Error line; with --json, also its JSON line: FIRST, SECOND and "error").
    """
    model = _load(model_path)
    warn_uncalibrated(model, threshold)
    try:
        if no_detect:
            result, used = model.verify(first, second, threshold=threshold, detect=False), {}
        else:
            result, used = compare_faces(model, first, second, threshold, all_faces)
    except (ImageError, NoFaceError) as exc:
        if as_json:  # stdout stays the one JSON object --json promises
            emit({"first": first, "second": second, "error": str(exc)})
        raise
    if as_json:
        emit({"first": first, "second": second, **result.to_dict(), "faces": used})
        return
    decision = "same person" if result.same else "different people"
    click.echo(f"distance {result.distance:.4f}  threshold {result.threshold:.4f}  -> {decision}")
    for photo, face in zip((first, second), used.values(), strict=False):
        if face["found"] > 1:
            box = ",".join(f"{v:.0f}" for v in face["box"])
            how = "the closest match" if all_faces else "the most prominent; --all-faces tries all"
            click.echo(
                f"note: {photo}: {plural(face['found'], 'face')} found; used face "
                f"{face['used']} [{box}] ({how})"
            )


def compare_faces(model, first: str, second: str, threshold: float | None, all_faces: bool):
    """Verification between the most prominent faces of two photos, or (all_faces) the closest
    pair of faces; with, per photo, how many faces were found and which one was used."""
    from ..detect import most_prominent
    from ..images import load_image
    from ..types import Verification

    found, chosen = [], []
    for photo in (first, second):
        rgb = load_image(photo)
        faces = model.represent(rgb)
        if not faces:
            raise NoFaceError(f"{photo}: no face found")
        prominent = most_prominent(faces, rgb.shape)
        found.append(faces)
        index = next(k for k, face in enumerate(faces) if face is prominent)
        chosen.append(range(len(faces)) if all_faces else [index])
    ea, eb = (
        np.stack([faces[k].embedding for k in keep]).astype(np.float64)
        for faces, keep in zip(found, chosen, strict=True)
    )
    distances = ((ea[:, None, :] - eb[None, :, :]) ** 2).sum(axis=-1)
    i, j = np.unravel_index(int(np.argmin(distances)), distances.shape)
    distance = float(distances[i, j])
    threshold = model.threshold if threshold is None else float(threshold)
    used = {
        side: {
            "found": len(faces),
            "used": int(keep[k]),
            "box": [round(float(v), 1) for v in faces[keep[k]].box],
        }
        for side, faces, keep, k in zip(("first", "second"), found, chosen, (i, j), strict=True)
    }
    return Verification(distance=distance, threshold=threshold, same=distance <= threshold), used


@click.command()
@model_option
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@json_option
def info(model_path, path, as_json):
    """Describe a model file: backbone, parameters, input size, preprocessing, threshold."""
    if path and model_path:  # one would be dropped silently: which is meant is a guess
        raise click.UsageError("give the model as PATH or as --model, not both")
    model = _load(path or model_path)
    i = model.info
    parameters = _parameters(model)
    if as_json:
        emit({"file": str(model.source), "model_id": model.model_id, "parameters": parameters,
              "runtime": model.embedder.runtime, **json.loads(i.to_json())})  # fmt: skip
        return
    rows = [
        ("file", model.source),
        ("model id", model.model_id),
        ("name", i.name),
        ("backbone", f"{i.backbone}" + _backbone_options(i)),
        ("parameters", _describe_parameters(model, parameters)),
        ("input size", f"{i.input_size}x{i.input_size}x3"),
        ("embedding size", i.embedding_size),
        ("preprocessing", i.preprocessing),
        (
            "alignment",
            f"{i.alignment} (margin {i.margin})" if i.alignment == "crop" else i.alignment,
        ),
        (
            "threshold",
            "none (default 1.1; facenet calibrate sets one)"
            if i.threshold is None
            else f"{i.threshold:.4f}",
        ),
        ("identify at", f"{i.open_set_threshold:.4f} (open-set identification threshold)"),
        ("runtime", model.embedder.runtime),
    ]
    for key, value in rows:
        click.echo(f"{key:15} {value}")


def _backbone_options(info) -> str:
    """The backbone's own options as shown by `info`, e.g. " (alpha 0.25)"; "" for none."""
    from ..backbones import BACKBONES

    spec = BACKBONES.get(info.backbone)
    options = spec.options_from(info) if spec else {}
    return "".join(f" ({k} {v:g})" for k, v in options.items())


def _describe_parameters(model, parameters: int | None) -> str:
    if parameters is None:
        return "n/a"
    onnx = str(getattr(model.embedder, "path", "")).endswith(".onnx")
    return f"{parameters:,}" + (" (ONNX initialisers)" if onnx else "")


def _parameters(model) -> int | None:
    """Weights of a Keras network, or of an ONNX file's initialisers; None for LiteRT."""
    network = getattr(model.embedder, "model", None)
    if network is not None and hasattr(network, "count_params"):
        return int(network.count_params())
    path = getattr(model.embedder, "path", None)
    if path is not None and str(path).endswith(".onnx"):
        from ..runtime.onnx_params import onnx_parameter_count

        return onnx_parameter_count(path)
    return None

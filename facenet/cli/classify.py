"""facenet classify train|predict."""

from __future__ import annotations

import click

from ..text import plural
from . import UserError, model_option
from .conventions import (
    FiniteRange,
    emit,
    finish,
    input_failed,
    json_option,
    photo_path,
    progress_option,
    want_progress,
    warn_uncalibrated,
)
from .gallery import load_model


@click.group()
def classify() -> None:
    """A closed-set classifier (linear SVM or k-NN) on embeddings; see also `facenet gallery`."""
    import importlib.util

    try:
        present = importlib.util.find_spec("sklearn") is not None
    except (ImportError, ValueError):
        present = False
    if not present:
        raise UserError("the classifier needs scikit-learn: pip install 'facenet-keras[classify]'")


@classify.command()
@click.argument("root", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--out", "-o", required=True, type=click.Path(dir_okay=False), help="Classifier file."
)
@click.option("--kind", type=click.Choice(["svm", "knn"]), default="svm", show_default=True)
@click.option(
    "--neighbors", default=5, show_default=True, type=click.IntRange(min=1), help="k for knn."
)
@model_option
@progress_option
def train(root, out, kind, neighbors, model_path, progress):
    """Train on ROOT, a folder with one sub-folder of photos per person. Photos without a
    face or unreadable are skipped and listed (exit status 1)."""
    from ..classify import FaceClassifier, training_items, training_set
    from ..outputs import check_output_file

    photos = [file for _, file in training_items(root)]
    out = check_output_file(out, inputs=photos)  # never one of the photos; before embedding
    model = load_model(model_path)
    data = training_set(model, root, progress=want_progress(progress))
    for source, reason in data.skipped:  # before fitting: they explain why it may fail
        click.echo(f"skipped {source}: {reason}", err=True)
    classifier = FaceClassifier.fit(
        data.embeddings, data.labels, kind=kind, model=model, neighbors=neighbors
    )
    classifier.save(out)
    click.echo(
        f"trained a {kind} on {plural(len(data.labels), 'face')} of "
        f"{plural(len(classifier.classes), 'person', 'people')}; "
        f"wrote {out}"
    )
    finish(len(data.labels), [str(source) for source, _ in data.skipped], "photo")


@classify.command()
@click.argument("photos", nargs=-1, required=True, type=photo_path())
@click.option(
    "--classifier", "-c", "classifier_path", required=True, type=click.Path(dir_okay=False),
    help="A file from `facenet classify train` (a pickle: load only files you trust).",
)  # fmt: skip
@click.option(
    "--max-distance", type=FiniteRange(0, 4), default=None,
    help='"unknown" when the face is farther (squared L2) from every training face of the '
    "predicted person [default: the model's verification threshold; 4 turns it off].",
)  # fmt: skip
@click.option(
    "--min-probability", default=0.0, show_default=True, type=FiniteRange(0, 1),
    help='Below this, answer "unknown".',
)  # fmt: skip
@model_option
@progress_option
@json_option
def predict(photos, classifier_path, max_distance, min_probability, model_path, progress, as_json):
    """Say who is in each photo: every face's label, probability and distance to the nearest
    training face of that person; strangers (beyond --max-distance) are "unknown"."""
    from tqdm.auto import tqdm

    from ..classify import FaceClassifier, predict_photo
    from ..errors import ImageError

    model = load_model(model_path)
    classifier = FaceClassifier.load(classifier_path, model)
    if max_distance is None:
        warn_uncalibrated(model)
        max_distance = model.info.verification_threshold
    if classifier.references is None:
        click.echo("warning: classifier file without training faces: no distance reject; "
                   "retrain it", err=True)  # fmt: skip
    failed = []
    for photo in tqdm(photos, unit="photo", desc="predict", disable=not want_progress(progress)):
        try:
            results = predict_photo(classifier, model, photo, min_probability, max_distance)
        except ImageError as exc:
            input_failed(photo, exc, as_json, failed)
            continue
        if as_json:
            faces = [
                {"box": [round(float(v), 1) for v in f.box], **p.to_dict()} for f, p in results
            ]
            emit({"photo": photo, "faces": faces})
            continue
        if not results:
            click.echo(f"{photo}\t(no face)")
        for face, p in results:
            box = ",".join(f"{v:.0f}" for v in face.box)
            label = p.label if p.nearest is None else f"unknown (nearest {p.nearest})"
            distance = "-" if p.distance is None else f"{p.distance:.3f}"
            click.echo(f"{photo}\t[{box}]\t{label}\t{p.probability:.3f}\t{distance}")
    finish(len(photos) - len(failed), failed, "photo")

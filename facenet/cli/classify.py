"""facenet classify train|predict."""

from __future__ import annotations

import json

import click

from . import model_option
from .gallery import load_model


@click.group()
def classify() -> None:
    """A closed-set classifier (linear SVM or k-NN) on embeddings; see also `facenet gallery`."""


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
def train(root, out, kind, neighbors, model_path):
    """Train on ROOT, a folder with one sub-folder of photos per person."""
    from ..classify import train as train_classifier

    model = load_model(model_path)
    classifier, data = train_classifier(model, root, kind=kind, neighbors=neighbors, progress=True)
    classifier.save(out)
    for source, reason in data.skipped:
        click.echo(f"skipped {source}: {reason}", err=True)
    click.echo(
        f"trained a {kind} on {len(data.labels)} faces of {len(classifier.classes)} people; "
        f"wrote {out}"
    )


@classify.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option(
    "--classifier", "-c", "classifier_path", required=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--min-probability", default=0.0, show_default=True, type=click.FloatRange(0, 1),
    help='Below this, answer "unknown".',
)  # fmt: skip
@model_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per photo.")
def predict(photos, classifier_path, min_probability, model_path, as_json):
    """Say who is in each photo: every face's label and probability."""
    from ..classify import FaceClassifier, predict_photo
    from ..errors import ImageError

    model = load_model(model_path)
    classifier = FaceClassifier.load(classifier_path, model)
    for photo in photos:
        try:
            results = predict_photo(classifier, model, photo, min_probability)
        except ImageError as exc:
            click.echo(
                json.dumps({"photo": photo, "error": str(exc)})
                if as_json
                else f"{photo}\terror: {exc}"
            )
            continue
        if as_json:
            faces = [
                {"box": [round(float(v), 1) for v in f.box], **p.to_dict()} for f, p in results
            ]
            click.echo(json.dumps({"photo": photo, "faces": faces}))
            continue
        if not results:
            click.echo(f"{photo}\t(no face)")
        for face, prediction in results:
            box = ",".join(f"{v:.0f}" for v in face.box)
            click.echo(f"{photo}\t[{box}]\t{prediction.label}\t{prediction.probability:.3f}")

"""facenet convert: public FaceNet weights (Keras h5, TF checkpoint, PyTorch) -> a .keras model."""

from __future__ import annotations

import click

from ..backbones import backbone_names
from ..convert import SOURCES
from ..metadata import PREPROCESSING_MODES


@click.command()
@click.argument("src", type=click.Path())
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output .keras or .onnx file.",
)
@click.option(
    "--source", type=click.Choice(SOURCES), default=None,
    help="Kind of SRC. Default: from its name (.h5; .pt/.pth/.npz; .dat; a checkpoint "
    "prefix/folder).",
)  # fmt: skip
@click.option(
    "--backbone",
    type=click.Choice(backbone_names()),
    default=None,
    help="Default: from the weights.",
)
@click.option(
    "--preprocessing", type=click.Choice(PREPROCESSING_MODES), default=None,
    help="Pixel scaling the weights were trained with (the files do not record it): prewhiten "
    "for the Keras FaceNet h5 and 2017 checkpoints, fixed for 2018 checkpoints and "
    "facenet-pytorch (the default for PyTorch only).",
)  # fmt: skip
@click.option(
    "--input-size", default=None, type=click.IntRange(min=32),
    help="Input side in px [default: 160; dlib's model: 150, fixed].",
)  # fmt: skip
@click.option(
    "--embedding-size", default=None, type=click.IntRange(min=1), help="Check: must match."
)
@click.option("--name", default=None, help="Model name stored in the file. Default: SRC's name.")
@click.option("--force", is_flag=True, help="Replace an existing output.")
@click.option(
    "--no-flip", is_flag=True,
    help="dlib's model only: leave out the mirrored chip's descriptor (the training teacher).",
)  # fmt: skip
def convert(
    src, out, source, backbone, preprocessing, input_size, embedding_size, name, force, no_flip
):
    """Convert the weights SRC into a FaceNet .keras (or .onnx) model file, checked tensor by
    tensor.

    An existing output is not replaced without --force (exit status 2).
    """
    from ..convert import convert as run

    _, info = run(
        src, out, source=source, backbone=backbone, preprocessing=preprocessing,
        input_size=input_size, embedding_size=embedding_size, name=name,
        test_time_flip=not no_flip, force=force,
    )  # fmt: skip
    click.echo(
        f"wrote {out}: {info.backbone}, {info.input_size} px, {info.embedding_size}-d, "
        f"preprocessing {info.preprocessing}"
    )

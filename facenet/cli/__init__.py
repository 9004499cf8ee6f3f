"""The `facenet` command: a thin layer over the Python API.

Subcommands live one module per group in this folder and are imported only when used, so
`facenet verify` never pays for TensorFlow or FastAPI unless it needs them. User errors
(FaceNetError, bad options) print one line and exit 2; the exit statuses, `--progress`,
`--json` lines and `-j` that every command shares are defined in `conventions.py`.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from ..errors import FaceNetError
from .conventions import EXIT_INTERRUPTED, guard_path_options

#: command name -> (module in facenet.cli, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "embed": ("embedding", "embed", "Embed face images into unit vectors (npz)."),
    "verify": ("embedding", "verify", "Say whether two photos show the same person."),
    "info": ("embedding", "info", "Describe a model file."),
    "models": ("models", "models", "List the bundled models (accuracy, speed, licence)."),
    "train": ("train", "train", "Train a model: triplet loss with online mining + softmax."),
    "align": ("align", "align", "Detect and crop the faces of a dataset folder (PNG crops)."),
    "evaluate": ("evaluate", "evaluate", "Verification accuracy on LFW or a pair list."),
    "calibrate": (
        "calibrate",
        "calibrate",
        "Choose a model's verification threshold on development pairs (LFW View 1).",
    ),
    "serve": ("serve", "serve", "Serve the face-recognition API and web page over HTTP."),
    "gallery": ("gallery", "gallery", "A persistent gallery of people (create, enroll, list...)."),
    "identify": ("gallery", "identify", "Identify every face in photos against a gallery."),
    "cluster": ("cluster", "cluster", "Group the faces of photos by person (folders + HTML)."),
    "library": (
        "library",
        "library",
        "The people of a photo collection: add photos, correct, re-cluster.",
    ),
    "classify": ("classify", "classify", "Train / apply a closed-set SVM or k-NN classifier."),
    "export": ("export", "export", "Export a model to ONNX, LiteRT (.tflite) or SavedModel."),
    "convert": (
        "convert",
        "convert",
        "Convert public face weights (FaceNet h5, TF checkpoint, PyTorch; dlib .dat).",
    ),
}


class LazyGroup(click.Group):
    """The `facenet` group: command modules are imported only when their command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The command names, sorted."""
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Import and return one command (None for an unknown name)."""
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        return guard_path_options(command)  # path options refuse `-x` values (conventions)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their one-line help without importing them."""
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        """Run a command; a FaceNetError becomes a one-line error with exit status 2, Ctrl-C one
        line and exit status 130 (nothing half-written is left)."""
        try:
            return super().invoke(ctx)
        except FaceNetError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo(INTERRUPTED, err=True)
            ctx.exit(EXIT_INTERRUPTED)


#: What Ctrl-C prints: true of every command (`embed -o x.npz` writes its file only at the end,
#: so "what was finished is kept" was not), and where to look for resuming.
INTERRUPTED = (
    "interrupted: nothing half-written is left; commands that work in parts (their --help "
    "says) resume when run again"
)


class UserError(click.ClickException):
    """A user mistake: one line on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        """Print the one-line error."""
        click.echo(f"Error: {self.format_message()}", err=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """FaceNet face recognition: embed, verify, identify and cluster faces."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


model_option = click.option(
    "--model",
    "-m",
    "model_path",
    default=None,
    type=click.Path(),  # a path option: `-m --help` is refused (conventions.OptionPath)
    metavar="NAME|PATH",
    help="A bundled model's name (see `facenet models`) or a model file (.keras, .h5, .onnx, "
    ".tflite). Default: the default bundled model.",
)

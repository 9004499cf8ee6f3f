"""facenet gallery migrate: move a gallery to another model, dry-run it, roll it back, prune."""

from __future__ import annotations

import json
import sys

import click

from .conventions import batch_size_option


@click.command()
@click.argument("gallery_path", metavar="GALLERY", type=click.Path(dir_okay=False))
@click.option(
    "--model", "-m", "model_path", default=None, metavar="NAME|PATH",
    type=click.Path(),  # a path option: `-m --dry-run` is refused (conventions.OptionPath)
    help="The model to move to (with --rollback: the previous model, for faces enrolled since).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Embed and report; do not switch.")
@click.option("--rollback", is_flag=True, help="Return to the model used before the last switch.")
@click.option("--prune", is_flag=True, help="Delete the previous model's kept embeddings.")
@batch_size_option(note="; faces re-embedded per transaction")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def migrate(gallery_path, model_path, dry_run, rollback, prune, batch_size, as_json):
    """Re-embed every face of GALLERY with another model, without re-enrolling anyone.

    The new embeddings are made beside the old ones (resumable: run the command again after an
    interruption), a report says what the new model changes on the gallery's own faces, then
    the gallery switches in one step (not with --dry-run). Faces that cannot be re-embedded
    (no photo or crop) stay on the old model, flagged; when that is every face, the switch is
    refused (exit 2) and the gallery is left as it was. --rollback returns to the previous
    model while its embeddings are kept; --prune deletes them.
    """
    from ..gallery import migrate as m

    if rollback and prune:
        raise click.UsageError("--rollback and --prune exclude each other")
    if not (model_path or rollback or prune):
        raise click.UsageError("give --model NAME|PATH, --rollback or --prune")
    if dry_run and (rollback or prune):
        raise click.UsageError("--dry-run goes with --model only")
    report = None
    if model_path or rollback:
        report = _run(gallery_path, model_path, rollback, dry_run, batch_size)
    if report is not None:
        if as_json:
            click.echo(json.dumps(report.to_dict()))
        else:
            for line in report.lines():
                click.echo(line)
            click.echo(_outcome(report, dry_run), err=True)
    if prune:
        count = m.prune(gallery_path)
        click.echo(f"pruned {count} kept embeddings of previous models", err=True)


def _outcome(report, dry_run: bool) -> str:
    """The last line: switched, or a dry run's verdict (a switch is refused when no face could
    be re-embedded, see `facenet.gallery.migrate.refusal`)."""
    from ..gallery import migrate as m

    if not dry_run:
        return f"switched to {report.new_model}"
    reason = m.refusal(report)
    if reason is None:
        return "dry run: nothing switched"
    return f"dry run: nothing switched; without --dry-run the switch would be refused: {reason}"


def _run(gallery_path, model_path, rollback, dry_run, batch_size):
    from tqdm.auto import tqdm

    from ..api import FaceNet
    from ..gallery import migrate as m

    bar = tqdm(unit="face", desc="re-embedding", disable=None, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    options = {"dry_run": dry_run, "batch_size": batch_size, "progress": progress}
    try:
        if rollback:
            return m.rollback(gallery_path, _previous_model(gallery_path, model_path), **options)
        model = FaceNet.load(model_path)
        return m.migrate(gallery_path, m.Target.of(model, model_path), **options)
    except KeyboardInterrupt:
        bar.close()
        click.echo(
            "interrupted: the faces embedded so far are kept; run the same command to resume",
            err=True,
        )
        sys.exit(130)
    finally:
        bar.close()


def _previous_model(gallery_path, model_path):
    """The model a rollback needs: --model, else the recorded previous model when faces were
    enrolled since the switch, else None."""
    from ..api import FaceNet
    from ..gallery import migrate as m

    if model_path:
        return FaceNet.load(model_path)
    return m.model_for_rollback(gallery_path, FaceNet.load)

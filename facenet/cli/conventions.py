"""The conventions every `facenet` command follows, defined once.

- Exit status: 0 every input done; 1 some inputs failed (each listed on stderr, or as a JSON
  line with "error"); 2 usage error, or nothing done (every input failed, no input at all), or
  an output that cannot be written (`facenet.outputs.writing`: one line, `cannot write PATH
  (reason)`, nothing half-written left); 130 interrupted (Ctrl-C; nothing half-written is
  left; commands that work in parts, as their --help says, resume when run again). Except
  `serve`: Ctrl-C and SIGTERM are its stop, a graceful shutdown, exit 0.
- `--progress/--no-progress`: a progress bar on stderr; by default only when stderr is a
  terminal, so pipes and logs stay clean.
- `--json`: stdout carries only JSON lines, one object per input (one object in all for
  commands with a single result: verify, info, evaluate); summaries go to stderr.
- `-j N` / `--workers N`: N worker processes (align); the server's inference threads are
  `--threads`.
- `--batch-size N`: 1..1024 photos at once, wherever a command takes it (`batch_size_option`).
- Defaults match the Python API and the REST API (identify: `k` = `DEFAULT_K`).
- A path-valued option refuses a value that starts with `-` (`serve --gallery --help` would
  otherwise serve a new gallery file named `--help`): a usage error, exit 2 (`OptionPath`,
  given to every command by `guard_path_options`). A file so named: `./--help`. A lone `-`
  (stdin/stdout) passes where the option allows it (`allow_dash`).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ..images import MAX_BATCH_SIZE
from ..metadata import DEFAULT_THRESHOLD

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_NOTHING_DONE = 2
EXIT_INTERRUPTED = 130
#: failed inputs named in the closing line; the rest are counted
SHOWN = 10


class FiniteRange(click.FloatRange):
    """click's FloatRange that also refuses NaN and infinities: every comparison with NaN is
    false, so FloatRange alone lets `nan` through its bounds."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class OptionPath(click.Path):
    """click's Path for an option's value, refusing one that looks like an option: click takes
    the token after a path option as its value whatever it is, so a mistyped `-o --force` or
    `--gallery --help` would create a file of that name."""

    @classmethod
    def like(cls, path: click.Path) -> OptionPath:
        """The same checks as `path`, plus this one."""
        return cls(
            exists=path.exists, file_okay=path.file_okay, dir_okay=path.dir_okay,
            readable=path.readable, writable=path.writable, executable=path.executable,
            resolve_path=path.resolve_path, allow_dash=path.allow_dash, path_type=path.type,
        )  # fmt: skip

    def convert(self, value, param, ctx):
        text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        if text.startswith("-") and not (text == "-" and self.allow_dash):
            self.fail(
                f"{text!r} looks like an option, not a path (a file so named: ./{text}).",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


def guard_path_options(command: click.Command) -> click.Command:
    """Give every click.Path option of `command` and of its subcommands `OptionPath`'s check;
    done once, where the `facenet` group hands out a command, so no command can miss it."""
    for param in command.params:
        if isinstance(param, click.Option) and type(param.type) is click.Path:
            param.type = OptionPath.like(param.type)
    for sub in getattr(command, "commands", {}).values():
        guard_path_options(sub)
    return command


def photo_path(dir_okay: bool = True) -> click.Path:
    """A photo argument's type. click's own readable check is left out: it made one unreadable
    photo a usage error that dropped every other photo of the run; the API reports it as one
    failed input (`cannot read (Permission denied)`), listed by the command's exit status."""
    return click.Path(dir_okay=dir_okay, readable=False)


def threshold_option(f: Callable) -> Callable:
    """`--threshold`: a squared-L2 distance in [0, 4] replacing the model's own."""
    return click.option(
        "--threshold", type=FiniteRange(0, 4), default=None,
        help="Override the model's threshold (a squared-L2 distance in [0, 4]).",
    )(f)  # fmt: skip


def batch_size_option(default: int = 32, note: str = "") -> Callable[[Callable], Callable]:
    """`--batch-size`: 1..MAX_BATCH_SIZE photos at once (0, negative or more: click's usage
    error, exit 2, before any work); `note` ends its help."""
    return click.option(
        "--batch-size", default=default, show_default=True,
        type=click.IntRange(1, MAX_BATCH_SIZE),
        help=f"Photos per batch, 1..{MAX_BATCH_SIZE} (more: a usage error, exit 2){note}.",
    )  # fmt: skip


def progress_option(f: Callable) -> Callable:
    """`--progress/--no-progress`, None when not given (see `want_progress`)."""
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Progress bar on stderr [default: when stderr is a terminal].",
    )(f)


def json_option(f: Callable) -> Callable:
    """`--json` (as_json): JSON lines on stdout, one object per input."""
    return click.option(
        "--json", "as_json", is_flag=True, help="JSON lines on stdout: one object per input."
    )(f)


def warn_uncalibrated(model, threshold: float | None = None, *, open_set: bool = False) -> None:
    """One warning line on stderr when a command is about to decide with a model that carries
    no calibrated threshold and no other was given (`threshold`: --threshold, a gallery's own):
    FaceNet's customary DEFAULT_THRESHOLD may not fit it. The line names the fix. `open_set`:
    identification, where the model's identification threshold counts too."""
    info = model.info
    if threshold is not None or info.threshold is not None:
        return
    if open_set and info.identification_threshold is not None:
        return
    label = str(getattr(model, "name", None) or getattr(model, "source", None) or "MODEL")
    suffix = Path(label).suffix or ".keras"
    click.echo(
        f"warning: {label} has no calibrated threshold; using {DEFAULT_THRESHOLD} (FaceNet's "
        f"customary value, may not fit this model): facenet calibrate {label} --lfw-dir DIR "
        f"-o CALIBRATED{suffix}",
        err=True,
    )


def want_progress(flag: bool | None) -> bool:
    """The bar is shown when asked for, or by default when stderr is a terminal."""
    return sys.stderr.isatty() if flag is None else flag


def emit(obj: dict) -> None:
    """One JSON line on stdout."""
    click.echo(json.dumps(obj))


def input_failed(
    name: str, error: Exception, as_json: bool, failed: list[str], key: str = "photo"
) -> None:
    """Note one failed input: listed in `failed` (for `finish`), reported as a JSON line
    {key: name, "error": ...} or a line on stderr."""
    failed.append(name)
    if as_json:
        emit({key: name, "error": str(error)})
    else:
        click.echo(f"{name}\terror: {error}", err=True)


def finish(done: int, failed: list[str], what: str = "input", nothing: str = "") -> None:
    """Exit with the convention's status: list the failures on stderr; 2 when nothing was
    done (saying `nothing` when no input failed as such), 1 when some inputs failed, else
    return (status 0)."""
    if not failed and done:
        return
    if failed:
        noun = what if len(failed) == 1 else what + "s"
        shown = ", ".join(failed[:SHOWN])
        more = f" and {len(failed) - SHOWN} more" if len(failed) > SHOWN else ""
        click.echo(f"{len(failed)} {noun} failed: {shown}{more}", err=True)
    elif nothing:
        click.echo(f"Error: {nothing}", err=True)
    ctx = click.get_current_context()
    ctx.exit(EXIT_NOTHING_DONE if not done else EXIT_SOME_FAILED)

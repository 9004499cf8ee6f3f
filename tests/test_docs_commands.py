"""The commands the docs show still parse: every `facenet` command line of docs/*.md (code
blocks and inline spans) names a command that exists, with options it has and choices it
accepts; every `python benchmarks|tools/X.py` line of the docs and of the scripts' own
docstrings names a script that exists, with options its argparse parser defines. Nothing runs
(click's command tree and the scripts' source are read); README.md's blocks are run as a user
would in tests/user_paths/test_readme.py.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

from facenet.cli import main

from .user_paths.helpers import REPO, fenced_blocks

DOCS = sorted((REPO / "docs").glob("*.md")) + sorted((REPO / "docs" / "models").glob("*.md"))
SCRIPTS = sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "tools").rglob("*.py"))
#: A line that is a command of ours: env settings, `nice`/`nohup`, then facenet or a script.
OURS = re.compile(
    r"^(?:[A-Z_]+=\S*\s+)*(?:nice -n \d+ )?(?:nohup )?"
    r"(facenet(?= |$)|\S*python3?(?= -m facenet\.?\w| \S*(?:benchmarks|tools)/\S+\.py))"
)
#: A value written as a placeholder (NAME, M, $VAR, {a,b}, ...), not checked against choices.
PLACEHOLDER = re.compile(r"^(\.\.\.|[A-Z][A-Z0-9_.]*|.*[$*{<].*)$")


def without_comment(line: str) -> str:
    """The line up to a `#` that starts a comment (outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def command_lines(text: str) -> list[str]:
    """Our command lines of a shell text: continuations joined, comments and `&&` split off."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = without_comment(raw.strip().removeprefix("#").strip() if pending else raw.strip())
        if line.rstrip().endswith("\\"):
            pending += line.rstrip().rstrip("\\") + " "
            continue
        for part in re.split(r"\s*(?:&&|;)\s*", pending + line):
            if OURS.match(part.strip()):
                out.append(part.strip())
        pending = ""
    return out


def documented() -> list[tuple[str, str]]:
    """(where, command line) for every command of ours the docs and script docstrings show."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for lang, body in fenced_blocks(doc):
            if lang not in ("python", "yaml", "text"):
                found += [(doc.name, line) for line in command_lines(body)]
        prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
        found += [
            (doc.name, span) for span in re.findall(r"`([^`\n]+)`", prose) if OURS.match(span)
        ]
    for script in SCRIPTS:
        doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
        found += [(script.name, line) for line in command_lines(doc)]
    return found


def words(line: str) -> list[str]:
    """The command's words up to a redirection, `[optional]` brackets and `a|b` kept apart."""
    try:
        tokens = shlex.split(line.replace("[", " ").replace("]", " "))
    except ValueError:  # an unclosed quote in a prose span
        tokens = line.split()
    out = []
    for token in tokens:
        if token in ("&", "|") or token.startswith((">", "2>")):
            break
        out.append(token)
    while out and (re.match(r"^[A-Z_]+=", out[0]) or out[0] in ("nice", "-n", "nohup")):
        out = out[1:] if out[0] != "-n" else out[2:]
    return out


def flags(tokens: list[str]) -> list[tuple[str, str | None]]:
    """(option, the value written after it or None) for every `-x`/`--xx` token."""
    out = []
    for i, token in enumerate(tokens):
        for piece in token.split("|"):
            if re.match(r"^--?[A-Za-z]", piece):
                name, _, value = piece.partition("=")
                after = tokens[i + 1] if i + 1 < len(tokens) else None
                out.append((name, value or after))
    return out


def click_errors(tokens: list[str]) -> list[str]:
    """What does not hold of `facenet TOKENS`: a missing command, option or choice."""
    command, ctx, i = main, click.Context(main), 0
    while isinstance(command, click.Group) and i < len(tokens) and tokens[i] != "...":
        if tokens[i].startswith("-"):
            i += 1  # the group's own options (-v): checked below with the command's
            continue
        subs = [command.get_command(ctx, name) for name in tokens[i].split("|")]
        if None in subs:
            return [f"no command {tokens[i]!r}"]
        command, i = subs[0], i + 1
    options = {o: p for p in command.params + main.params for o in p.opts + p.secondary_opts}
    errors = []
    for name, value in flags(tokens):
        if name in ("-h", "--help"):
            continue
        param = options.get(name)
        if param is None:
            errors.append(f"{command.name}: no option {name}")
        elif isinstance(param.type, click.Choice) and value and not value.startswith("-"):
            for choice in value.split("|"):
                if not PLACEHOLDER.match(choice) and choice not in param.type.choices:
                    errors.append(f"{command.name} {name}: {choice!r} not a choice")
    return errors


def argparse_options(script: Path) -> set[str]:
    """The option strings a script's argparse parser defines (add_argument calls)."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and str(arg.value).startswith("-")
    } | {"-h", "--help"}


def script_errors(tokens: list[str]) -> list[str]:
    """What does not hold of `python SCRIPT TOKENS` or `python -m facenet... TOKENS`."""
    if tokens[1] == "-m":
        module = REPO / (tokens[2].replace(".", "/") + ".py")
        exists = module.exists() or (REPO / tokens[2].replace(".", "/")).is_dir()
        return [] if exists else [f"no module {tokens[2]}"]
    script = REPO / tokens[1]
    if not script.exists():
        return [f"no script {tokens[1]}"]
    known = argparse_options(script)
    return [f"{tokens[1]}: no option {name}" for name, _ in flags(tokens[2:]) if name not in known]


def errors_of(line: str) -> list[str]:
    """Every way the command line no longer matches the code (none: it parses)."""
    tokens = words(line)
    return click_errors(tokens[1:]) if tokens[0] == "facenet" else script_errors(tokens)


COMMANDS = documented()


def test_the_docs_show_commands():
    """The extraction finds the docs' commands (a change that loses them fails here)."""
    assert len(COMMANDS) > 200
    assert any(line.startswith("facenet train") for _, line in COMMANDS)
    assert any("benchmarks/gallery_search.py" in line for _, line in COMMANDS)


@pytest.mark.parametrize("where, line", COMMANDS, ids=lambda v: str(v)[:60])
def test_documented_command_parses(where, line):
    assert not errors_of(line), (where, line, errors_of(line))


def test_a_stale_flag_is_caught():
    assert errors_of("facenet gallery create people.db --indx milvus")
    assert errors_of("facenet train data --out runs/x --schedule bogus")
    assert errors_of("python benchmarks/gallery_search.py --milvus-efs 64")
    assert errors_of("facenet galery list people.db")
    assert not errors_of("facenet gallery list people.db [--faces] [--json]")

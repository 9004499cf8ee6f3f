"""README.md as a user follows it: every fenced block that can run here runs, and what it says a
command prints is what the command prints.

Not run, on purpose (each listed in SKIPPED with why): the install line (it needs the network)
and the test command (it is this suite). Any other line of a bash block must be a `facenet`
command, a comment or an output line; a new kind of line fails here until it gets a user path.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import pytest

from .helpers import EXAMPLES, README, REPO, env, facenet, fenced_blocks

SKIPPED = {
    "python3 -m venv": "installing needs the network (the light install runs in .ci/light-install)",
    "python -m pytest": "the test suite itself",
}
VERIFY_LINE = re.compile(
    r"distance (\d+\.\d+)\s+threshold (\d+\.\d+)\s+-> (same person|different people)"
)


def readme_blocks(language: str) -> list[str]:
    return [body for lang, body in fenced_blocks(README) if lang == language]


def command_lines() -> list[tuple[str, list[str]]]:
    """(command, the comment lines right after it: what the README says it prints)."""
    out: list[tuple[str, list[str]]] = []
    for body in readme_blocks("bash"):
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("# ") and out:
                out[-1][1].append(line[2:])
            elif line and not line.startswith("#"):
                out.append((line, []))
    return out


def test_readme_has_runnable_blocks():
    assert readme_blocks("python") and command_lines()


@pytest.mark.parametrize("command, said", command_lines(), ids=lambda v: str(v)[:40])
def test_readme_command_prints_what_it_says(command, said):
    skip = next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)
    if skip:
        pytest.skip(f"not run: {skip}")
    assert command.startswith("facenet "), f"README line without a user path here: {command}"
    result = facenet(*command.split()[1:])
    assert result.code == 0, result.stderr
    for expected in said:
        shown = VERIFY_LINE.search(expected)
        got = VERIFY_LINE.search(result.stdout)
        assert shown and got, (expected, result.stdout)
        # the decision and threshold exactly; the distance to its printed precision, give or
        # take a unit or so in the last digit (BLAS and ONNX Runtime builds differ that much)
        assert got[3] == shown[3] and got[2] == shown[2], (expected, result.stdout)
        assert abs(float(got[1]) - float(shown[1])) <= 0.0015, (expected, result.stdout)


def test_readme_python_block_runs(tmp_path):
    """The 'From Python' block, as written, in a fresh folder holding examples/ only."""
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    (code,) = readme_blocks("python")
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    distance, threshold, same = lines[0].split()
    assert (same == "True") == (float(distance) <= float(threshold))
    # the identify line prints what its comment shows (it printed a multi-line repr of every
    # IdentifiedFace, landmark arrays and all): a name and a distance, give or take a unit
    shown = ast.literal_eval(code.split("])\n# ", 1)[1].split(":", 1)[0])
    got = ast.literal_eval(lines[1])
    assert [n for n, _ in got] == [n for n, _ in shown], (shown, lines[1])
    assert abs(got[0][1] - shown[0][1]) <= 0.0015, (shown, lines[1])


def table_commands() -> list[list[str]]:
    """Every command of the README's Commands table, subcommands expanded (a/b/c)."""
    rows = re.findall(r"^\| `facenet ([a-z]+)(?: ([a-z][a-z/-]*))?", README.read_text(), re.M)
    out = []
    for command, subs in rows:
        out += [[command, sub] for sub in subs.split("/")] if subs else [[command]]
    return out


@pytest.mark.parametrize("command", table_commands(), ids=" ".join)
def test_readme_table_commands_exist(command):
    result = facenet(*command, "--help")
    assert result.code == 0, result.stderr
    assert "Usage:" in result.stdout


def test_readme_names_the_conventions():
    """The exit statuses, --json and --progress are documented where users look."""
    text = README.read_text()
    for phrase in ("exit status", "--json", "--progress", "-j"):
        assert phrase in text, phrase
    assert (REPO / "facenet" / "cli" / "conventions.py").is_file()

"""Running the product as a user does: the `facenet` command in a subprocess (real exit status,
stdout and stderr kept apart), README code blocks, small real photos."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
README = REPO / "README.md"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        """Every stdout line as JSON (the --json convention: nothing else on stdout)."""
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        assert lines, f"no JSON on stdout; stderr: {self.stderr}"
        return [json.loads(line) for line in lines]


def env(cache: Path) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), out.get("PYTHONPATH")]))
    out["FACENET_CACHE_DIR"] = str(cache)
    return out


def facenet(
    *args: str, cwd: Path | None = None, timeout: float = 300, wrap: tuple[str, ...] = ()
) -> Run:
    """`facenet ARGS` as a user runs it (this checkout's package), stdin closed; from the
    repository root unless `cwd` (the embedding cache never lands in the checkout); `wrap`:
    a command that runs it (e.g. `setpriv ...`)."""
    cache = Path(tempfile.gettempdir()) / "facenet-user-paths-cache" if cwd is None else None
    cwd = Path(cwd or REPO)
    done = subprocess.run(
        [*wrap, sys.executable, "-m", "facenet", *map(str, args)],
        cwd=cwd,
        env=env(cache or cwd / ".facenet-cache"),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def fenced_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def group_photo(path: Path, big: Path, small: Path) -> Path:
    """A 'group photo': `big` at full size beside `small` at 80%, so the most prominent face is
    `big`'s person."""
    a = Image.open(big).convert("RGB")
    b = Image.open(small).convert("RGB")
    b = b.resize((int(b.width * 0.8), int(b.height * 0.8)))
    canvas = Image.new("RGB", (a.width + b.width + 20, max(a.height, b.height)), (128, 128, 128))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width + 20, (canvas.height - b.height) // 2))
    canvas.save(path, quality=95)
    return path


def grey_photo(path: Path) -> Path:
    """A valid image with no face."""
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(gallery: Path, work: Path) -> Iterator[str]:
    """`facenet serve -g GALLERY` in a subprocess, as a user starts it; yields its URL once
    /api/v1/health answers, and stops it afterwards."""
    import httpx

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "facenet", "serve", "-g", str(gallery), "--port", str(port)],
        cwd=work,
        env=env(work / "cache"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if httpx.get(url + "/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "facenet serve did not come up"
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)

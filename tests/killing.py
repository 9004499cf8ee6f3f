"""Crash tests' one tool: run a command and SIGKILL it as soon as it has done some work."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def kill_when(
    command: list[str], ready: Callable[[], bool], what: str, timeout: float = 120, **popen
) -> int:
    """Start `command`, SIGKILL it once `ready()` holds (failing if it exits or stalls first);
    its return code (-SIGKILL when the kill landed)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f"{what} made no progress"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stderr.close()
    return process.returncode

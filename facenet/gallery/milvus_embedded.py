"""A Milvus server on this machine, without containers: the `milvus` PyPI package ("embedded
Milvus", 2.3.5: the C++/Go Milvus standalone server with its etcd and local storage inside),
started in a data folder and listening on 127.0.0.1.

Why: the tests and `benchmarks/gallery_search.py` run the gallery's Milvus backend against a
real server, the code path of a production deployment (Docker or Helm, docs/deploy.md), where
Milvus Lite cannot stand in (it is another implementation: pure Python, FLAT/IVF by faiss).
One such server per machine: a second one fails to start (its embedded etcd), which `start`
reports as an error rather than waiting. `python -m facenet.gallery.milvus_embedded DIR` runs
one in the foreground (the package's own `milvus-server --data DIR` does the same).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Settings every embedded server gets (overridable): segments of up to ~1M faces. Milvus seals
#: a segment at `maxSize * sealProportion` (512 MB * 0.23 by default: ~230k 128-d faces) and
#: later merges segments under half `maxSize` into one (compaction), then builds that one's
#: index again: a 1M gallery is searched as 4 HNSW graphs, then, after minutes of background
#: index building that slow every search meanwhile, as one. Sealing at 1M rows (1024 MB * 0.5)
#: gives the final layout at once, and a search visits one graph per million faces, not four
#: (docs/deploy.md has the measurements and the same settings for a Milvus server's milvus.yaml).
#: The query node's GC tuner caps Go's GC percentage at 200 (it overrides GOGC): every search
#: leaves ~0.6 MB of garbage, so a 10-15 ms collection ran every ~0.65 s and delayed the search
#: in flight; a ceiling of 1000 (~200 MB more heap) cut the 1M p99 from 7.4-8.8 to 6.3-7.1 ms.
SERVER_CONFIG = {
    "dataCoord.segment.maxSize": 1024,
    "dataCoord.segment.sealProportion": 0.5,
    "queryNode.gchelper.maximumGoGC": 1000,
}
#: Settings for a test server: writes visible to searches every 20 ms (200 by default) and the
#: query coordinator's loops every 100 ms (1000, 500), so creating and loading a collection
#: and enrol-then-identify take fractions of a second, not seconds. Not for production.
TEST_CONFIG = {
    "proxy.timeTickInterval": 20,
    "queryCoord.checkInterval": 100,
    "queryCoord.distPullInterval": 100,
}
#: Seconds to wait for a server to answer its health check (about 15 s on 2 busy cores).
START_TIMEOUT = 120.0


def template_keys(text: str) -> set[str]:
    """The dotted names of the settings a milvus.yaml text holds (two-space indents, as the
    `milvus` package's own rewriting of its template reads them)."""
    keys, path = set(), []
    for line in text.splitlines():
        match = re.match(r"^( *)([a-zA-Z0-9_]+):", line)
        if not match or line.lstrip().startswith("#"):
            continue
        path = path[: len(match.group(1)) // 2] + [match.group(2)]
        keys.add(".".join(path))
    return keys


class EmbeddedMilvus:
    """A Milvus standalone server process with its data in `folder`; `uri` is its address."""

    def __init__(
        self,
        folder: str | Path,
        cpus: Iterable[int] | None = None,
        env: Mapping[str, str] | None = None,
        **config: object,
    ):
        """`config`: milvus.yaml settings by dotted name over `SERVER_CONFIG`, e.g.
        `{"proxy.timeTickInterval": 50}` (how often writes become visible to searches, ms;
        200 by default). `cpus`: the CPUs the server may run on (all of its threads; its Go
        runtime and thread pools size themselves to them), e.g. `{1}` to keep it off the
        client's CPU; None: wherever the scheduler puts it. `env`: extra environment for the
        server process (e.g. GOMEMLIMIT). A setting the package's milvus.yaml template lacks
        (it rewrites only the keys it has, dropping others silently) goes to the server as
        its environment variable instead (`queryNode.gchelper.maximumGoGC` ->
        `QUERYNODE_GCHELPER_MAXIMUMGOGC`), which Milvus reads over its milvus.yaml."""
        from milvus import MilvusServer  # the `milvus` package: facenet-keras[milvus-server]

        self.folder = Path(folder)
        self.cpus = set(cpus) if cpus is not None else None
        self._server = MilvusServer(wait_for_started=False)
        self._server.set_base_dir(str(self.folder))
        known = template_keys(self._server.config.template_text)
        self.env: dict[str, str] = {}
        for key, value in {**SERVER_CONFIG, **config}.items():
            if key in known:
                self._server.config.set(key, value)
            else:
                self.env[key.upper().replace(".", "_")] = str(value)
        self.env.update(env or {})

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self._server.listen_port}"

    @property
    def pid(self) -> int | None:
        """The server process (for its resident memory), or None when stopped."""
        proc = self._server.server_proc
        return proc.pid if proc is not None else None

    def start(self, timeout: float = START_TIMEOUT) -> EmbeddedMilvus:
        """Start the server and wait until it is healthy; RuntimeError (with the log's path)
        if it exits or does not answer within `timeout` seconds."""
        self._launch()
        health = f"http://127.0.0.1:{self._server.webservice_port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.server_proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"Milvus exited at start; see {self.folder}/logs")
            try:
                with urllib.request.urlopen(health, timeout=2) as reply:
                    if b"OK" in reply.read():
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Milvus did not start in {timeout:.0f} s; see {self.folder}/logs")

    def _launch(self) -> None:
        """Start the process with `env` and on `cpus`: a child inherits the CPU mask of the
        thread that forks it, so this thread takes the server's mask for the fork only (the
        `milvus` package's Popen offers no hook; every thread the server starts inherits it)."""
        saved_env = {name: os.environ.get(name) for name in self.env}
        saved_cpus = os.sched_getaffinity(0)
        try:
            os.environ.update(self.env)
            if self.cpus is not None:
                os.sched_setaffinity(0, self.cpus)
            self._server.start()
        finally:
            if self.cpus is not None:
                os.sched_setaffinity(0, saved_cpus)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL: its graceful stop takes tens of seconds,
        and the data is flushed by then or rebuilt from SQLite by the gallery)."""
        self._server.stop()

    def __enter__(self) -> EmbeddedMilvus:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a server in the folder given until interrupted: exit 0 when stopped, 1 when it
    fails to start or exits by itself, 2 on a usage error (`-h` prints the usage)."""
    args = sys.argv[1:] if argv is None else argv
    usage = "usage: python -m facenet.gallery.milvus_embedded DATA_DIR"
    if args in (["-h"], ["--help"]):
        print(usage)
        return 0
    if len(args) != 1 or args[0].startswith("-"):  # not a server in a folder named `--help`
        print(usage, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the server on kill too
    server = EmbeddedMilvus(args[0])
    try:
        server.start()
        print(f"Milvus {server.uri} (pid {server.pid}, data {server.folder}); Ctrl+C stops it")
        while server._server.server_proc.poll() is None:
            time.sleep(1)
        print(f"error: Milvus exited; see {server.folder}/logs", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

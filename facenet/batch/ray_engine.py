"""The Ray engine: a Ray Data pipeline whose actors each hold one loaded model.

paths -> `map_batches(_Embedder, concurrency=workers)`: each actor loads the model once, then
per batch decodes, detects, aligns and embeds (the same `embed_batch` as the local engine) and
writes its own Parquet part atomically, so the data never funnels through the driver; the
driver only receives a per-image summary. With no address Ray starts inside this machine
(num_cpus = workers, a small object store, no dashboard); with `auto` or `ray://host:10001`
the job runs on that cluster, whose nodes must all see the input paths and the output folder
(a shared file system, or URIs for the inputs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import pyarrow as pa

from ..errors import FaceNetError
from ..runtime.common import available_cpus
from ..text import plural
from .records import embed_batch, summarise, write_part

log = logging.getLogger(__name__)

#: the local object store: enough for batches of paths and summaries, small beside the models
OBJECT_STORE_BYTES = 128 * 2**20
RAY_CLIENT_PORT = 10001


class _Embedder:
    """A Ray actor: the model is loaded once, in the constructor."""

    def __init__(self, model: str | None, out: str, src_folder: str | None = None):
        from ..api import FaceNet

        self.model = FaceNet.load(model)
        self.out = out
        self.src_folder = src_folder

    def __call__(self, batch: dict) -> pa.Table:
        table = embed_batch(self.model, [str(p) for p in batch["path"]], self.src_folder)
        write_part(table, self.out)
        return summarise(table)


def run_ray(
    paths: Sequence[str],
    out: str,
    model: str | None,
    batch_size: int,
    workers: int,
    address: str | None,
    on_batch: Callable[[pa.Table], None],
    src_folder: str | None = None,
    *,
    warn: bool = True,
) -> None:
    """Embed `paths` with `workers` actors of one CPU each (one inference thread each unless
    FACENET_NUM_THREADS says otherwise), writing parts into `out`; `on_batch` gets each
    batch's per-image summary as it arrives. More workers than CPUs: as many as CPUs, with a
    warning when `warn` (see `cap_workers`)."""
    import ray

    started = _connect(ray, address, workers)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        where = "in the Ray cluster" if address else "here"
        workers = cap_workers(workers, cpus, warn=warn, where=where)
        table = pa.table({"path": pa.array(list(paths), pa.string())})
        # one block per batch: the batches are the local engine's, and every actor gets work
        blocks = [table.slice(i, batch_size) for i in range(0, len(paths), batch_size)]
        threads = os.environ.get("FACENET_NUM_THREADS", "1")
        results = ray.data.from_arrow(blocks).map_batches(
            _Embedder,
            fn_constructor_kwargs={"model": model, "out": out, "src_folder": src_folder},
            batch_size=batch_size,
            batch_format="pyarrow",
            # an actor more than there are batches would load the model for nothing
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(blocks))),
            num_cpus=1,
            runtime_env={"env_vars": {"FACENET_NUM_THREADS": threads}},
        )
        for summary in results.iter_batches(batch_size=None, batch_format="pyarrow"):
            on_batch(summary)
    except ray.exceptions.RayError as exc:  # an actor died or raised: the parts so far stay
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FaceNetError(f"the Ray job failed ({first}); run again to resume") from None
    finally:
        if started:
            ray.shutdown()


def _connect(ray, address: str | None, workers: int) -> bool:
    """Join the cluster at `address`, or start Ray inside this process; True when started
    here (and so to be shut down)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _probe(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(
                num_cpus=min(workers, available_cpus()),
                object_store_memory=OBJECT_STORE_BYTES,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
    except Exception as exc:  # Ray raises many kinds; each means no cluster to run on
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FaceNetError(f"cannot start or reach Ray ({address or 'local'}): {first}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return True


def cap_workers(workers: int, cpus: int, *, warn: bool, where: str = "here") -> int:
    """The actors to start: `workers`, or `cpus` (the CPUs Ray has: this machine's, or the
    cluster's) when fewer: an actor takes one CPU, and more actors than CPUs would wait for
    ever or crowd the cores each with its own model. With `warn` (a number the user gave)
    the cap is a warning line; the default is capped silently."""
    if 1 <= cpus < workers:
        if warn:
            log.warning("--workers %d: only %s %s; starting %s", workers, plural(cpus, "CPU"),
                        where, plural(cpus, "Ray actor"))  # fmt: skip
        return cpus
    return workers


def _probe(address: str | None) -> None:
    """Fail in seconds, not after Ray's retries (30 s for Ray Client), when HOST:PORT or
    ray://HOST:PORT does not answer."""
    given = address
    if address and address.startswith("ray://"):
        address = address[len("ray://") :].split("/")[0]
        if not address.rpartition(":")[2].isdigit():
            address += f":{RAY_CLIENT_PORT}"  # Ray Client's default
    if not address or address == "auto" or "://" in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise FaceNetError(f"cannot reach Ray at {given}: {exc}") from None

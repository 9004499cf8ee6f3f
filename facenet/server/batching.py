"""How concurrent requests share the model: detection side by side, embedding merged.

Why: profiled at 8 concurrent clients (docs/performance.md), the server spent its whole wall
time inside one model lock: one request's detection (single-threaded on small photos) and its
one or two faces' embedding at a time, about half of one core busy. Now

- detection runs in up to `slots` requests at once (`SharedDetector`; one per core for the
  bundled MTCNN, whose sessions run concurrently), each on its own photos: MTCNN on a small
  photo is single-threaded, so two run on two cores. Merging the photos of concurrent requests
  into one detector call was measured too, and was slower (about 6 photos a call took 49 ms a
  photo against 17 ms one by one: its large mosaic ran out of the caches, see
  `detect/mosaic.py`);
- embedding calls run one at a time (the embedder may not be thread-safe: a LiteRT
  interpreter is not) and are merged (`Coalescer`): the crops of requests that reach the
  embedder while it is busy go through its next call together.

The Coalescer has no thread of its own. A caller queues its items; if no call is running it
runs one itself with everything queued (up to a budget), hands each caller its results, then
passes the turn to the first caller still waiting, which runs the next call. Under light load a
call holds one request's items and nothing waits; results are the unmerged call's (the network
sees the same crops; only floating-point summation order may differ, below 1e-6).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..types import Face


class _Job:
    __slots__ = ("error", "items", "lead", "result", "wake")

    def __init__(self, items: list):
        self.items = items
        self.result: list | None = None
        self.error: BaseException | None = None
        self.lead = False  # woken to run the next call rather than with a result
        self.wake = threading.Event()


class Coalescer:
    """`run(items) -> results` (one result per item, in order) shared by concurrent callers.

    `budget` bounds one call: jobs are taken in arrival order while their summed `weight`
    stays within it (the first job always goes, whatever its weight)."""

    def __init__(
        self,
        run: Callable[[list], Sequence],
        budget: float,
        weight: Callable[[Any], float] = lambda item: 1,
    ):
        self._run = run
        self._budget = budget
        self._weight = weight
        self._lock = threading.Lock()
        self._queue: collections.deque[_Job] = collections.deque()
        self._busy = False
        #: (calls, items) run so far: how much merging happened (benchmarks read it).
        self.calls = self.items = 0

    def __call__(self, items: Sequence) -> list:
        job = _Job(list(items))
        if not job.items:
            return []
        with self._lock:
            self._queue.append(job)
            lead = not self._busy
            self._busy = True
        if not lead:
            job.wake.wait()
            if not job.lead:
                return _outcome(job)
        self._run_next()
        return _outcome(job)

    def _run_next(self) -> None:
        """Run one call over the queue's head (which holds this caller's job), then hand over."""
        with self._lock:
            jobs = [self._queue.popleft()]
            total = sum(self._weight(i) for i in jobs[0].items)
            while self._queue:
                cost = sum(self._weight(i) for i in self._queue[0].items)
                if total + cost > self._budget:
                    break
                total += cost
                jobs.append(self._queue.popleft())
        try:
            self._execute(jobs)
        finally:
            with self._lock:
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.wake.set()
                else:
                    self._busy = False

    def _execute(self, jobs: list[_Job]) -> None:
        flat = [item for job in jobs for item in job.items]
        try:
            results = list(self._run(flat))
        except BaseException as exc:
            if len(jobs) == 1:
                jobs[0].error = exc
            else:  # whose input failed: each job again on its own, so only it gets the error
                for job in jobs:
                    self._execute([job])
                return
        else:
            start = 0
            for job in jobs:
                job.result = results[start : start + len(job.items)]
                start += len(job.items)
        self.calls += 1
        self.items += len(flat)
        for job in jobs:
            job.wake.set()


def _outcome(job: _Job) -> list:
    if job.error is not None:
        raise job.error
    return job.result


class SharedDetector:
    """A detector that up to `slots` threads run at once, each on its own request's photos
    (sessions are shared; ONNX Runtime runs them concurrently). Other attributes are the
    wrapped detector's."""

    def __init__(self, detector, slots: int):
        self.detector = detector
        self._slots = threading.Semaphore(slots)

    def detect(self, image: np.ndarray) -> list[Face]:
        with self._slots:
            return self.detector.detect(image)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        with self._slots:
            return self.detector.detect_batch(images)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["detector"], name)


class BatchedEmbedder:
    """An embedder (crops (n, S, S, 3) -> embeddings (n, D)) whose calls from concurrent
    threads are merged, at most `max_crops` crops a call."""

    def __init__(self, embedder, max_crops: int = 16):
        self.embedder = embedder
        self.runtime = getattr(embedder, "runtime", "?")
        self._merged = Coalescer(self._embed_rows, max_crops)

    def _embed_rows(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.embedder(np.stack(crops)))

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        rows = self._merged(list(crops))
        return np.stack(rows) if rows else self.embedder(crops)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["embedder"], name)


def _pixels(image: np.ndarray) -> float:
    shape = getattr(image, "shape", None)
    return float(shape[0] * shape[1]) if shape is not None and len(shape) >= 2 else 1.0

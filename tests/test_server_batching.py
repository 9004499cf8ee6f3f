"""The server's sharing of the model between concurrent requests (facenet/server/batching.py):
merged embedder calls give every caller its own rows, in order; a failing input fails only its
own caller; at most `slots` detections run at once."""

from __future__ import annotations

import threading
import time

import numpy as np

from facenet.server.batching import BatchedEmbedder, Coalescer, SharedDetector


def _concurrently(function, args: list) -> list:
    results = [None] * len(args)
    start = threading.Barrier(len(args))

    def call(i):
        start.wait()
        results[i] = function(args[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_calls_are_merged_and_each_gets_its_own_results():
    calls = []

    def slow_square(items):
        calls.append(list(items))
        time.sleep(0.05)  # callers arriving meanwhile queue up for the next call
        return [x * x for x in items]

    merged = Coalescer(slow_square, budget=100)
    inputs = [[i, i + 100] for i in range(8)]
    results = _concurrently(merged, inputs)
    assert results == [[x * x for x in items] for items in inputs]
    assert len(calls) < 8 and merged.items == 16  # some calls carried several callers' items
    assert sorted(x for call in calls for x in call) == sorted(x for i in inputs for x in i)


def test_a_budget_bounds_one_call():
    calls = []

    def record(items):
        calls.append(len(items))
        time.sleep(0.02)
        return items

    merged = Coalescer(record, budget=4)
    _concurrently(merged, [[1, 2, 3]] * 6)
    assert max(calls) <= 4 or all(c == 3 for c in calls)
    assert sum(calls) == 18


def test_a_failing_input_fails_only_its_caller():
    def no_negatives(items):
        time.sleep(0.02)
        if any(x < 0 for x in items):
            raise ValueError("negative")
        return items

    merged = Coalescer(no_negatives, budget=100)

    def call(items):
        try:
            return merged(items)
        except ValueError as exc:
            return str(exc)

    outcomes = _concurrently(call, [[1], [-1], [2], [3]])
    assert outcomes == [[1], "negative", [2], [3]]
    assert merged([]) == []


def test_batched_embedder_matches_the_embedder_row_for_row():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(12, 4)).astype(np.float32)

    class Linear:
        runtime = "toy"

        def __call__(self, crops):
            time.sleep(0.01)
            return crops.reshape(len(crops), 12).astype(np.float32) @ weights

    embedder = BatchedEmbedder(Linear(), max_crops=8)
    batches = [rng.integers(0, 255, (n, 2, 2, 3), dtype=np.uint8) for n in (1, 2, 3, 2, 1)]
    results = _concurrently(embedder, batches)
    for crops, out in zip(batches, results, strict=True):
        np.testing.assert_allclose(out, Linear()(crops), rtol=1e-6)
    assert embedder.runtime == "toy"
    assert embedder(np.zeros((0, 2, 2, 3), np.uint8)).shape == (0, 4)


def test_shared_detector_runs_at_most_slots_at_once():
    running, peak, lock = [0], [0], threading.Lock()

    class Toy:
        min_face_size = 20

        def detect(self, image):
            return self.detect_batch([image])[0]

        def detect_batch(self, images):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            time.sleep(0.03)
            with lock:
                running[0] -= 1
            return [[] for _ in images]

    shared = SharedDetector(Toy(), slots=2)
    assert _concurrently(shared.detect, [np.zeros((4, 4, 3), np.uint8)] * 6) == [[]] * 6
    assert peak[0] == 2 and shared.min_face_size == 20


def test_idle_trim_releases_only_when_no_request_is_running():
    from facenet.server.memory import IdleTrim

    released = threading.Event()
    trim = IdleTrim(delay=0.05, release=released.set)
    trim.enter()
    trim.enter()
    trim.leave()
    time.sleep(0.1)
    assert not released.is_set()  # one request still in the model
    trim.leave()
    assert released.wait(2)

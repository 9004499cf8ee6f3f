"""A small run of benchmarks/server_load.py: 4 concurrent clients x 5 verify/identify requests
against a real uvicorn server; no failed request, and the gallery intact afterwards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .conftest import LFW_DIR

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "server_load.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("server_load", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_small_load_run(small_model, tmp_path):
    if not LFW_DIR.is_dir():
        pytest.skip(f"LFW data not available at {LFW_DIR}")
    bench = load_benchmark()
    report = bench.run_load(small_model, LFW_DIR, clients=4, requests=5, people=2, workdir=tmp_path)
    assert report["failed"] == 0, report["failures"]
    assert report["requests"] == 20
    assert report["latency_ms"]["verify"]["n"] == 10 and report["latency_ms"]["identify"]["n"] == 10
    assert report["gallery_intact"], report
    assert [faces for _, faces in report["gallery_before"]] == [2, 2]
    assert report["throughput_rps"] > 0

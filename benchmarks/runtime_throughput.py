"""Embedding throughput (images/s) of MobileNet-160 FaceNet across runtimes, in one process.

Rows: the Keras compiled graph; a raw ONNX Runtime session; `FaceNet.embed` over ONNX Runtime;
a raw LiteRT interpreter; `FaceNet.embed` over LiteRT; and the int8 (QDQ) ONNX export raw and
through the API. Raw rows use the same threads and options as the package. Runs are
interleaved round-robin so that load from other processes hits every row alike; each round
times a runner for at least `--min-seconds` (many calls at batch 1, so one descheduled call
does not decide a round); medians are reported, with the ratio API / raw, and the CPU time
(process time, all threads) per batch with its ratio raw / API (above 1: the API spends less),
which depends less on the other processes of a shared machine.

    python benchmarks/runtime_throughput.py [--repeats 15] [--alpha 1.0] [--no-int8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument(
        "--min-seconds", type=float, default=0.3,
        help="each round times a runner for at least this long (many calls at batch 1)",
    )  # fmt: skip
    args = parser.parse_args()

    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    from facenet import FaceNet, export
    from facenet.metadata import ModelInfo
    from facenet.models import build_facenet
    from facenet.models.embedder import KerasEmbedder
    from facenet.quantize import quantize_onnx
    from facenet.runtime import num_threads
    from facenet.runtime.onnx_runtime import session_options

    size, threads = args.size, num_threads()
    info = ModelInfo(input_size=size, alpha=args.alpha, name="bench")
    network = build_facenet("mobilenet", (size, size, 3), 128, alpha=args.alpha)
    tmp = Path(tempfile.mkdtemp(prefix="facenet-bench-"))
    onnx_path = export.export_onnx(network, info, tmp / "m.onnx")
    tflite_path = export.export_tflite(network, info, tmp / "m.tflite")
    rng = np.random.default_rng(0)
    runners = {"keras compiled graph": KerasEmbedder(network, info)}

    def add_onnx(label: str, path) -> None:
        """The raw ONNX Runtime session and FaceNet.embed over the same file."""
        session = ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
        runners[f"raw {label}"] = lambda x: session.run(None, {"images": x})[0]
        api = FaceNet.load(path)
        runners[f"FaceNet.embed {label}"] = lambda x: api.embed(x, detect=False, batch_size=len(x))

    add_onnx("onnxruntime", onnx_path)

    interpreter = Interpreter(model_path=str(tflite_path), num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    out_index = interpreter.get_output_details()[0]["index"]
    state = {"shape": None}

    def raw_litert(x):
        if state["shape"] != x.shape:
            interpreter.resize_tensor_input(index, x.shape)
            interpreter.allocate_tensors()
            state["shape"] = x.shape
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    runners["raw litert"] = raw_litert
    api_litert = FaceNet.load(tflite_path)
    runners["FaceNet.embed litert"] = lambda x: api_litert.embed(x, detect=False, batch_size=len(x))

    if not args.no_int8:
        calibration = rng.integers(0, 256, (32, size, size, 3), dtype=np.uint8)
        add_onnx("onnxruntime int8", quantize_onnx(onnx_path, tmp / "m.int8.onnx", calibration))

    print(f"MobileNet alpha {args.alpha:g}, {size} px, {threads} threads, {args.repeats} rounds, "
          f"onnxruntime {ort.__version__}")  # fmt: skip
    for batch in args.batches:
        crops = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        rates: dict[str, list[float]] = {name: [] for name in runners}
        cpu: dict[str, list[float]] = {name: [] for name in runners}
        for run in runners.values():  # warm up (allocation, graph tracing)
            run(crops), run(crops)
        for _ in range(args.repeats):
            for name, run in runners.items():
                calls, start, used = 0, time.perf_counter(), time.process_time()
                while (elapsed := time.perf_counter() - start) < args.min_seconds or not calls:
                    run(crops)
                    calls += 1
                rates[name].append(batch * calls / elapsed)
                cpu[name].append(1000 * (time.process_time() - used) / calls)
        rate = {name: statistics.median(r) for name, r in rates.items()}
        cpu_ms = {name: statistics.median(c) for name, c in cpu.items()}
        print(f"\nbatch {batch}")
        print(f"| {'runner':34} | {'images/s':>9} | {'ms/batch':>9} | API/raw | "
              f"CPU ms/batch | API/raw CPU |")  # fmt: skip
        print(f"|{'-' * 36}|{'-' * 11}|{'-' * 11}|---------|--------------|-------------|")
        for name, value in rate.items():
            raw = _raw_of(name)
            ratio = f"{value / rate[raw]:.2f}" if raw in rate else ""
            cpu_ratio = f"{cpu_ms[raw] / cpu_ms[name]:.2f}" if raw in rate else ""
            print(f"| {name:34} | {value:9.1f} | {1000 * batch / value:9.2f} | {ratio:>7} | "
                  f"{cpu_ms[name]:12.2f} | {cpu_ratio:>11} |")  # fmt: skip
        print(
            f"FaceNet.embed own cost (no-op embedder): {1000 * _api_overhead(crops):.3f} ms/batch"
        )


def _api_overhead(crops: np.ndarray, rounds: int = 200) -> float:
    """Median seconds `FaceNet.embed` adds around the embedder, for one batch of `crops`."""
    from facenet import FaceNet
    from facenet.metadata import ModelInfo

    class Null:
        runtime = "null"

        def __call__(self, x):
            return np.zeros((len(x), 128), np.float32)

    model = FaceNet(Null(), ModelInfo(input_size=crops.shape[1]), model_id="null")
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        model.embed(crops, detect=False, batch_size=len(crops))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _raw_of(name: str) -> str:
    if not name.startswith("FaceNet.embed "):
        return ""
    return "raw " + name.removeprefix("FaceNet.embed ")


if __name__ == "__main__":
    main()

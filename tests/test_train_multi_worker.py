"""`--strategy multi_worker`: two local TF workers (TF_CONFIG on 127.0.0.1) train in step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from .test_train import CELEBA, SMALL, needs_data  # noqa: E402

#: One worker: TF_CONFIG comes from the environment; the network `train` builds is kept (by
#: wrapping build_facenet) so that every worker, the non-chief too, can dump its weights.
WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from facenet.train import TrainConfig, trainer
    built = []
    def keep(*args, **kwargs):
        built.append(trainer_build(*args, **kwargs))
        return built[-1]
    trainer_build, trainer.build_facenet = trainer.build_facenet, keep
    result = trainer.train(TrainConfig(**json.loads(sys.argv[1])))
    np.savez(sys.argv[2], **{v.path.replace("/", "."): np.asarray(v) for v in built[0].weights})
    print("RESULT", json.dumps({"epochs": result.epochs_done,
                               "loss": [r["loss"] for r in result.history]}))
    """
)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@needs_data
def test_two_workers_finish_with_identical_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs = []
    for index in range(2):
        config = dict(SMALL, data=str(CELEBA), out=str(tmp_path / f"run{index}"), epochs=1,
                      steps_per_epoch=3, val_pairs="none", strategy="multi_worker")  # fmt: skip
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="2")
        args = [sys.executable, "-c", WORKER, json.dumps(config), str(tmp_path / f"w{index}.npz")]
        procs.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    results = [
        json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
        for out, _ in outputs
    ]
    assert [r["epochs"] for r in results] == [1, 1]
    assert results[0]["loss"] == results[1]["loss"] and np.isfinite(results[0]["loss"]).all()
    first, second = (np.load(tmp_path / f"w{i}.npz") for i in range(2))
    assert len(first.files) == len(second.files) > 0
    differ = [k for k in first.files if not np.array_equal(first[k], second[k])]
    assert differ == [], (len(differ), len(first.files), differ[:20])
    assert (tmp_path / "run0" / "model.keras").is_file()  # worker 0 is the chief: it writes
    assert not (Path(tmp_path / "run1") / "model.keras").exists()

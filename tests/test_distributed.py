"""``train --distributed`` with two real CPU processes (gloo collectives, a local coordinator).

Two one-device processes must train exactly like one process with two devices, agree on one run folder
even when launched with different ``--out``, and keep stdout to the JSON document.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from train_data_helpers import write_synthetic_npz  # noqa: E402

TRAIN = ["train", "--db", "syn.npz", "--model", "c3ae", "--epochs", "2", "--batch-size", "32", "--json", "-q"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    env.update(JAX_PLATFORMS="cpu", **extra)
    return env


def _launch(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agecompact", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[dict, str]:
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"process hung:\n{err[-2000:]}")
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out), err  # stdout holds the JSON document and nothing else


def _epochs(run: Path) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r[k] for r in rows for k in ("train_loss", "train_mae", "val_mae", "val_rmse")]


def test_two_processes_train_like_two_devices(tmp_path):
    write_synthetic_npz(tmp_path / "syn.npz", 128, seed=1)
    single = _launch([*TRAIN, "--out", "single"], tmp_path,
                     _env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    port = _free_port()
    procs = [_launch([*TRAIN, "--distributed", "--out", f"multi{i}"], tmp_path,
                     _env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                          JAX_PROCESS_ID=str(i)))
             for i in range(2)]
    (s, _), (m0, _), (m1, err1) = _finish(single), _finish(procs[0]), _finish(procs[1])

    # process 1 was told multi1 but follows process 0: orbax's multi-host checkpoints share one folder
    assert Path(m0["run"]).name == Path(m1["run"]).name == "multi0"
    assert not (tmp_path / "multi1").exists() and "using process 0's run folder" in err1
    assert s["devices"] == m0["devices"] == 2
    assert json.loads((tmp_path / "multi0" / "env.json").read_text())["process_count"] == 2
    assert (tmp_path / "multi0" / "best.msgpack").is_file()
    assert len(_epochs(tmp_path / "multi0")) == 8
    assert _epochs(tmp_path / "multi0") == pytest.approx(_epochs(tmp_path / "single"), rel=1e-5)

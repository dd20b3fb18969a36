"""Multi-process data parallelism on JAX's own distributed runtime (CPU collectives: gloo).

Two real processes on localhost (`dc_multiprocess.py`) train the toy objective, each reading only
its block of every global batch; the result equals one process on the same global batches. A
process killed mid-run makes the other exit with an error naming the last checkpoint (no hang),
and resuming — with two processes or with one — ends where the uninterrupted run ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
STEPS = 8
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
ENV.pop("XLA_FLAGS", None)  # one CPU device per process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(run_dir: Path, nproc: int, steps: int = STEPS, kill_at: int | None = None):
    port = str(_free_port())
    extra = [] if kill_at is None else [str(kill_at)]
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "dc_multiprocess.py"),
                port,
                str(nproc),
                str(pid),
                str(run_dir),
                str(steps),
                *extra,
            ],
            env=ENV,
            cwd=HERE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for pid in range(nproc)
    ]


def _wait(procs, timeout: float = 150) -> list[tuple[int, str]]:
    out = []
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            text, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a process hung past the timeout") from None
        out.append((p.returncode, text))
    return out


def _final(run_dir: Path) -> list[np.ndarray]:
    with np.load(run_dir / "final.npz") as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def _close(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-6, atol=1e-7)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run = tmp_path_factory.mktemp("mp") / "one"
    ((rc, text),) = _wait(_launch(run, 1))
    assert rc == 0, text[-3000:]
    return _final(run)


def test_two_processes_equal_one(tmp_path, reference):
    run = tmp_path / "two"
    for rc, text in _wait(_launch(run, 2)):
        assert rc == 0, text[-3000:]
    _close(_final(run), reference)
    assert not np.allclose(reference[0], 0)  # trained
    info = json.loads((run / "train_config.json").read_text())
    assert info["devices"] == {"data": 2, "processes": 2}
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # one writer: every step logged once


@pytest.mark.parametrize("resume_with", [2, 1])
def test_killed_process_stops_the_other_then_resume_matches(tmp_path, reference, resume_with):
    run = tmp_path / "killed"
    t0 = time.monotonic()
    (rc0, out0), (rc1, out1) = _wait(_launch(run, 2, kill_at=5), timeout=120)
    assert rc1 == -9, out1[-2000:]
    assert rc0 == 3, out0[-3000:]  # the survivor raised, it did not hang
    err = next(line for line in out0.splitlines() if line.startswith("ERROR: "))
    assert "process 0 of 2 stopped at step" in err and "last complete checkpoint is step 4" in err
    print(f"survivor exited after {time.monotonic() - t0:.1f}s: {err}")
    assert not (run / "final.npz").exists()
    for rc, text in _wait(_launch(run, resume_with)):
        assert rc == 0, text[-3000:]
    _close(_final(run), reference)
    info = json.loads((run / "train_config.json").read_text())
    assert info["resumed_from_step"] == 4 and info["devices"]["processes"] == resume_with

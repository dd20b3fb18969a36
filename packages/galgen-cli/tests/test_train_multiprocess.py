"""Multi-process `galgen train` on JAX's distributed runtime: two real CLI processes on localhost
(CPU collectives: gloo), each reading only its block of every global batch.

The two-process run equals the one-process run (same global batches, seed and steps) to float
summation order; killing one process makes the other exit with one line naming the last
checkpoint (no hang); `--resume` — here with one process, so across process counts — then ends
where the uninterrupted run ends. A tiny one-level NCSN++ (4 channels) at 16 px keeps the
compiles short; the JAX compilation cache is shared by the module's runs.

The XLA programs for one and two processes differ (per-device batch 4 vs 2), so losses agree to
~1e-7, not bitwise. With Adam's default eps=1e-8 a parameter whose gradient is ~0 moves by
±lr depending on the sign of that noise (0.1 % of this net's weights then differ by up to 3e-4
after 20 steps while 99 % agree to 6e-8); ``train.eps=1e-4`` makes the update a smooth function
of the gradient, so the whole parameter set can be compared tightly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

STEPS = 60
OPTS = [
    "--preset", "ddpm-tiny",
    "--set", f"train.steps={STEPS}",
    "--set", "train.batch_size=4",
    "--set", "train.checkpoint_every=20",
    "--set", "train.keep_checkpoints=10",
    "--set", "train.log_every=5",
    "--set", "train.progress=false",
    "--set", "backbone.preset=pmf-tiny",
    "--set", "backbone.ch=4",
    "--set", "backbone.ch_mult=[1]",
    "--set", "backbone.attn_levels=0",
    "--set", "backbone.freq_dim=8",
    "--set", "train.eps=1e-4",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import galgen

    root = tmp_path_factory.mktemp("multiprocess")
    galgen.synth(root / "data", n_train=32, n_val=0, n_test=0, size=16, seed=0, workers=1)
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(root / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    cli = str(Path(sys.executable).parent / "galgen")
    return root, env, cli


def _launch(setup, run: Path, nproc: int, resume: bool = False) -> list[subprocess.Popen]:
    root, env, cli = setup
    cmd = [cli, "train", "ddpm", "--data", str(root / "data"), "--out", str(run)]
    cmd += ["--resume"] if resume else OPTS  # a resumed run reads its settings from config.json
    if nproc == 1:
        return [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)]
    port = _free_port()
    dist = ["--coordinator", f"localhost:{port}", "--num-processes", str(nproc)]
    dist += ["--heartbeat-timeout", "15"]
    return [
        subprocess.Popen(
            [*cmd, *dist, "--process-id", str(i)], env=env, stderr=subprocess.PIPE, text=True
        )
        for i in range(nproc)
    ]


def _wait(procs, timeout: float = 240) -> list[tuple[int, str]]:
    deadline, out = time.monotonic() + timeout, []
    for p in procs:
        try:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a process hung past the timeout") from None
        out.append((p.returncode, err))
    return out


def _leaves(run: Path, step: int) -> list[np.ndarray]:
    import diffusion_core as dc
    import jax

    state = dc.load_checkpoint(run, step)
    return [np.asarray(x) for x in jax.tree.leaves((state.params, state.ema_params))]


def _close(a: Path, b: Path, step: int, rtol: float) -> None:
    for x, y in zip(_leaves(a, step), _leaves(b, step), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * 1e-2)


@pytest.fixture(scope="module")
def runs(setup):
    """The one-process reference and the two-process run, launched together (3 processes)."""
    root = setup[0]
    one, two = root / "one", root / "two"
    results = _wait(_launch(setup, one, 1) + _launch(setup, two, 2))
    for rc, err in results:
        assert rc == 0, err[-3000:]
    assert "trained ddpm to step" in results[1][1] and "trained" not in results[2][1]
    return one, two


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_equal_one(runs):
    one, two = runs
    for a, b in zip(_metrics(one), _metrics(two), strict=True):
        assert a["step"] == b["step"]
        for key in ("loss", "grad_norm", "mse"):
            assert a[key] == pytest.approx(b[key], rel=1e-5), (a["step"], key)
    _close(one, two, 20, rtol=1e-5)
    _close(one, two, STEPS, rtol=1e-5)
    cfg = json.loads((two / "config.json").read_text())
    assert cfg["environment"]["n_processes"] == 2 and cfg["environment"]["n_devices"] == 2
    info = json.loads((two / "train_config.json").read_text())
    assert info["devices"] == {"data": 2, "processes": 2}
    steps = [json.loads(x)["step"] for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(5, STEPS + 1, 5))  # one writer: each record once


def test_killed_process_stops_the_other_and_resume_with_one_process_matches(setup, runs):
    one, _ = runs
    run = setup[0] / "killed"
    procs = _launch(setup, run, 2)
    ck = run / "checkpoints"
    while procs[1].poll() is None and not (ck / "20").is_dir():
        time.sleep(0.005)
    procs[1].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    (rc0, err0), (rc1, err1) = _wait(procs, timeout=120)
    waited = time.monotonic() - t0
    assert rc1 == -signal.SIGKILL, (
        f"process 1 ended with {rc1} before the kill\n--- process 0 ({rc0}):\n"
        f"{err0[-3000:]}\n--- process 1:\n{err1[-3000:]}"
    )
    assert rc0 == 1, err0[-3000:]
    msg = err0.strip().splitlines()[-1]
    assert msg.startswith("error: process 0 of 2 stopped at step"), err0[-3000:]
    assert "relaunch every process with --resume" in msg
    print(f"survivor exited {waited:.1f}s after the kill: {msg}")
    import diffusion_core as dc

    last = dc.latest_step(run)
    assert last is not None and 20 <= last < STEPS
    assert f"the last complete checkpoint is step {last} in" in msg
    ((rc, err),) = _wait(_launch(setup, run, 1, resume=True))
    assert rc == 0, err[-3000:]
    _close(one, run, STEPS, rtol=1e-5)
    info = json.loads((run / "train_config.json").read_text())
    assert info["resumed_from_step"] == last and info["devices"]["processes"] == 1


@pytest.mark.parametrize(
    ("flags", "culprit"),
    [
        (["--num-processes", "2", "--process-id", "0"], "needs --coordinator too"),
        (["--coordinator", "localhost:1", "--num-processes", "2"], "needs --process-id too"),
        (
            ["--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2"],
            "--process-id 2: expected 0 <= id < --num-processes 2",
        ),
        (
            ["--coordinator", "nohost", "--num-processes", "2", "--process-id", "0"],
            "--coordinator 'nohost': expected HOST:PORT",
        ),
        (["--num-processes", "0"], "--num-processes 0: expected at least 1"),
    ],
)
def test_bad_process_flags_are_one_line_and_write_nothing(tmp_path, flags, culprit):
    from galgen_cli.cli import app
    from typer.testing import CliRunner

    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["train", "ddpm", "--data", str(tmp_path), "--out", str(out), *flags]
    )
    assert res.exit_code == 1 and culprit in res.output, res.output
    assert not out.exists()

"""Crash safety of `galgen train` (#18): SIGKILL a real run at random points, then `--resume`.

The real CLI, loader and network (ddpm-tiny on 16-pixel synthetic data) in a subprocess; a
checkpoint every step, so many kills land while one is being written. After every kill each
checkpoint on disk must load and be finite (a kill while old checkpoints were pruned used to
leave a half-deleted step), and the resumed run must end bitwise equal to an uninterrupted one. A persistent JAX compilation cache keeps the restarts cheap (the compiled
program is the same, so it cannot change the numbers).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

STEPS = 40  # room for 10 kills even when several steps pass before one lands
#: 10 kills, as the issue asks: each restart costs ~17 s on one core after the first (cold)
#: compile of ~2.5 min (~40 s and ~3 min on a loaded machine); GALGEN_CRASH_KILLS=N to change
KILLS = int(os.environ.get("GALGEN_CRASH_KILLS", "10"))
OPTS = [
    "--set", f"train.steps={STEPS}",
    "--set", "train.batch_size=4",
    "--set", "train.checkpoint_every=1",
    "--set", "train.log_every=1",
    "--set", "train.progress=false",
]  # fmt: skip


def _steps_on_disk(run: Path) -> list[int]:
    ck = run / "checkpoints"
    return sorted(int(p.name) for p in ck.iterdir() if p.name.isdigit()) if ck.is_dir() else []


def _leaves(tree) -> list[np.ndarray]:
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _check_every_checkpoint(run: Path) -> None:
    import diffusion_core as dc

    for step in _steps_on_disk(run):
        state = dc.load_checkpoint(run, step)  # raises if a file is torn
        assert state.step == step
        for name in ("params", "ema_params", "opt_state"):
            leaves = _leaves(getattr(state, name))
            assert leaves and all(np.isfinite(x).all() for x in leaves), (step, name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import galgen

    root = tmp_path_factory.mktemp("crash")
    galgen.synth(root / "data", n_train=24, n_val=0, n_test=0, size=16, seed=0, workers=1)
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(root / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    cli = str(Path(sys.executable).parent / "galgen")
    return root, env, cli


def _cmd(cli: str, root: Path, run: Path, resume: bool) -> list[str]:
    cmd = [cli, "train", "ddpm", "--preset", "ddpm-tiny", "--data", str(root / "data")]
    cmd += ["--out", str(run), *OPTS]
    return cmd + (["--resume"] if resume else [])


def test_sigkill_at_random_points_then_resume_is_bitwise_exact(setup):
    import diffusion_core as dc

    root, env, cli = setup
    ref = root / "ref"
    done = subprocess.run(_cmd(cli, root, ref, False), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    run, rng = root / "killed", random.Random(18)
    kills = mid_write = 0
    while kills < KILLS:
        before = max(_steps_on_disk(run), default=0)
        log = open(root / f"stderr-{kills}.txt", "w")
        proc = subprocess.Popen(
            _cmd(cli, root, run, (run / "config.json").exists()), env=env, stderr=log
        )
        # let it make progress (a new checkpoint), then kill after a random delay
        while proc.poll() is None and max(_steps_on_disk(run), default=0) <= before:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
        kills += 1
        mid_write += any("tmp" in p.name for p in (run / "checkpoints").iterdir())
        _check_every_checkpoint(run)
    assert kills == KILLS, f"the run finished after only {kills} kills; lengthen STEPS"
    if dc.latest_step(run) != STEPS:
        done = subprocess.run(_cmd(cli, root, run, True), env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    _check_every_checkpoint(run)
    a, b = dc.load_checkpoint(run, STEPS), dc.load_checkpoint(ref, STEPS)
    for name in ("params", "ema_params", "opt_state"):
        for x, y in zip(_leaves(getattr(a, name)), _leaves(getattr(b, name)), strict=True):
            np.testing.assert_array_equal(x, y)
    print(f"{kills} kills, {mid_write} while a checkpoint was being written")

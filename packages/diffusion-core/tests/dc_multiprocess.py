"""One process of a multi-process run of the toy objective (tests/test_engine_multiprocess.py).

python dc_multiprocess.py PORT NPROC PID RUN_DIR STEPS [KILL_AT]

Process ``PID`` of ``NPROC`` joins the JAX distributed runtime on localhost:PORT (CPU collectives:
gloo), reads its block of every global batch of 8 rows (``dc_toy.batch``) and trains; process 0
writes the final params/EMA/optimizer state to RUN_DIR/final.npz. With KILL_AT, process 1 kills
itself (SIGKILL) when asked for global batch KILL_AT. A failure prints ``ERROR: <message>`` and
exits 3 at once (jax's exit barrier would otherwise wait for the dead peer's heartbeat timeout).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

port, nproc, pid, run_dir, steps = sys.argv[1:6]
nproc, pid, steps = int(nproc), int(pid), int(steps)
kill_at = int(sys.argv[6]) if len(sys.argv) > 6 else None

import jax  # noqa: E402

if nproc > 1:
    jax.distributed.initialize(
        f"localhost:{port}", nproc, pid, initialization_timeout=60, heartbeat_timeout_seconds=15
    )

import dc_toy  # noqa: E402
from diffusion_core import TrainConfig, train  # noqa: E402

BS = 8


def batches_fn(start: int):
    i, rows = start, BS // nproc
    while True:
        if kill_at is not None and pid == 1 and i == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        yield {k: v[pid * rows : (pid + 1) * rows] for k, v in dc_toy.batch(i, BS).items()}
        i += 1


cfg = TrainConfig(
    steps=steps, batch_size=BS, lr=1e-2, checkpoint_every=2, log_every=1, progress=False,
    keep_checkpoints=2, prefetch=1,
)  # fmt: skip
try:
    state = train(dc_toy.loss_fn, dc_toy.init_params(), batches_fn, cfg, run_dir)
except Exception as exc:
    print(f"ERROR: {exc}", flush=True)
    os._exit(3)
if pid == 0:
    leaves = [
        np.asarray(x) for x in jax.tree.leaves((state.params, state.ema_params, state.opt_state))
    ]
    np.savez(os.path.join(run_dir, "final.npz"), *leaves)
print(f"DONE {pid} step {state.step}", flush=True)

"""A toy regression objective and data stream for the engine tests (also run as a subprocess)."""

from __future__ import annotations

import os
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np

W_TRUE = np.array([1.0, -2.0, 0.5, 3.0], np.float32)


def init_params():
    return {"w": jnp.zeros(4, jnp.float32), "b": jnp.zeros((), jnp.float32)}


def loss_fn(params, batch, key):
    """MSE of a linear model plus key-dependent noise (so the RNG stream matters).

    ``batch["poison"] == 1`` makes the loss NaN, ``== 2`` keeps the loss finite but the gradient NaN.
    """
    x, y = batch["x"], batch["y"]
    pred = x @ params["w"] + params["b"]
    noise = 0.1 * jax.random.normal(key, y.shape)
    loss = jnp.mean((pred - y + noise) ** 2)
    p = jnp.max(batch["poison"])
    loss = jnp.where(p == 1, jnp.nan, loss)
    # sqrt'(0) * 0 = inf * 0 = NaN in the gradient, while the value stays 0.
    w0 = params["w"][0]
    loss = loss + jnp.where(p == 2, jnp.sqrt(jnp.abs(w0 - w0) + (p != 2)), 0.0)
    return loss, {"mse": jnp.mean((pred - y) ** 2)}


def batch(i: int, bs: int = 8, poison: dict[int, int] | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([7, i])
    x = rng.normal(size=(bs, 4)).astype(np.float32)
    y = (x @ W_TRUE + 0.5).astype(np.float32)
    flag = np.full((bs,), (poison or {}).get(i, 0), np.int32)
    return {"x": x, "y": y, "poison": flag}


def batches_fn(bs: int = 8, poison=None, kill_at: int | None = None, sig=signal.SIGKILL):
    def fn(start: int):
        i = start
        while True:
            if kill_at is not None and i == kill_at:
                os.kill(os.getpid(), sig)
            yield batch(i, bs, poison)
            i += 1

    return fn


def leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


if __name__ == "__main__":  # python dc_toy.py RUN_DIR STEPS KILL_AT
    from diffusion_core import TrainConfig, train

    run_dir, steps, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cfg = TrainConfig(
        steps=steps, batch_size=8, lr=1e-2, checkpoint_every=5, log_every=3, progress=False
    )
    train(loss_fn, init_params(), batches_fn(kill_at=kill_at), cfg, run_dir)

"""Test helpers: a tiny MLP backbone with the gen_backbones ``apply`` signature, and a 2-D toy
with two redshift-selected modes (points stored as ``(B, 1, 1, 2)`` images)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MODES = {0.5: np.array([1.5, 1.0], np.float32), 3.0: np.array([-1.5, -1.0], np.float32)}
MODE_STD = 0.25
# overlapping conditionals (for the guidance check): 1.44 σ from the midpoint
OVERLAP_MODES = {0.5: np.array([0.6, 0.4], np.float32), 3.0: np.array([-0.6, -0.4], np.float32)}
OVERLAP_STD = 0.5


def mlp_init(key, dim=2, hidden=128, depth=3):
    sizes = [dim + 6] + [hidden] * depth + [dim]
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (a, b), jnp.float32) / np.sqrt(a),
            "b": jnp.zeros((b,), jnp.float32),
        }
        for k, a, b in zip(keys, sizes[:-1], sizes[1:])
    ]


def mlp_apply(params, x, t, r=None, w=None, z=None, drop=None):
    """``(B, H, W, C) -> (B, H, W, C)`` clean-image prediction, conditioned on t, h = t - r, w and
    the redshift (a dropped redshift becomes a learned null via the ``drop`` input feature)."""
    b = x.shape[0]
    r = t if r is None else r
    w = jnp.ones_like(t) if w is None else w
    z = jnp.zeros_like(t) if z is None else z
    drop = jnp.zeros(t.shape, bool) if drop is None else drop
    keep = 1.0 - drop.astype(jnp.float32)
    h = t - r
    feats = [
        x.reshape(b, -1),
        t[:, None],
        h[:, None],
        jnp.sin(3 * t)[:, None],
        w[:, None],
        (z * keep)[:, None] - 1.5 * keep[:, None],
        drop.astype(jnp.float32)[:, None],
    ]
    a = jnp.concatenate(feats, axis=1)
    for layer in params[:-1]:
        a = jax.nn.silu(a @ layer["w"] + layer["b"])
    out = a @ params[-1]["w"] + params[-1]["b"]
    return out.reshape(x.shape)


def toy_batch(rng: np.random.Generator, n: int, modes=None, std: float = MODE_STD):
    """``n`` points: redshift picked uniformly among ``modes`` keys, x ~ N(modes[z], std² I)."""
    modes = MODES if modes is None else modes
    zs = np.array(list(modes), np.float32)
    z = zs[rng.integers(0, len(zs), n)]
    centers = np.stack([modes[float(v)] for v in z])
    x = centers + std * rng.standard_normal((n, 2)).astype(np.float32)
    return {"image": x.reshape(n, 1, 1, 2), "redshift": z}


def train_engine(
    loss_fn, params, steps, run_dir, *, modes=None, std=MODE_STD, batch=256, lr=1e-3, seed=0
):
    """Train with diffusion_core's engine (Adam, EMA 0.99); returns the EMA parameters."""
    from diffusion_core import TrainConfig, train

    def batches_fn(start):
        rng = np.random.default_rng([seed, start])
        while True:
            yield toy_batch(rng, batch, modes, std)

    cfg = TrainConfig(
        steps=steps,
        batch_size=batch,
        lr=lr,
        optimizer="adam",
        ema_decay=0.99,
        seed=seed,
        checkpoint_every=steps,
        log_every=steps,
        progress=False,
    )
    state = train(loss_fn, params, batches_fn, cfg, run_dir, resume=False)
    return state.ema_params

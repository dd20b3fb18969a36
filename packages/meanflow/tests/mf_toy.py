"""Test helpers: a tiny MLP backbone with the gen_backbones ``apply`` signature, and a 2-D toy
with two redshift-selected modes (points stored as ``(B, 1, 1, 2)`` images)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

MODES = {0.5: np.array([1.5, 1.0], np.float32), 3.0: np.array([-1.5, -1.0], np.float32)}
MODE_STD = 0.25


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
        w[:, None] / 4,
        (z * keep)[:, None] - 1.5 * keep[:, None],
        drop.astype(jnp.float32)[:, None],
    ]
    a = jnp.concatenate(feats, axis=1)
    for layer in params[:-1]:
        a = jax.nn.silu(a @ layer["w"] + layer["b"])
    out = a @ params[-1]["w"] + params[-1]["b"]
    return out.reshape(x.shape)


def toy_batch(rng: np.random.Generator, n: int):
    zs = np.array(list(MODES), np.float32)
    z = zs[rng.integers(0, len(zs), n)]
    centers = np.stack([MODES[float(v)] for v in z])
    x = centers + MODE_STD * rng.standard_normal((n, 2)).astype(np.float32)
    return {"image": x.reshape(n, 1, 1, 2), "redshift": z}


def train_plain(loss_fn, params, steps, *, batch=256, lr=2e-3, seed=0):
    """A plain optax Adam loop (returns final params and the list of metrics)."""
    opt = optax.adam(lr)
    state = opt.init(params)

    @jax.jit
    def step(params, state, batch, key):
        (_, m), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, key)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, m

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    hist = []
    for i in range(steps):
        params, state, m = step(params, state, toy_batch(rng, batch), jax.random.fold_in(key, i))
        hist.append(m)
    return params, hist

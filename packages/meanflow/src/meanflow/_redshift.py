"""Redshift label smoothing (the "NLS" ablation switches it off)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smooth_redshift(key: jax.Array, redshift: jax.Array, sigma: float) -> jax.Array:
    """``clip(z + σ N(0, 1), 0, 4)`` for redshifts ``(B,)``."""
    noisy = redshift + sigma * jax.random.normal(key, jnp.shape(redshift), jnp.float32)
    return jnp.clip(noisy, 0.0, 4.0)

"""Elementwise losses shared by every objective (DDPM here, pixel MeanFlow in meanflow)."""

from __future__ import annotations

import jax.numpy as jnp

from ._custom_types import Array


def huber_loss(err: Array, delta: float = 1.0) -> Array:
    """The Huber loss of each element of ``err`` (any shape; same shape out, no reduction).

    ``h_δ(e) = ½ e²`` where ``|e| ≤ δ``, else ``δ (|e| − ½ δ)``: quadratic near zero, linear
    beyond ``δ``, continuous with its first derivative ``clip(e, −δ, δ)`` (as ``optax.huber_loss``).
    At ``δ = 1`` it equals PyTorch's ``smooth_l1_loss(beta=1)`` (the study's DDPM loss); for other
    ``δ``, ``smooth_l1_loss(beta=δ) = h_δ / δ``. This is the one Huber of galgen: ``"huber"`` with
    ``huber_delta`` in :class:`DDPMConfig` (mean over pixels) and in ``meanflow.PMFConfig``
    (sum over pixels per example) both mean ``h_δ``; the reduction is each objective's own.
    ``delta`` > 0.
    """
    a = jnp.abs(err)
    return jnp.where(a <= delta, 0.5 * err**2, delta * (a - 0.5 * delta))

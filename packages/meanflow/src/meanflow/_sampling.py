"""One- and few-step pixel-MeanFlow sampling (thesis Algorithm 2 and its K-step extension).

The time grid is ``ode_samplers.time_grid`` on the flow schedule (uniform in t from 1 to 0)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import ode_samplers
from diffusion_core import ApplyFn, Array, baseline_stats, check_redshift

from meanflow._config import PMFConfig
from meanflow._objective import _add_baseline, average_velocity


@functools.partial(jax.jit, static_argnames=("apply", "t_min"))
def _run(apply, params, noise, redshift, drop, w, grid, lo, hi, stats, *, t_min):
    bsz = noise.shape[0]
    if stats is not None:  # wrapped here so that the jitted function stays cached per apply
        apply = _add_baseline(apply, stats)

    def step(z, tr):
        t_i, t_next = tr
        t = jnp.full((bsz,), t_i)
        r = jnp.full((bsz,), t_next)
        u = average_velocity(apply, params, z, t, r, w, redshift, drop, t_min=t_min)
        # the implied clean image z - t u, clipped to [lo, hi] (a no-op for infinite bounds);
        # every grid time t_i is > 0, so u is recovered from the clipped image exactly
        x0 = jnp.clip(z - t_i * u, lo, hi)
        u = (z - x0) / t_i
        return z - (t_i - t_next) * u, None

    z, _ = jax.lax.scan(step, noise, (grid[:-1], grid[1:]))
    return z


def check_guidance(guidance: Any, config: PMFConfig, where: str = "meanflow.sample") -> None:
    """Refuse a concrete guidance scale outside ``config.guidance_range`` (where the network's
    ``w`` input was never trained) with a ``ValueError`` naming it; ``w = 1`` (no guidance, the
    default) and traced values pass."""
    if any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(guidance)):
        return
    w = np.asarray(guidance, np.float64).reshape(-1)
    lo, hi = config.guidance_range
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((w != 1.0) & ~((w >= lo - 1e-6) & (w <= hi + 1e-6)))
    if bad.size:
        raise ValueError(
            f"{where}: guidance={w[bad[0]]:g} lies outside the scales [{lo:g}, {hi:g}] this model "
            f"was trained on (PMFConfig w_max={config.w_max:g}, w_dist={config.w_dist!r}); its "
            "guidance input is untrained there"
        )


def sample(
    apply: ApplyFn,
    params: Any,
    noise: Array,
    redshift: Array | None,
    *,
    guidance: float | Array = 1.0,
    num_steps: int = 1,
    time_grid: Array | None = None,
    return_nfe: bool = False,
    config: PMFConfig | None = None,
    clip_x0: tuple[float, float] | None = None,
    stats: tuple[Any, Any] | None = None,
) -> Array | tuple[Array, int]:
    """Generate images from noise with a trained pixel-MeanFlow network.

    Each step ``t_i -> t_{i+1}`` is ``z <- z - (t_i - t_{i+1}) u_θ(z, r=t_{i+1}, t=t_i, w, c)``:
    exactly one network evaluation. With ``num_steps=1`` this is ``x = ε - u_θ(ε, 0, 1) = X_θ``.

    Args:
        apply: backbone ``apply(params, x, t, r, w, z, drop) -> X`` (clean-image prediction).
        params: its parameters (use the EMA ones).
        noise: ``(B, H, W, C)`` standard normal.
        redshift: ``(B,)`` per-example redshifts, or ``None`` for unconditional samples (null
            embedding on every row).
        guidance: CFG scale ``w >= 1``, scalar or ``(B,)``; 1 (the default) = no guidance, the
            plain conditional model. Guidance is learned at training time: it costs no extra NFE.
        num_steps: number of steps ``K`` on the uniform grid (ignored if ``time_grid`` given).
        time_grid: optional decreasing ``(K + 1,)`` grid from 1 to 0.
        return_nfe: also return the number of network evaluations (= K).
        config: the training :class:`PMFConfig` (its ``t_min`` clips ``1/t``); default
            ``PMFConfig()``. Both variants sample the same way.
        clip_x0: ``(lo, hi)`` clips the clean-image estimate ``z - t u`` of every step to the
            data range before the step is taken (the option of the same name in
            ``ode_samplers.sample``); with one step the sample itself is clipped. None (default)
            leaves the model's output untouched.
        stats: the training data's per-band ``(mean, std)``, required when
            ``config.baseline="gaussian"`` (the same values the objective was given).

    Returns:
        ``x`` ``(B, H, W, C)`` float32, and the NFE if ``return_nfe``.

    Raises:
        ValueError: a concrete redshift is NaN, infinite or negative (named by index), a
            concrete guidance scale other than 1 outside ``config.guidance_range``, or a bad
            ``time_grid``, ``redshift`` shape or ``clip_x0``.
    """
    config = PMFConfig() if config is None else config
    check_redshift(redshift, "meanflow.sample")
    check_guidance(guidance, config)
    noise = jnp.asarray(noise, jnp.float32)
    bsz = noise.shape[0]
    if time_grid is None:  # K steps uniform in t from 1 to 0: the samplers' flow-path grid
        flow = ode_samplers.FlowSchedule()
        grid = jnp.asarray(ode_samplers.time_grid(flow, num_steps), jnp.float32)
    else:
        g = np.asarray(time_grid, np.float64)
        if g.ndim != 1 or g.size < 2 or np.any(np.diff(g) >= 0) or g[0] > 1 or g[-1] < 0:
            raise ValueError(
                f"sample: time_grid must be a strictly decreasing 1-D grid within [1, 0], got {g}"
            )
        grid = jnp.asarray(g, jnp.float32)
    if redshift is None:
        redshift = jnp.zeros((bsz,), jnp.float32)
        drop = jnp.ones((bsz,), bool)
    else:
        redshift = jnp.asarray(redshift, jnp.float32)
        if redshift.shape != (bsz,):
            raise ValueError(f"sample: redshift must be ({bsz},) like noise, got {redshift.shape}")
        drop = jnp.zeros((bsz,), bool)
    w = jnp.broadcast_to(jnp.asarray(guidance, jnp.float32), (bsz,))
    lo, hi = (-jnp.inf, jnp.inf) if clip_x0 is None else clip_x0
    if not lo < hi:
        raise ValueError(f"sample: clip_x0 must be (lo, hi) with lo < hi, got {clip_x0}")
    lo, hi = jnp.float32(lo), jnp.float32(hi)
    stats = baseline_stats(config.baseline, stats, "PMFConfig")
    x = _run(apply, params, noise, redshift, drop, w, grid, lo, hi, stats, t_min=config.t_min)
    nfe = int(grid.shape[0]) - 1
    return (x, nfe) if return_nfe else x

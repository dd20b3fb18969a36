"""One- and few-step pixel-MeanFlow sampling (thesis Algorithm 2 and its K-step extension).

A pMF network is a two-time model (:func:`pmf_model_fn`) that ``ode_samplers.sample`` integrates
with ``method="mean_flow"`` on the flow schedule: one sampler loop, time grid and clipping option for
pMF and DDPM alike."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import ode_samplers
from diffusion_core import ApplyFn, Array, check_redshift
from ode_samplers import FlowMapFn

from meanflow._config import PMFConfig
from meanflow._objective import _add_baseline, _checked_stats, average_velocity


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


def _checked(redshift, guidance, config: PMFConfig | None, stats):
    """The checks of every pMF sampling entry point: ``(config, stats)`` with defaults applied."""
    config = PMFConfig() if config is None else config
    check_redshift(redshift, "meanflow.sample")
    check_guidance(guidance, config)
    return config, _checked_stats(config, stats)


def pmf_model_fn(
    apply: ApplyFn,
    params: Any,
    redshift: Array | None,
    *,
    guidance: float | Array = 1.0,
    config: PMFConfig | None = None,
    stats: tuple[Any, ...] | None = None,
) -> FlowMapFn:
    """A trained pMF network as the two-time model ``model_fn(x, t, r) -> u`` (the average
    velocity over ``[r, t]``, ``(B, H, W, C)``) that ``ode_samplers.sample(method="mean_flow",
    prediction="flow", schedule=FlowSchedule())`` integrates: the same sampler entry point and
    options as a DDPM's ``diffusion_core.ddpm_model_fn``.

    Args:
        apply: backbone ``apply(params, x, t, r, w, z, drop) -> X`` (clean-image prediction).
        params: its parameters (use the EMA ones).
        redshift: ``(B,)`` per-example redshifts, or ``None`` for unconditional samples (null
            embedding on every row).
        guidance: CFG scale ``w >= 1``, scalar or ``(B,)``; 1 = the plain conditional model.
            Guidance is learned at training time: it costs no extra NFE.
        config: the training :class:`PMFConfig` (its ``t_clip``, ``baseline``, guidance range).
        stats: the training data's per-band ``(mean, std)``, required when
            ``config.baseline="gaussian"``; ``(mean, std, norm)`` for ``"gaussian_asinh"``.

    Raises:
        ValueError: a concrete redshift NaN, infinite or negative, a concrete guidance scale
            other than 1 outside ``config.guidance_range``, or missing ``stats``.
    """
    config, stats = _checked(redshift, guidance, config, stats)
    return _model_fn(apply, params, redshift, guidance, stats, config)


def _model_fn(apply, params, redshift, guidance, stats, config: PMFConfig) -> FlowMapFn:
    """:func:`pmf_model_fn` without the checks (``stats`` already checked), traceable."""
    if stats is not None:
        apply = _add_baseline(apply, stats)

    def model_fn(x: Array, t: Array, r: Array) -> Array:
        bsz = x.shape[0]
        if redshift is None:
            z, drop = jnp.zeros((bsz,), jnp.float32), jnp.ones((bsz,), bool)
        else:
            z, drop = jnp.asarray(redshift, jnp.float32), jnp.zeros((bsz,), bool)
            if z.shape != (bsz,):
                raise ValueError(f"sample: redshift must be ({bsz},) like noise, got {z.shape}")
        w = jnp.broadcast_to(jnp.asarray(guidance, jnp.float32), (bsz,))
        return average_velocity(apply, params, x, t, r, w, z, drop, t_clip=config.t_clip)

    return model_fn


@functools.partial(jax.jit, static_argnames=("apply", "config", "num_steps", "times", "clip"))
def _run(apply, params, noise, redshift, guidance, stats, *, config, num_steps, times, clip):
    """One compiled sampler per (network, config, grid, clip): repeated calls reuse it."""
    return ode_samplers.sample(
        _model_fn(apply, params, redshift, guidance, stats, config),
        noise,
        schedule=ode_samplers.FlowSchedule(),
        method="mean_flow",
        prediction="flow",
        num_steps=num_steps,
        times=times,
        clip_x0=clip,
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
    stats: tuple[Any, ...] | None = None,
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
        config: the training :class:`PMFConfig` (its ``t_clip`` clips ``1/t``); default
            ``PMFConfig()``. Both variants sample the same way.
        clip_x0: ``(lo, hi)`` clips the clean-image estimate ``z - t u`` of every step to the
            data range before the step is taken (the option of the same name in
            ``ode_samplers.sample``); with one step the sample itself is clipped. None (default)
            leaves the model's output untouched.
        stats: the training data's per-band ``(mean, std)``, required when
            ``config.baseline="gaussian"``, ``(mean, std, norm)`` for ``"gaussian_asinh"`` (the
            same values the objective was given).

    Returns:
        ``x`` ``(B, H, W, C)`` float32, and the NFE if ``return_nfe``.

    Raises:
        ValueError: a concrete redshift is NaN, infinite or negative (named by index), a
            concrete guidance scale other than 1 outside ``config.guidance_range``, or a bad
            ``time_grid``, ``redshift`` shape or ``clip_x0``.
    """
    config, stats = _checked(redshift, guidance, config, stats)
    if clip_x0 is not None and not clip_x0[0] < clip_x0[1]:
        raise ValueError(f"sample: clip_x0 must be (lo, hi) with lo < hi, got {clip_x0}")
    times = None
    if time_grid is not None:
        g = np.asarray(time_grid, np.float64)
        if g.ndim != 1 or g.size < 2 or np.any(np.diff(g) >= 0) or g[0] > 1 or g[-1] < 0:
            raise ValueError(
                f"sample: time_grid must be a strictly decreasing 1-D grid within [1, 0], got {g}"
            )
        times = tuple(float(t) for t in g)
    if times is None and (
        isinstance(num_steps, bool) or int(num_steps) != num_steps or num_steps < 1
    ):
        raise ValueError(f"sample: num_steps must be a positive integer, got {num_steps!r}")
    x = _run(
        apply, params, jnp.asarray(noise, jnp.float32), redshift, guidance, stats,
        config=config, num_steps=None if times else int(num_steps), times=times,
        clip=None if clip_x0 is None else (float(clip_x0[0]), float(clip_x0[1])),
    )  # fmt: skip
    return (x, len(times) - 1 if times else int(num_steps)) if return_nfe else x

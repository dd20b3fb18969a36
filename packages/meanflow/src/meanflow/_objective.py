"""The pixel-MeanFlow training objective (thesis Algorithm 1, and the official pMF variant).

Conventions: images ``(B, H, W, C)`` float32; the noisy image is ``x_t = (1 - t) x + t ε`` with ``t = 0`` data and
``t = 1`` noise; per-example scalars ``t, r, w, redshift`` are ``(B,)`` float32; ``drop`` ``(B,)``
bool selects the backbone's learned null redshift embedding. (``z`` is only ever the redshift,
in the backbone's ``apply(..., z=)``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from diffusion_core import (
    ApplyFn,
    Array,
    LossFn,
    asinh_noise_gate,
    baseline_stats,
    huber_loss,
    smooth_redshift,
)

from meanflow._config import PMFConfig

sg = jax.lax.stop_gradient


def _col(s: Array, like: Array) -> Array:
    """Reshape per-example ``(B,)`` to broadcast against ``like`` ``(B, ...)``."""
    return jnp.reshape(s, (-1,) + (1,) * (like.ndim - 1))


def velocity_from_x(x_t: Array, x_pred: Array, t: Array, t_clip: float = 0.05) -> Array:
    """Average velocity from a clean-image prediction: ``(x_t - X) / max(t, t_clip)``.

    Args:
        x_t: noisy images ``(B, H, W, C)`` at time ``t``.
        x_pred: the network's clean-image prediction, same shape.
        t: ``(B,)`` times in [0, 1].
        t_clip: lower clip of ``t`` in the denominator.
    """
    return (x_t - x_pred) / _col(jnp.maximum(t, t_clip), x_t)


def gaussian_clean_image(x_t: Array, t: Array, r: Array, mean: Array, std: Array) -> Array:
    """The exact pMF clean-image prediction ``X(x_t, r, t)`` for data ``x ~ N(mean, std²)``,
    independent per element (``mean``, ``std`` broadcast against ``(H, W, C)``, e.g. ``(C,)``).

    For such data the flow map from ``t`` to ``r`` is affine: with ``s_t² = (1-t)² std² + t²``,
    ``x_r = (1-r) mean + (s_r / s_t)(x_t - (1-t) mean)``; ``X = x_t - t (x_t - x_r) / (t - r)``
    then gives ``X = mean + (x_t - (1-t) mean)(1 - t g / s_t)``, ``g = (s_t - s_r) / (t - r)``
    written without the division so that ``r = t`` (the instantaneous velocity) is exact too.
    At ``t = 1, r = 0``: ``X = mean + std · x_t`` (the noise passed through). ``x_t`` ``(B, H, W, C)``;
    ``t``, ``r`` ``(B,)``.
    """
    mean = jnp.asarray(mean, jnp.float32)
    var = jnp.asarray(std, jnp.float32) ** 2
    t, r = _col(t, x_t), _col(r, x_t)
    s_t = jnp.sqrt((1.0 - t) ** 2 * var + t**2)
    s_r = jnp.sqrt((1.0 - r) ** 2 * var + r**2)
    g = ((t + r) - var * (2.0 - t - r)) / (s_t + s_r)
    return mean + (x_t - (1.0 - t) * mean) * (1.0 - t * g / s_t)


def _checked_stats(config: PMFConfig, stats: tuple[Any, ...] | None) -> tuple[Array, ...] | None:
    """The float32 ``stats`` that ``config.baseline`` needs (``diffusion_core.baseline_stats``)."""
    return baseline_stats(config.baseline, stats, "PMFConfig")


def with_baseline(
    apply: ApplyFn, config: PMFConfig, stats: tuple[Any, ...] | None = None
) -> ApplyFn:
    """``apply`` as the objective and the sampler see it under ``config.baseline``.

    ``"none"``: ``apply`` itself. ``"gaussian"``: ``X = gaussian_clean_image(z, t, r, mean, std) +
    apply(...)``; ``stats = (mean, std)`` of the (transformed) training data, each ``(C,)`` or
    ``(H, W, C)``. ``"gaussian_asinh"``: as ``"gaussian"``, with the map's departure from ``mean``
    (the noise it passes through) scaled by :func:`asinh_noise_gate` at ``mean + apply(...)``,
    so the sky noise stays white in linear flux instead of covering bright cores at the sky's
    stretched amplitude; ``stats = (mean, std, norm)``. A network that outputs 0 gives the same
    map under both. The same ``stats`` must reach :func:`pmf_loss` and :func:`sample`.
    """
    checked = _checked_stats(config, stats)
    return apply if checked is None else _add_baseline(apply, checked)


def _add_baseline(apply: ApplyFn, stats: tuple[Array, ...]) -> ApplyFn:
    mean, std, *norm = stats

    def applied(params, x, t, r=None, w=None, z=None, drop=None):
        base = gaussian_clean_image(x, t, t if r is None else r, mean, std)
        net = apply(params, x, t, r=r, w=w, z=z, drop=drop)
        if norm:
            base = mean + (base - mean) * asinh_noise_gate(mean + net, mean, norm[0])
        return base + net

    return applied


def average_velocity(
    apply: ApplyFn,
    params: Any,
    x_t: Array,
    t: Array,
    r: Array,
    w: Array,
    redshift: Array,
    drop: Array,
    *,
    t_clip: float = 0.05,
) -> Array:
    """``u_θ(x_t, r, t) = (x_t - X_θ(x_t, t, r, w, redshift, drop)) / max(t, t_clip)``, ``(B, H, W, C)``.

    ``w`` is the guidance scale (>= 1); how it is embedded is the backbone's business
    (gen_backbones embeds ``1 - 1/w``, as the official pMF code does)."""
    x_pred = apply(params, x_t, t, r=r, w=w, z=redshift, drop=drop)
    return velocity_from_x(x_t, x_pred, t, t_clip)


def meanflow_target(
    u_fn: Callable[[Array, Array, Array], Array],
    x_t: Array,
    t: Array,
    r: Array,
    tangent: Array,
) -> tuple[Array, Array]:
    """The MeanFlow-identity estimate of the instantaneous velocity.

    ``V = u(x_t, t, r) + (t - r) · sg(d/dt u)``, where ``d/dt u = ∂_t u + (∇_x u) · tangent`` is one
    forward-mode JVP of ``u_fn`` w.r.t. ``(x_t, t, r)`` along ``(tangent, 1, 0)``, in float32.
    ``u_fn(x_t, t, r)`` must form everything that depends on ``t`` (``h = t - r``, ``1/t``) itself.

    Returns ``(u, V)``, both shaped like ``x_t``; ``u`` keeps its gradient w.r.t. parameters.
    """
    x_t, t, r, tangent = (jnp.asarray(a, jnp.float32) for a in (x_t, t, r, tangent))
    u, du_dt = jax.jvp(u_fn, (x_t, t, r), (tangent, jnp.ones_like(t), jnp.zeros_like(r)))
    return u, u + _col(t - r, x_t) * sg(du_dt)


def sample_time_pairs(key: Array, batch: int, config: PMFConfig) -> tuple[Array, Array]:
    """``(t, r)``, each ``(B,)``: two logit-normal draws, ``t = max``, ``r = min``; the first
    ``floor(B · frac_equal)`` rows have ``r = t`` — there ``t`` is the max of the two draws
    (``"algorithm1"``) or the first draw alone (``"official"``, as the public code: its median
    is sigmoid(p_mean), not biased toward noise). A random ``t_uniform`` fraction of the rows
    draws both times uniformly on ``[0, 1]`` instead (``t_uniform = 0`` draws the same numbers
    as before the option existed)."""
    k1, k2 = jax.random.split(key)
    draw = lambda k: jax.nn.sigmoid(config.p_mean + config.p_std * jax.random.normal(k, (batch,)))  # noqa: E731
    a, b = draw(k1), draw(k2)
    if config.t_uniform > 0:
        k_mix, k_a, k_b = jax.random.split(jax.random.fold_in(key, 2), 3)
        mix = jax.random.uniform(k_mix, (batch,)) < config.t_uniform
        a = jnp.where(mix, jax.random.uniform(k_a, (batch,)), a)
        b = jnp.where(mix, jax.random.uniform(k_b, (batch,)), b)
    equal = jnp.arange(batch) < int(batch * config.frac_equal)
    if config.variant == "official":
        b = jnp.where(equal, a, b)
    t, r = jnp.maximum(a, b), jnp.minimum(a, b)
    return t, jnp.where(equal, t, r)


def sample_guidance_scale(key: Array, batch: int, config: PMFConfig) -> Array:
    """Guidance scales ``w`` ``(B,)`` in ``[1, w_max]`` drawn from ``config.w_dist``
    (``[1, 1 + w_max]`` for the log-uniform draw of the ``"official"`` variant)."""
    u = jax.random.uniform(key, (batch,))
    lo, hi = config.guidance_range
    if config.w_dist == "log_uniform":  # density ∝ 1/w
        return jnp.exp(u * jnp.log(hi))
    if config.w_dist == "uniform":
        return lo + u * (hi - lo)
    return jnp.full((batch,), hi, jnp.float32)


def _drop_mask(key: Array, batch: int, config: PMFConfig) -> Array:
    hit = jax.random.uniform(key, (batch,)) < config.dropout
    if config.variant == "official":  # as many drops, but on the first (r = t) rows
        return jnp.arange(batch) < jnp.sum(hit)
    return hit


def _per_example(err: Array, config: PMFConfig) -> Array:
    """The loss of each example ``(B,)``: elementwise :func:`diffusion_core.huber_loss` or square,
    summed over every pixel of ``err`` ``(B, ...)``."""
    e = huber_loss(err, config.huber_delta) if config.loss == "huber" else err**2
    return jnp.sum(e, axis=tuple(range(1, err.ndim)))


def pmf_loss(
    apply: ApplyFn, config: PMFConfig | None = None, *, stats: tuple[Any, ...] | None = None
) -> LossFn:
    """Build the pMF objective ``loss_fn(params, batch, key) -> (loss, metrics)``.

    ``stats``: per-band ``(mean, std)`` of the training data, required when
    ``config.baseline="gaussian"``; ``(mean, std, norm)`` for ``"gaussian_asinh"`` (see
    :func:`with_baseline`).

    ``batch`` holds ``"image"`` ``(B, H, W, C)`` and ``"redshift"`` ``(B,)``. ``metrics`` holds
    ``loss`` (the optimised, possibly adaptively weighted loss), ``mse_raw`` (unweighted mean
    squared error of ``V - v_g`` per pixel, which falls while samples improve even when the
    weighted loss rises), ``mse_fm`` (same, on the ``r = t`` rows) and ``drop_frac``.
    """
    config = PMFConfig() if config is None else config
    t_clip = config.t_clip
    apply = with_baseline(apply, config, stats)

    def loss_fn(params: Any, batch: dict[str, Array], key: Array):
        for k in ("image", "redshift"):
            if k not in batch:
                raise KeyError(f"pmf_loss: batch is missing key {k!r} (has {sorted(batch)})")
        x = jnp.asarray(batch["image"], jnp.float32)
        c = jnp.asarray(batch["redshift"], jnp.float32)
        bsz = x.shape[0]
        if c.shape != (bsz,):
            raise ValueError(f"pmf_loss: batch['redshift'] must be ({bsz},), got {c.shape}")
        k_eps, k_tr, k_w, k_drop, k_ls = jax.random.split(key, 5)
        eps = jax.random.normal(k_eps, x.shape, jnp.float32)
        t, r = sample_time_pairs(k_tr, bsz, config)
        w = sample_guidance_scale(k_w, bsz, config)
        drop = _drop_mask(k_drop, bsz, config)
        if config.label_smoothing > 0:
            c = smooth_redshift(k_ls, c, config.label_smoothing)
        x_t = _col(1.0 - t, x) * x + _col(t, x) * eps
        all_drop = jnp.ones((bsz,), bool)
        no_drop = jnp.zeros((bsz,), bool)
        gscale = _col(1.0 - 1.0 / w, x)

        def u_fn(xx, tt, rr):  # h = t - r and 1/t are formed in here (by apply and velocity_from_x)
            return average_velocity(apply, params, xx, tt, rr, w, c, drop, t_clip=t_clip)

        if config.variant == "algorithm1":
            v_fm = eps - x
            v_cond = sg(u_fn(x_t, t, r))
            v_unc = sg(average_velocity(apply, params, x_t, t, r, w, c, all_drop, t_clip=t_clip))
            v_g = v_fm + gscale * (v_cond - v_unc)
            tangent = v_cond
        else:
            v_fm = (x_t - x) / _col(jnp.maximum(t, t_clip), x)
            v_c = sg(average_velocity(apply, params, x_t, t, t, w, c, no_drop, t_clip=t_clip))
            w1 = jnp.ones_like(w)  # the official code evaluates v_uncond unguided (ω = 1)
            v_u = sg(average_velocity(apply, params, x_t, t, t, w1, c, all_drop, t_clip=t_clip))
            v_g = v_fm + gscale * (v_c - v_u)
            tangent = v_c
        v_g = sg(jnp.where(_col(drop, x), v_fm, v_g))

        _, V = meanflow_target(u_fn, x_t, t, r, tangent)
        per = _per_example(V - v_g, config)
        if config.use_adaptive:
            per = per / sg(per + config.adaptive_eps)
        sq = jnp.mean((V - v_g) ** 2, axis=tuple(range(1, x.ndim)))
        fm = (t == r).astype(jnp.float32)
        metrics = {
            "loss": jnp.mean(per),
            "mse_raw": sg(jnp.mean(sq)),
            "mse_fm": sg(jnp.sum(sq * fm) / jnp.maximum(jnp.sum(fm), 1.0)),
            "drop_frac": jnp.mean(drop.astype(jnp.float32)),
        }
        return metrics["loss"], metrics

    return loss_fn


def flow_matching_loss(apply: ApplyFn, t_clip: float = 0.05) -> LossFn:
    """Plain conditional flow matching with the same x-prediction parameterisation (``r = t``,
    no guidance, no JVP): the cost reference for the bench. Same ``loss_fn`` signature."""

    def loss_fn(params: Any, batch: dict[str, Array], key: Array):
        x = jnp.asarray(batch["image"], jnp.float32)
        c = jnp.asarray(batch["redshift"], jnp.float32)
        k_eps, k_t = jax.random.split(key)
        eps = jax.random.normal(k_eps, x.shape, jnp.float32)
        t = jax.random.uniform(k_t, (x.shape[0],))
        x_t = _col(1.0 - t, x) * x + _col(t, x) * eps
        drop = jnp.zeros(c.shape, bool)
        u = average_velocity(apply, params, x_t, t, t, jnp.ones_like(t), c, drop, t_clip=t_clip)
        per = jnp.sum((u - (eps - x)) ** 2, axis=tuple(range(1, x.ndim)))
        return jnp.mean(per), {"loss": jnp.mean(per)}

    return loss_fn

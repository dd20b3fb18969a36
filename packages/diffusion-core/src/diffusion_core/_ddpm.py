"""The DDPM baseline objective (Lizarraga et al., as the study trains it) and its sampler hook."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
from ode_samplers import VPSchedule, guided

from ._config import DictConfig, TrainConfig
from ._custom_types import ApplyFn, Array, LossFn
from ._losses import huber_loss
from ._mixture import mixture_posterior_mean
from ._redshift import REDSHIFT_DOMAIN, check_redshift

_LOSSES = ("huber", "l2")
_PREDICTIONS = ("eps", "v")
_BASELINES = ("none", "gaussian", "gaussian_asinh", "gaussian_mixture")


@dataclass(frozen=True)
class DDPMConfig(DictConfig):
    """DDPM objective settings (defaults: the study's DDPM, thesis Table A.2).

    Attributes:
        loss: "huber" (:func:`huber_loss` with ``huber_delta``) or "l2" (squared error) of the
            prediction, averaged over every pixel of the batch.
        huber_delta: Huber transition point δ (1.0 in the study, where :func:`huber_loss` is
            PyTorch's ``smooth_l1_loss(beta=1)``, the baseline code's loss; for δ ≠ 1 it is
            δ × ``smooth_l1_loss(beta=δ)``, the same Huber as ``meanflow.PMFConfig``).
        label_smoothing: σ of the Gaussian redshift jitter applied inside the loss (0 = off);
            the baseline code uses 0.01. Don't also smooth in the data loader.
        dropout: probability of dropping the redshift (learned null embedding) per example, for
            classifier-free guidance; 0.0 in the study's DDPM.
        prediction: what the network predicts: "eps" (the study's ε) or "v"
            (``v = α ε − σ x0``, Salimans & Ho 2022). With ε-prediction the clean-image estimate
            is ``(x_t − σ ε̂)/α``, so an ε error is amplified by ``σ/α`` (≈ 160 at t = 1 on the
            linear schedule); with v it is ``α x_t − σ v̂``, never amplified. Samplers must be
            told the same (``ode_samplers.sample(..., prediction=...)``).
        baseline: what the network's output is added to. ``"none"`` (the study): the network
            alone. ``"gaussian"``: the exact ε or v of data distributed as an independent
            Gaussian per band (:func:`with_baseline`; the data's per-band ``(mean, std)`` are
            passed as ``stats``), so the network learns only what is not Gaussian sky.
            ``"gaussian_asinh"``, for asinh-stretched data: the network's output is the
            clean image's departure from the sky level (an x0 residual, as pMF's), and the
            prediction is the exact one for data ``N(level, (std · g)²)`` per pixel, where
            ``level = mean + output`` and ``g`` = :func:`asinh_noise_gate` — the sky's noise
            shrinks with the stretch's slope where the network paints a galaxy, as white noise
            in linear flux does (under ``"gaussian"`` the cores keep the sky's stretched noise,
            a fractional flux noise of 1/softening per pixel; docs/results.md, item 16).
            ``stats = (mean, std, norm)``; a network that outputs 0 gives ``"gaussian"``.
            ``"gaussian_mixture"``: as ``"gaussian"``, for pixels whose band vectors are drawn
            from a mixture, the sky's Gaussian plus full-covariance components fitted to the
            galaxy light (:func:`fit_pixel_mixture`; ``stats = (weight, mean, cov)``): a pixel
            far above the sky keeps its brightness instead of being shrunk toward the sky (under
            ``"gaussian"`` the network does not undo that shrinkage band by band and a galaxy's
            colour is pulled toward the typical one at every step); one pixel's colour is still
            pulled toward its component's (docs/results.md, item 17: lower core noise and
            colour jitter, narrower colours).
        pixel_weight: λ of the per-pixel loss weight ``1 + λ max(0, (x_t − α mean) / √(α² std²
            + σ²))`` — how far the *noisy input* lies above the sky (per-band ``(mean, std)``
            passed as ``stats``), in units of its own noise; 0 (the study's) weights every
            pixel alike. Galaxy cores are a few per cent of a stamp's pixels, so under a uniform
            mean the net spends little on them — and noise it leaves there becomes extra light
            and a colour cast after the inverse arcsinh (docs/results.md, item 9). The weight
            depends on x_t, never on x0, so it leaves the optimal prediction unchanged (a weight
            of x0 would bias it toward bright images) and only moves the net's effort.
        colour_weight: κ ≥ 0; each pixel's error ``e`` (C bands) is split into its band mean
            ``m`` and the contrasts ``d = e − m`` (in the stretched space, where a galaxy pixel's
            band contrast is ~its log colour) and the loss sees ``m + √(1 + κ) d``, so for the
            L2 loss ``C m² + (1 + κ) |d|²``; 0 (the study's) is the plain error. A positive
            definite quadratic form, so the L2 optimum (the posterior mean) is unchanged; it only
            makes colour errors, a small part of the error of a faint galaxy, cost more
            (docs/results.md, item 11).
    """

    loss: Literal["huber", "l2"] = "huber"
    huber_delta: float = 1.0
    label_smoothing: float = 0.01
    dropout: float = 0.0
    prediction: Literal["eps", "v"] = "eps"
    baseline: Literal["none", "gaussian", "gaussian_asinh"] = "none"
    pixel_weight: float = 0.0
    colour_weight: float = 0.0

    def __post_init__(self) -> None:
        bad = self._invalid
        if self.loss not in _LOSSES:
            raise bad("loss", f"must be one of {_LOSSES}")
        if self.huber_delta <= 0:
            raise bad("huber_delta", "must be > 0")
        if self.label_smoothing < 0:
            raise bad("label_smoothing", "must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "must be in [0, 1)")
        if self.prediction not in _PREDICTIONS:
            raise bad("prediction", f"must be one of {_PREDICTIONS}")
        if self.baseline not in _BASELINES:
            raise bad("baseline", f"must be one of {_BASELINES}")
        if not self.pixel_weight >= 0:
            raise bad("pixel_weight", "must be >= 0")
        if self.pixel_weight > 0 and self.baseline == "gaussian_mixture":
            raise bad("pixel_weight", "weighs by the sky's (mean, std): not with gaussian_mixture")
        if not self.colour_weight >= 0:
            raise bad("colour_weight", "must be >= 0")


def ddpm_schedule() -> VPSchedule:
    """The study's schedule: linear β from 1e-4 to 0.02 over 1000 steps (thesis Table A.2)."""
    return VPSchedule.linear(beta_start=1e-4, beta_end=0.02, num_train_steps=1000)


def ddpm_train_config(steps: int, batch_size: int = 128, **overrides: Any) -> TrainConfig:
    """The study's DDPM optimization preset (thesis Table A.1), every field overridable.

    AdamW (weight decay 0.01, PyTorch's default as in the baseline code), lr 5e-5 constant, no
    gradient clipping, EMA 0.995, seed 42.
    """
    base = dict(
        steps=steps,
        batch_size=batch_size,
        lr=5e-5,
        optimizer="adamw",
        weight_decay=0.01,
        grad_clip=None,
        ema_decay=0.995,
        seed=42,
    )
    return TrainConfig(**{**base, **overrides})


def smooth_redshift(key: Array, z: Array, sigma: float) -> Array:
    """Redshift label smoothing in JAX: ``clip(z + sigma * N(0, 1), *REDSHIFT_DOMAIN)``; ``z`` (B,)
    float32. The one label smoothing of galgen: both objectives call it, the loader never smooths.

    ``sigma == 0`` returns ``z`` unchanged (no random draw).
    """
    z = jnp.asarray(z, jnp.float32)
    if sigma == 0:
        return z
    return jnp.clip(z + sigma * jax.random.normal(key, z.shape, z.dtype), *REDSHIFT_DOMAIN)


def _per_element(err: Array, config: DDPMConfig) -> Array:
    """The loss of each element of ``err`` (same shape); :func:`ddpm_loss` averages it."""
    return huber_loss(err, config.huber_delta) if config.loss == "huber" else err**2


def asinh_noise_gate(level: Array, mean: Array, norm: Array) -> Array:
    """How much of the sky's noise an ``asinh``-stretched pixel at ``level`` carries:
    ``cosh(norm · mean) / cosh(norm · level)``, the stretch's slope at ``level`` over its slope
    at the sky level ``mean``, for data stretched as ``y = asinh(x / s) / norm`` per band.

    Noise that is white in linear flux (the sky's) shrinks by this factor where a galaxy is bright:
    1 on the sky, ~0.1 in a core 0.5 stretched units up at ``norm = 6.5``. ``level`` ``(B, H, W, C)``;
    ``mean``, ``norm`` broadcast against it (e.g. ``(C,)``). Both baselines named
    ``"gaussian_asinh"`` (the DDPM's here, pMF's in meanflow) use it.
    """
    return jnp.cosh(norm * mean) / jnp.cosh(norm * level)


def baseline_stats(
    baseline: str, stats: tuple[Any, ...] | None, owner: str
) -> tuple[jax.Array, ...] | None:
    """The float32 arrays a ``baseline`` needs: ``(mean, std)`` for ``"gaussian"``,
    ``(mean, std, norm)`` for ``"gaussian_asinh"``, ``(weight, mean, cov)`` (``(K,)``, ``(K, C)``,
    ``(K, C, C)``) for ``"gaussian_mixture"``, None for ``"none"``.

    The one check behind every ``with_baseline`` (DDPM here, pMF in meanflow): missing or
    short ``stats`` raise a ``ValueError`` naming ``owner``'s config field.
    """
    if baseline == "none":
        return None
    setting = f"{owner}.baseline={baseline!r}"
    if baseline == "gaussian_mixture":
        if stats is None or len(stats) != 3:
            raise ValueError(
                f"{setting} needs stats=(weight, mean, cov), (K,), (K, C), (K, C, C): the pixel "
                "mixture of the training data (diffusion_core.fit_pixel_mixture)"
            )
        w, mu, cov = (jnp.asarray(a, jnp.float32) for a in stats)
        k, c = mu.shape if mu.ndim == 2 else (-1, -1)
        if w.shape != (k,) or cov.shape != (k, c, c):
            raise ValueError(f"{setting}: weight, mean, cov must be (K,), (K, C), (K, C, C)")
        return w, mu, cov
    if baseline != "gaussian_asinh":
        return _required_stats(stats, setting)
    if stats is None or len(stats) != 3:
        raise ValueError(
            f"{setting} needs stats=(mean, std, norm): the training data's per-band sky level "
            "and noise and the asinh stretch's norm"
        )
    return tuple(jnp.asarray(a, jnp.float32) for a in stats)


def _required_stats(stats: tuple[Any, ...] | None, setting: str) -> tuple[jax.Array, jax.Array]:
    """``stats`` as float32 ``(mean, std)``; a ``ValueError`` naming ``setting`` if missing."""
    if stats is None:
        raise ValueError(f"{setting} needs stats=(mean, std) of the training data")
    mean, std = (jnp.asarray(a, jnp.float32) for a in stats)
    return mean, std


def with_baseline(
    apply: ApplyFn,
    schedule: VPSchedule,
    config: DDPMConfig,
    stats: tuple[Any, Any] | None = None,
) -> ApplyFn:
    """``apply`` as the objective and the samplers see it under ``config.baseline``.

    ``"none"``: ``apply`` itself. ``"gaussian"``: the network's output is added to the exact
    prediction (ε or v, per ``config.prediction``) for data ``x0 ~ N(mean, std²)`` independent per
    element, whose posterior mean is ``mean + α std² / (α² std² + σ²) (x_t − α mean)``.
    ``"gaussian_asinh"``: the prediction is the exact one for ``x0 ~ N(L, (std · g)²)``, with the
    network's output painting the level ``L = mean + output`` and ``g =
    asinh_noise_gate(L, mean, norm)``, so the posterior mean is ``L + α v / (α² v + σ²) (x_t − α
    L)``, ``v = (std · g)²``. ``stats = (mean, std)`` (``(mean, std, norm)`` for
    ``"gaussian_asinh"``) of the (transformed) training data, each ``(C,)`` or ``(H, W, C)``;
    ``"gaussian_mixture"``: as ``"gaussian"`` with the posterior mean of a mixture over each
    pixel's bands (:func:`mixture_posterior_mean`, ``stats = (weight, mean, cov)``). Pass
    the same to :func:`ddpm_loss` and wrap ``apply`` with this before :func:`ddpm_model_fn`.
    """
    checked = baseline_stats(config.baseline, stats, "DDPMConfig")
    if checked is None:
        return apply
    v_pred = config.prediction == "v"
    if config.baseline == "gaussian_asinh":
        mean, std, norm = checked
        var = std**2
    elif config.baseline == "gaussian_mixture":
        mix = checked
    else:
        mean, std = checked
        var = std**2

    def applied(params, x, t, r=None, w=None, z=None, drop=None):
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        a, s = schedule.alpha(t).reshape(shape), schedule.sigma(t).reshape(shape)
        net = apply(params, x, t, r=r, w=w, z=z, drop=drop)
        if config.baseline == "gaussian_asinh":  # the net paints the level; sky noise gated there
            level = mean + net
            v = var * asinh_noise_gate(level, mean, norm) ** 2
            x0 = level + a * v / (a**2 * v + s**2) * (x - a * level)
        elif config.baseline == "gaussian_mixture":
            x0 = mixture_posterior_mean(x, a, s, *mix)
        else:
            x0 = mean + a * var / (a**2 * var + s**2) * (x - a * mean)
        eps = (x - a * x0) / s
        base = a * eps - s * x0 if v_pred else eps
        return base if config.baseline == "gaussian_asinh" else base + net

    return applied


def ddpm_loss(
    apply: ApplyFn,
    schedule: VPSchedule,
    config: DDPMConfig | None = None,
    *,
    stats: tuple[Any, Any] | None = None,
) -> LossFn:
    """The DDPM objective (ε- or v-prediction) as an engine ``loss_fn(params, batch, key)``.

    Per example: a timestep n ~ U{0..N-1} (t = (n + 1) / N), ε ~ N(0, I),
    x_t = α(t) x0 + σ(t) ε (α, σ from ``schedule``), redshift smoothed by `smooth_redshift` and
    dropped with probability ``config.dropout``; loss = mean over pixels of
    :func:`huber_loss` (δ = ``config.huber_delta``) or the square of
    ``apply(params, x_t, t, z=z, drop=drop) - target``, target ε (``prediction="eps"``) or
    ``α ε − σ x0`` (``"v"``), each pixel's term times ``1 + λ max(0, (x_t − α mean) /
    √(α² std² + σ²))`` (λ = ``config.pixel_weight``, 0 by default).

    batch: ``{"image": (B, H, W, C) float32, "redshift": (B,) float32}``. ``stats``: the data's
    per-band ``(mean, std)``, required with ``config.baseline="gaussian"`` (:func:`with_baseline`;
    ``(mean, std, norm)`` for ``"gaussian_asinh"``) or ``config.pixel_weight > 0``.
    Returns ``(loss, {"mse": mean squared error of the prediction})``.
    """
    config = config or DDPMConfig()
    n_steps = int(schedule.num_train_steps)
    apply = with_baseline(apply, schedule, config, stats)
    weigh = config.pixel_weight > 0
    if weigh:
        w_mean, w_std = _required_stats(
            None if stats is None else stats[:2], f"DDPMConfig.pixel_weight={config.pixel_weight}"
        )

    def loss_fn(params: Any, batch: dict[str, Array], key: Array):
        if "image" not in batch or "redshift" not in batch:
            raise KeyError(f"ddpm_loss: batch needs 'image' and 'redshift', got {sorted(batch)}")
        x0 = jnp.asarray(batch["image"], jnp.float32)
        b = x0.shape[0]
        k_n, k_eps, k_z, k_drop = jax.random.split(key, 4)
        n = jax.random.randint(k_n, (b,), 0, n_steps)
        t = (n + 1).astype(jnp.float32) / n_steps
        eps = jax.random.normal(k_eps, x0.shape, jnp.float32)
        shape = (b,) + (1,) * (x0.ndim - 1)
        a, s = schedule.alpha(t).reshape(shape), schedule.sigma(t).reshape(shape)
        x_t = a * x0 + s * eps
        target = eps if config.prediction == "eps" else a * eps - s * x0
        z = smooth_redshift(k_z, batch["redshift"], config.label_smoothing)
        drop = jax.random.bernoulli(k_drop, config.dropout, (b,)) if config.dropout > 0 else None
        err = apply(params, x_t, t, z=z, drop=drop) - target
        seen = err
        if config.colour_weight > 0:
            band_mean = jnp.mean(err, axis=-1, keepdims=True)
            seen = band_mean + jnp.sqrt(1.0 + config.colour_weight) * (err - band_mean)
        per_pixel = _per_element(seen, config)
        if weigh:
            excess = jnp.maximum(0.0, (x_t - a * w_mean) / jnp.sqrt((a * w_std) ** 2 + s**2))
            per_pixel = per_pixel * (1.0 + config.pixel_weight * excess)
        return jnp.mean(per_pixel), {"mse": jnp.mean(err**2)}

    return loss_fn


def ddpm_model_fn(
    apply: ApplyFn, params: Any, redshift: Array | float, guidance: float | None = None
) -> Callable[[Array, Array], Array]:
    """The ``model_fn(x, t) -> prediction`` (ε or v, as trained) that `ode_samplers.sample`
    takes, for trained (EMA) params; tell the sampler the same ``prediction``.

    ``redshift``: scalar or (B,) float32, closed over. ``guidance`` w: None (or 1.0) is the
    conditional model; otherwise classifier-free guidance ε_u + w (ε_c - ε_u) (likewise for v), with ε_u from the
    null-redshift embedding (``drop=True``); needs a model trained with ``dropout > 0``.

    Raises:
        ValueError: a concrete redshift is NaN, infinite or negative (the message names its
            index); traced values inside ``jax.jit`` are not checked.
    """
    check_redshift(redshift, "ddpm_model_fn")

    def _z(x: Array) -> Array:
        return jnp.broadcast_to(jnp.asarray(redshift, jnp.float32), (x.shape[0],))

    def cond(x: Array, t: Array) -> Array:
        return apply(params, x, t, z=_z(x))

    if guidance is None or (isinstance(guidance, int | float) and guidance == 1.0):
        return cond

    def uncond(x: Array, t: Array) -> Array:
        return apply(params, x, t, z=_z(x), drop=jnp.ones((x.shape[0],), bool))

    return guided(cond, uncond, guidance)

"""Per-pixel Gaussian-mixture priors: their fit to stretched stamps and their exact denoiser.

A pixel of a sky-dominated stamp is either sky (a narrow Gaussian) or galaxy light (a broad,
skewed distribution). The exact posterior mean of one such pixel seen as
``x_t = α x0 + σ ε`` is what the DDPM's ``"gaussian"`` and ``"gaussian_mixture"`` baselines
(``DDPMConfig.baseline``) add the network's output to: with one component it shrinks every pixel
toward the sky, a galaxy core included; with the galaxy light as further components a pixel far
above the sky keeps its value (docs/results.md, diagnosis item 17).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array

#: Components of ``fit_pixel_mixture``'s default fit: the sky and three for the galaxy light.
MIXTURE_COMPONENTS = 4


def mixture_posterior_mean(
    x: Array, alpha: Array, sigma: Array, weight: Array, mean: Array, std: Array
) -> Array:
    """``E[x0 | x_t = x]`` for ``x_t = α x0 + σ ε`` and each element of ``x0`` an independent draw
    from the mixture ``Σ_k weight_k N(mean_k, std_k²)``.

    ``x`` ``(B, H, W, C)``; ``alpha``, ``sigma`` broadcast against it (e.g. ``(B, 1, 1, 1)``);
    ``weight``, ``mean``, ``std`` ``(..., K)`` with leading axes broadcasting against ``x``
    (``(C, K)`` per band). With ``K = 1`` this is the Gaussian's ``mean + α std² / (α² std² + σ²)
    (x − α mean)``; with several, the same per component, weighted by its responsibility for
    ``x`` (the component's marginal ``N(α mean_k, α² std_k² + σ²)``).
    """
    xe, a, s = x[..., None], alpha[..., None], sigma[..., None]
    var = std**2
    tot = a**2 * var + s**2
    logp = jnp.log(weight) - 0.5 * jnp.log(tot) - 0.5 * (xe - a * mean) ** 2 / tot
    resp = jax.nn.softmax(logp, axis=-1)
    return jnp.sum(resp * (mean + a * var / tot * (xe - a * mean)), axis=-1)


def fit_pixel_mixture(
    y: Any,
    sky_mean: Any,
    sky_std: Any,
    k: int = MIXTURE_COMPONENTS,
    *,
    iters: int = 200,
    max_pixels: int = 200_000,
    seed: int = 0,
) -> dict[str, list[list[float]]]:
    """Per-band ``k``-Gaussian mixture of the pixel values of stamps ``y`` (N, H, W, C), by EM.

    Component 0 is the sky, held at ``(sky_mean, sky_std)`` (``(C,)`` each; only its weight is
    fitted); the other ``k − 1`` fit what the sky does not explain — the galaxy light. At most
    ``max_pixels`` pixels per band, drawn with ``seed``, so the fit is deterministic.

    Returns ``{"weight", "mean", "std"}``, each ``(C, k)`` as nested lists (JSON-ready), free
    components in increasing mean — the ``stats`` of ``DDPMConfig.baseline="gaussian_mixture"``.
    """
    y = np.asarray(y, np.float64)
    if y.ndim < 2 or k < 2:
        raise ValueError(f"fit_pixel_mixture: need stamps (..., C) and k >= 2, got {y.shape}, {k}")
    c = y.shape[-1]
    pix = y.reshape(-1, c)
    rng = np.random.default_rng(seed)
    if len(pix) > max_pixels:
        pix = pix[rng.choice(len(pix), max_pixels, replace=False)]
    sky_mean = np.broadcast_to(np.asarray(sky_mean, np.float64), (c,))
    sky_std = np.broadcast_to(np.asarray(sky_std, np.float64), (c,))
    out = {"weight": [], "mean": [], "std": []}
    for b in range(c):
        w, mu, sd = _em_band(pix[:, b], sky_mean[b], sky_std[b], k, iters)
        out["weight"].append(w.tolist())
        out["mean"].append(mu.tolist())
        out["std"].append(sd.tolist())
    return out


def _em_band(v: np.ndarray, m0: float, s0: float, k: int, iters: int):
    """EM on one band's pixel values ``v`` with component 0 held at ``N(m0, s0²)``."""
    q = np.quantile(v, np.linspace(0.80, 0.995, k - 1))
    mu = np.concatenate([[m0], np.maximum(q, m0 + s0)])
    sd = np.concatenate([[s0], np.full(k - 1, max(float(v.std()), s0))])
    w = np.concatenate([[0.7], np.full(k - 1, 0.3 / (k - 1))])
    floor = 0.25 * s0
    for _ in range(iters):
        logp = np.log(w) - np.log(sd) - 0.5 * ((v[:, None] - mu) / sd) ** 2
        logp -= logp.max(axis=1, keepdims=True)
        r = np.exp(logp)
        r /= r.sum(axis=1, keepdims=True)
        n = r.sum(axis=0) + 1e-12
        w = np.maximum(n / len(v), 1e-10)
        mu[1:] = (r[:, 1:] * v[:, None]).sum(axis=0) / n[1:]
        var = (r[:, 1:] * (v[:, None] - mu[1:]) ** 2).sum(axis=0) / n[1:]
        sd[1:] = np.sqrt(np.maximum(var, floor**2))
    order = np.concatenate([[0], 1 + np.argsort(mu[1:])])
    return w[order], mu[order], sd[order]

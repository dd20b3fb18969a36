"""A per-pixel Gaussian-mixture prior over the bands: its fit to stretched stamps and its exact
denoiser.

A pixel of a sky-dominated stamp is either sky (independent Gaussian noise per band) or galaxy
light, whose bands move together along the galaxies' spectral energy distributions. The exact
posterior mean of such a pixel seen as ``x_t = α x0 + σ ε`` is what the DDPM's
``"gaussian_mixture"`` baseline (``DDPMConfig.baseline``) adds the network's output to: a pixel
far above the sky keeps its brightness instead of being shrunk toward the sky; with correlated
bands its colour is pulled toward its component's mean colour as far as one pixel's noise
warrants (docs/results.md, diagnosis item 17).
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
    x: Array, alpha: Array, sigma: Array, weight: Array, mean: Array, cov: Array
) -> Array:
    """``E[x0 | x_t = x]`` for ``x_t = α x0 + σ ε`` and each pixel's band vector ``x0`` an
    independent draw from ``Σ_k weight_k N(mean_k, cov_k)``.

    ``x`` ``(..., C)`` (e.g. ``(B, H, W, C)``); ``alpha``, ``sigma`` broadcast against it (e.g.
    ``(B, 1, 1, 1)``); ``weight`` ``(K,)``, ``mean`` ``(K, C)``, ``cov`` ``(K, C, C)``. Per
    component the Gaussian posterior ``mean_k + α cov_k (α² cov_k + σ² I)⁻¹ (x − α mean_k)``
    (in ``cov_k``'s eigenbasis), weighted by the component's responsibility for ``x`` under its
    marginal ``N(α mean_k, α² cov_k + σ² I)``.
    """
    lam, u = jnp.linalg.eigh(cov)  # (K, C), (K, C, C): cov_k = u_k diag(lam_k) u_k^T
    lam = jnp.maximum(lam, 0.0)

    def per_component(v):  # (..., C)-broadcastable -> against (..., K, C)
        return v[..., None, :] if jnp.ndim(v) else v

    a, s = per_component(alpha), per_component(sigma)
    d = x[..., None, :] - a * mean  # (..., K, C)
    proj = jnp.einsum("...kc,kcd->...kd", d, u)
    tot = a**2 * lam + s**2
    logp = jnp.log(weight) - 0.5 * jnp.sum(jnp.log(tot) + proj**2 / tot, axis=-1)
    resp = jax.nn.softmax(logp, axis=-1)  # (..., K)
    x0_k = mean + jnp.einsum("...kd,kcd->...kc", a * lam / tot * proj, u)
    return jnp.sum(resp[..., None] * x0_k, axis=-2)


def fit_pixel_mixture(
    y: Any,
    sky_mean: Any,
    sky_std: Any,
    k: int = MIXTURE_COMPONENTS,
    *,
    iters: int = 100,
    max_pixels: int = 200_000,
    seed: int = 0,
) -> dict[str, list]:
    """A ``k``-Gaussian mixture over the band vectors of the pixels of stamps ``y`` (..., C), by EM.

    Component 0 is the sky, held at ``N(sky_mean, diag(sky_std²))`` (``(C,)`` each; only its
    weight is fitted); the other ``k − 1`` have full covariances and fit what the sky does not
    explain — the galaxy light, whose bands are correlated. At most ``max_pixels`` pixels, drawn
    with ``seed``, so the fit is deterministic.

    Returns ``{"weight": (k,), "mean": (k, C), "cov": (k, C, C)}`` as nested lists (JSON-ready),
    free components in increasing band-mean brightness — the ``stats`` of
    ``DDPMConfig.baseline="gaussian_mixture"``.
    """
    y = np.asarray(y, np.float64)
    if y.ndim < 2 or k < 2:
        raise ValueError(f"fit_pixel_mixture: need stamps (..., C) and k >= 2, got {y.shape}, {k}")
    c = y.shape[-1]
    pix = y.reshape(-1, c)
    if len(pix) > max_pixels:
        pix = pix[np.random.default_rng(seed).choice(len(pix), max_pixels, replace=False)]
    m0 = np.broadcast_to(np.asarray(sky_mean, np.float64), (c,))
    s0 = np.broadcast_to(np.asarray(sky_std, np.float64), (c,))
    # start: the free components on slices of the brightest pixels, each with their covariance
    order = np.argsort(pix.mean(axis=1))
    edges = np.linspace(0.80, 1.0, k) * len(pix)
    mean = [m0]
    cov = [np.diag(s0**2)]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        part = pix[order[int(lo) : int(hi)]]
        mean.append(part.mean(axis=0))
        cov.append(np.cov(part.T) + np.diag(s0**2))
    mean, cov = np.array(mean), np.array(cov)
    w = np.array([0.8] + [0.2 / (k - 1)] * (k - 1))
    ridge = np.diag((0.05 * s0) ** 2)  # a numerical floor: no component collapses onto a pixel
    for _ in range(iters):
        r = _responsibilities(pix, w, mean, cov)
        n = r.sum(axis=0) + 1e-12
        w = np.maximum(n / len(pix), 1e-10)
        for j in range(1, k):
            mean[j] = r[:, j] @ pix / n[j]
            d = pix - mean[j]
            cov[j] = (r[:, j, None] * d).T @ d / n[j] + ridge
    rank = np.concatenate([[0], 1 + np.argsort(mean[1:].mean(axis=1))])
    return {"weight": w[rank].tolist(), "mean": mean[rank].tolist(), "cov": cov[rank].tolist()}


def _responsibilities(pix, w, mean, cov) -> np.ndarray:
    """(N, K) posterior component probabilities of pixels ``pix`` (N, C)."""
    logp = np.empty((len(pix), len(w)))
    for j in range(len(w)):
        chol = np.linalg.cholesky(cov[j])
        sol = np.linalg.solve(chol, (pix - mean[j]).T)
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        logp[:, j] = np.log(w[j]) - 0.5 * logdet - 0.5 * (sol**2).sum(axis=0)
    logp -= logp.max(axis=1, keepdims=True)
    r = np.exp(logp)
    return r / r.sum(axis=1, keepdims=True)

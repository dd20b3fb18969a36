"""Noise schedules in continuous time t in [0, 1] (t = 0 data, t = 1 noise).

A schedule defines the forward path x_t = alpha(t) * x_0 + sigma(t) * eps and its log-SNR
lambda(t) = log(alpha(t)^2 / sigma(t)^2), which decreases in t. All methods accept scalars or
arrays of t (any shape) and return arrays of the same shape, in t's floating dtype.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from ._custom_types import Array


def _as_time(t) -> Array:
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(jnp.float32)
    return t


class _Schedule:
    """Shared code of the built-in schedules (satisfies the public `Schedule` protocol).

    Subclasses implement `_log_snr`, `_t_from_log_snr`, `_dlog_snr_dt` for an array namespace
    `xp` (jax.numpy for the public methods, NumPy float64 for `numpy` / `t_from_log_snr_numpy`).
    """

    #: variable in which 'euler'/'heun' integrate: 'rho' (x/alpha vs sigma/alpha) or 't'.
    ode_space: str = "rho"
    #: default first and last model-evaluation times of the samplers' grid.
    t_max: float = 1.0
    t_min: float = 0.0
    num_train_steps: int | None = None

    def log_snr(self, t) -> Array:
        """lambda(t) = log(alpha(t)^2 / sigma(t)^2), decreasing in t."""
        return self._log_snr(_as_time(t), jnp)

    def t_from_log_snr(self, lam) -> Array:
        """Inverse of `log_snr`."""
        return self._t_from_log_snr(_as_time(lam), jnp)

    def alpha(self, t) -> Array:
        """Signal scale alpha(t)."""
        return self._alpha_sigma(_as_time(t), jnp)[0]

    def sigma(self, t) -> Array:
        """Noise scale sigma(t)."""
        return self._alpha_sigma(_as_time(t), jnp)[1]

    def alpha_sigma_dot(self, t) -> tuple[Array, Array]:
        """(d alpha/dt, d sigma/dt) at t."""
        return self._alpha_sigma_dot(_as_time(t), jnp)

    # Variance-preserving defaults: alpha = sqrt(sigmoid(lambda)), sigma = sqrt(sigmoid(-lambda)).
    def _alpha_sigma(self, t, xp):
        lam = self._log_snr(t, xp)
        return xp.exp(-0.5 * xp.logaddexp(0.0, -lam)), xp.exp(-0.5 * xp.logaddexp(0.0, lam))

    def _alpha_sigma_dot(self, t, xp):
        a, s = self._alpha_sigma(t, xp)
        dlam = self._dlog_snr_dt(t, xp)
        return 0.5 * a * s**2 * dlam, -0.5 * s * a**2 * dlam

    def numpy(self, t) -> dict:
        """alpha, sigma, log_snr, alpha_dot, sigma_dot at t as float64 NumPy arrays."""
        t = np.asarray(t, np.float64)
        a, s = self._alpha_sigma(t, np)
        ad, sd = self._alpha_sigma_dot(t, np)
        return {"alpha": a, "sigma": s, "log_snr": self._log_snr(t, np), "alpha_dot": ad,
                "sigma_dot": sd}  # fmt: skip

    def t_from_log_snr_numpy(self, lam) -> np.ndarray:
        """Inverse of `log_snr` in float64 NumPy (what the samplers call on the host)."""
        return self._t_from_log_snr(np.asarray(lam, np.float64), np)


class VPSchedule(_Schedule):
    """Variance-preserving schedule from a discrete table alphabar_n, n = 0..N-1.

    Discrete timestep n is continuous time t = (n + 1) / N, where alpha = sqrt(alphabar_n) and
    sigma = sqrt(1 - alphabar_n). Between grid points lambda(t) is linear in t; on [0, 1/N]
    log(alphabar) is linear in t, so alpha(0) = 1, sigma(0) = 0. Build with `linear`, `cosine`
    or `from_alphas_cumprod`.
    """

    ode_space = "rho"

    def __init__(self, alphas_cumprod) -> None:
        ab = np.asarray(alphas_cumprod, dtype=np.float64)
        if ab.ndim != 1 or ab.size < 2:
            raise ValueError(
                f"VPSchedule: alphas_cumprod must be 1-D with >= 2 entries, got {ab.shape}"
            )
        if not (np.all(ab > 0) and np.all(ab < 1) and np.all(np.diff(ab) < 0)):
            raise ValueError("VPSchedule: alphas_cumprod must be strictly decreasing inside (0, 1)")
        self.alphas_cumprod = ab
        self.num_train_steps = int(ab.size)
        self.t_max = 1.0
        self.t_min = 1.0 / ab.size
        self._lam = np.log(ab) - np.log1p(-ab)  # decreasing
        self._log_ab0 = float(np.log(ab[0]))

    @classmethod
    def linear(cls, beta_start: float = 1e-4, beta_end: float = 0.02, num_train_steps: int = 1000):
        """DDPM linear-beta schedule (Ho et al. 2020): beta_n = linspace(beta_start, beta_end, N)."""
        betas = np.linspace(beta_start, beta_end, int(num_train_steps), dtype=np.float64)
        return cls(np.cumprod(1.0 - betas))

    @classmethod
    def cosine(cls, num_train_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        """Cosine schedule (Nichol & Dhariwal 2021) with betas clipped at `max_beta`."""
        n = int(num_train_steps)

        def f(u):
            return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

        betas = np.array([min(1 - f((i + 1) / n) / f(i / n), max_beta) for i in range(n)])
        return cls(np.cumprod(1.0 - betas))

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod):
        """Any discrete table alphabar_n (strictly decreasing, in (0, 1))."""
        return cls(alphas_cumprod)

    def __repr__(self) -> str:
        return f"VPSchedule(num_train_steps={self.num_train_steps})"

    def _index(self, t, xp):
        n = self.num_train_steps
        idx = xp.clip(t, 0.0, 1.0) * n - 1.0
        i0 = xp.clip(xp.floor(idx), 0, n - 2).astype(xp.int32)
        return idx, i0

    def _log_snr(self, t, xp):
        """+inf at t = 0; linear in t between t = (n+1)/N points; log(alphabar) linear on [0, 1/N]."""
        n = self.num_train_steps
        lam = xp.asarray(self._lam, t.dtype)
        idx, i0 = self._index(t, xp)
        w = idx - i0.astype(t.dtype)
        inner = lam[i0] + w * (lam[i0 + 1] - lam[i0])
        with np.errstate(divide="ignore"):
            log_ab = xp.clip(t, 0.0, None) * n * self._log_ab0
            first = log_ab - xp.log(-xp.expm1(log_ab))
        return xp.where(idx >= 0, inner, first)

    def _dlog_snr_dt(self, t, xp):
        n = self.num_train_steps
        lam = xp.asarray(self._lam, t.dtype)
        idx, i0 = self._index(t, xp)
        with np.errstate(divide="ignore"):
            first = -n * self._log_ab0 / xp.expm1(xp.clip(t, 0.0, None) * n * self._log_ab0)
        return xp.where(idx >= 0, (lam[i0 + 1] - lam[i0]) * n, first)

    def _t_from_log_snr(self, lam, xp):
        n = self.num_train_steps
        table = xp.asarray(self._lam, lam.dtype)
        j = xp.searchsorted(-table, -lam, side="left")
        i0 = xp.clip(j - 1, 0, n - 2)
        w = (lam - table[i0]) / (table[i0 + 1] - table[i0])
        inner = (i0.astype(lam.dtype) + 1.0 + xp.clip(w, 0.0, 1.0)) / n
        first = -xp.logaddexp(0.0, -lam) / (n * self._log_ab0)
        return xp.where(lam >= table[0], first, inner)


class FlowSchedule(_Schedule):
    """Flow-matching (rectified) path alpha(t) = 1 - t, sigma(t) = t.

    'euler'/'heun' integrate dx/dt = velocity in t on this path (the usual flow-matching
    samplers). The default grid runs from t = 1 to t = 0.
    """

    ode_space = "t"
    t_max = 1.0
    t_min = 0.0
    num_train_steps = None

    def __repr__(self) -> str:
        return "FlowSchedule()"

    def _alpha_sigma(self, t, xp):
        return 1.0 - t, t

    def _alpha_sigma_dot(self, t, xp):
        return -xp.ones_like(t), xp.ones_like(t)

    def _log_snr(self, t, xp):
        """lambda(t) = 2 log((1 - t)/t); -inf at t = 1, +inf at t = 0."""
        with np.errstate(divide="ignore"):
            return 2.0 * (xp.log1p(-t) - xp.log(t))

    def _t_from_log_snr(self, lam, xp):
        return 0.5 * (1.0 - xp.tanh(0.25 * lam))  # sigmoid(-lam / 2)

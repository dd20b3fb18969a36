"""Noise schedules in continuous time t in [0, 1] (t = 0 data, t = 1 noise).

A schedule defines the forward path x_t = alpha(t) * x_0 + sigma(t) * eps and its log-SNR
lambda(t) = log(alpha(t)^2 / sigma(t)^2), which decreases in t. All methods accept scalars or
arrays of t (any shape) and return arrays of the same shape, in t's floating dtype.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _as_time(t) -> Array:
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(jnp.float32)
    return t


class _Schedule:
    """Common interface; subclasses implement `log_snr` and `t_from_log_snr`."""

    #: variable in which 'euler'/'heun' integrate: 'rho' (x/alpha vs sigma/alpha) or 't'.
    ode_space: str = "rho"
    #: default first and last model-evaluation times of the samplers' grid.
    t_max: float = 1.0
    t_min: float = 0.0
    num_train_steps: int | None = None

    def log_snr(self, t) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def t_from_log_snr(self, lam) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def alpha(self, t) -> Array:
        """Signal scale alpha(t) = sqrt(sigmoid(lambda(t)))."""
        return jnp.exp(0.5 * jax.nn.log_sigmoid(self.log_snr(t)))

    def sigma(self, t) -> Array:
        """Noise scale sigma(t) = sqrt(sigmoid(-lambda(t)))."""
        return jnp.exp(0.5 * jax.nn.log_sigmoid(-self.log_snr(t)))

    def alpha_sigma_dot(self, t) -> tuple[Array, Array]:
        """(d alpha/dt, d sigma/dt) at t, by forward-mode autodiff of `alpha`, `sigma`."""
        t = _as_time(t)
        _, (da, ds) = jax.jvp(lambda u: (self.alpha(u), self.sigma(u)), (t,), (jnp.ones_like(t),))
        return da, ds


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

    def log_snr(self, t) -> Array:
        """lambda(t) = log(alpha^2/sigma^2); +inf at t = 0. t in [0, 1] (clipped)."""
        t = _as_time(t)
        n = self.num_train_steps
        lam = jnp.asarray(self._lam, t.dtype)
        idx = jnp.clip(t, 0.0, 1.0) * n - 1.0
        i0 = jnp.clip(jnp.floor(idx), 0, n - 2).astype(jnp.int32)
        w = idx - i0.astype(t.dtype)
        inner = lam[i0] + w * (lam[i0 + 1] - lam[i0])
        log_ab = jnp.clip(t, 0.0, None) * n * jnp.asarray(self._log_ab0, t.dtype)
        first = log_ab - jnp.log(-jnp.expm1(log_ab))
        return jnp.where(idx >= 0, inner, first)

    def t_from_log_snr(self, lam) -> Array:
        """Inverse of `log_snr` (lam above lambda(0+) maps into [0, 1/N], below lambda(1) to 1)."""
        lam = _as_time(lam)
        n = self.num_train_steps
        table = jnp.asarray(self._lam, lam.dtype)
        j = jnp.searchsorted(-table, -lam, side="left")
        i0 = jnp.clip(j - 1, 0, n - 2)
        w = (lam - table[i0]) / (table[i0 + 1] - table[i0])
        inner = (i0.astype(lam.dtype) + 1.0 + jnp.clip(w, 0.0, 1.0)) / n
        first = jax.nn.log_sigmoid(lam) / (n * jnp.asarray(self._log_ab0, lam.dtype))
        return jnp.where(lam >= table[0], first, inner)


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

    def alpha(self, t) -> Array:
        return 1.0 - _as_time(t)

    def sigma(self, t) -> Array:
        return _as_time(t)

    def log_snr(self, t) -> Array:
        """lambda(t) = 2 log((1 - t)/t); -inf at t = 1, +inf at t = 0."""
        t = _as_time(t)
        return 2.0 * (jnp.log1p(-t) - jnp.log(t))

    def t_from_log_snr(self, lam) -> Array:
        return jax.nn.sigmoid(-0.5 * _as_time(lam))

"""Exact-score problems: data distributions with closed-form predictions and PF-ODE solutions.

Public as `ode_samplers.testing` (used by the tests and benchmarks; handy to check a custom
sampler, schedule or model_fn). Each exposes
`model_fn(schedule, prediction)` -> model_fn(x, t) (the exact prediction) and
`ode_solution(x, t_from, t_to, schedule)` (the exact probability-flow map).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from ._custom_types import Array


def _prediction(schedule, prediction, x, t, x0):
    """Express the exact x0 = E[x_0 | x_t] in the requested prediction type."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    a = schedule.alpha(t).reshape(shape)
    s = schedule.sigma(t).reshape(shape)
    if prediction == "x0":
        return x0
    eps = (x - a * x0) / s
    if prediction == "eps":
        return eps
    if prediction == "v":
        return a * eps - s * x0
    if prediction == "flow":
        ad, sd = schedule.alpha_sigma_dot(t)
        return ad.reshape(shape) * x0 + sd.reshape(shape) * eps
    raise ValueError(f"unknown prediction={prediction!r}")


class GaussianData:
    """x_0 ~ N(mean, std^2 I): x_t ~ N(a mean, (a^2 std^2 + s^2) I) for any schedule."""

    def __init__(self, mean: float = 0.3, std: float = 0.5) -> None:
        self.mean, self.std = mean, std

    def x0(self, x: Array, t: Array, schedule) -> Array:
        """E[x_0 | x_t = x]; x (B, ...), t (B,)."""
        shape = (-1,) + (1,) * (x.ndim - 1)
        a = schedule.alpha(t).reshape(shape)
        s = schedule.sigma(t).reshape(shape)
        return self.mean + a * self.std**2 / (a**2 * self.std**2 + s**2) * (x - a * self.mean)

    def model_fn(self, schedule, prediction: str = "eps"):
        return lambda x, t: _prediction(schedule, prediction, x, t, self.x0(x, t, schedule))

    def ode_solution(self, x: Array, t_from: float, t_to: float, schedule) -> Array:
        """PF-ODE map x_{t_from} -> x_{t_to}: the affine map between the two Gaussian marginals."""
        a0, s0 = schedule.alpha(t_from), schedule.sigma(t_from)
        a1, s1 = schedule.alpha(t_to), schedule.sigma(t_to)
        u = (x - a0 * self.mean) / jnp.sqrt(a0**2 * self.std**2 + s0**2)
        return a1 * self.mean + jnp.sqrt(a1**2 * self.std**2 + s1**2) * u


class GaussianMixture1D:
    """x_0 ~ sum_i w_i N(m_i, s_i^2), elementwise (every coordinate an independent 1-D problem).

    The 1-D PF-ODE conserves the CDF along trajectories (continuity equation), so the exact map
    is x_{t_to} = F_{t_to}^{-1}(F_{t_from}(x)); the inverse is found by bisection to machine
    precision (use float64 for a 1e-12 reference).
    """

    def __init__(self, weights=(0.3, 0.7), means=(-1.0, 0.8), stds=(0.3, 0.5)) -> None:
        self.w = tuple(float(v) for v in weights)
        self.m = tuple(float(v) for v in means)
        self.s = tuple(float(v) for v in stds)

    def _components(self, t, schedule, x):
        a = schedule.alpha(t)
        s = schedule.sigma(t)
        if x.ndim and jnp.ndim(t):
            shape = (-1,) + (1,) * (x.ndim - 1)
            a, s = a.reshape(shape), s.reshape(shape)
        return a, s

    def x0(self, x: Array, t: Array, schedule) -> Array:
        """E[x_0 | x_t = x] (posterior-weighted component posterior means)."""
        a, s = self._components(t, schedule, x)
        logits, means = [], []
        for w, m, sd in zip(self.w, self.m, self.s, strict=True):
            var = a**2 * sd**2 + s**2
            logits.append(jnp.log(w) - 0.5 * jnp.log(var) - 0.5 * (x - a * m) ** 2 / var)
            means.append(m + a * sd**2 / var * (x - a * m))
        resp = jax.nn.softmax(jnp.stack(logits), axis=0)
        return jnp.sum(resp * jnp.stack(means), axis=0)

    def model_fn(self, schedule, prediction: str = "eps"):
        return lambda x, t: _prediction(schedule, prediction, x, t, self.x0(x, t, schedule))

    def cdf(self, x: Array, t: float, schedule) -> Array:
        a, s = schedule.alpha(t), schedule.sigma(t)
        return sum(
            w * ndtr((x - a * m) / jnp.sqrt(a**2 * sd**2 + s**2))
            for w, m, sd in zip(self.w, self.m, self.s, strict=True)
        )

    def ode_solution(self, x: Array, t_from: float, t_to: float, schedule) -> Array:
        target = self.cdf(x, t_from, schedule)
        lo = jnp.full_like(x, -50.0)
        hi = jnp.full_like(x, 50.0)

        def body(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid, t_to, schedule) < target
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = jax.lax.fori_loop(0, 200, body, (lo, hi))
        return 0.5 * (lo + hi)


def error_vs_nfe(
    problem: GaussianData | GaussianMixture1D,
    schedule,
    noise: Array,
    method: str,
    nfes: tuple[int, ...] = (10, 20, 40, 80),
    *,
    prediction: str = "eps",
    spacing: str | None = None,
    **kwargs,
) -> tuple[list[int], list[float], float]:
    """Empirical order of accuracy of ``sample(method)`` on an exact-score problem.

    Runs the sampler with the exact ``model_fn`` at each NFE budget (two-evaluation methods get
    ``(n + 1) // 2`` steps) and compares its output with the exact PF-ODE solution from
    ``t_max`` to ``t_min`` (denoised at ``t_min`` when ``t_min > 0``, as the sampler's final step
    is). Run under ``jax.enable_x64`` to see orders above ~2.

    Returns ``(nfes, errors, order)``: the NFE actually spent, the max-abs errors and the fitted
    slope of ``-log(error)`` against ``log(NFE)``.
    """
    import numpy as np

    from ._samplers import _TWO_EVAL, sample

    model_fn = problem.model_fn(schedule, prediction)
    t_min = schedule.t_min
    reference = problem.ode_solution(noise, schedule.t_max, t_min, schedule)
    if t_min > 0:
        reference = problem.x0(reference, jnp.full(noise.shape[:1], t_min), schedule)
    used, errors = [], []
    for n in nfes:
        steps = (n + 1) // 2 if method in _TWO_EVAL else n
        x, nfe = sample(model_fn, noise, schedule=schedule, method=method, num_steps=steps,
                        prediction=prediction, spacing=spacing, return_nfe=True, **kwargs)  # fmt: skip
        used.append(int(nfe))
        errors.append(float(jnp.max(jnp.abs(x - reference))))
    order = float(-np.polyfit(np.log(used), np.log(errors), 1)[0])
    return used, errors, order

"""Exact-score problems for testing samplers, and for testing your own model_fn or schedule.

Each problem has a closed-form posterior mean and probability-flow ODE solution, so a sampler's
output can be compared with the exact answer instead of with another sampler:

- `GaussianData(mean, std)`: x_0 ~ N(mean, std^2) in every coordinate.
- `GaussianMixture1D(weights, means, stds)`: an elementwise 1-D Gaussian mixture.

Both give ``model_fn(schedule, prediction)`` (the exact eps / x0 / v / flow ``model_fn(x, t)``),
``x0(x, t, schedule)`` (E[x_0 | x_t = x]) and ``ode_solution(x, t_from, t_to, schedule)`` (the
exact PF-ODE map). `error_vs_nfe(problem, schedule, noise, method, nfes)` runs `sample` with the
exact model at several NFE budgets and returns ``(nfes, errors, order)``: the empirical order of
accuracy (run it under ``jax.enable_x64(True)``). Typical uses: check that a custom `Schedule`
gives the expected order, or compare your trained ``model_fn`` with ``problem.model_fn`` on
data drawn from the problem.

These helpers call ``schedule.alpha(t)``, ``schedule.sigma(t)`` (and
``schedule.alpha_sigma_dot(t)`` for ``prediction='flow'``) on JAX arrays, plus ``t_max`` /
``t_min`` in `error_vs_nfe`, in addition to the `Schedule` protocol the samplers use.
"""

from ._exact import GaussianData, GaussianMixture1D, error_vs_nfe

__all__ = ["GaussianData", "GaussianMixture1D", "error_vs_nfe"]

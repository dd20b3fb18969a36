"""Order of accuracy on exact-score problems: error vs NFE in {10, 20, 40, 80} (float64)."""

import jax
import jax.numpy as jnp
import pytest
from ode_samplers import FlowSchedule, VPSchedule
from ode_samplers.testing import GaussianData, GaussianMixture1D, error_vs_nfe

NFES = (10, 20, 40, 80)
# (method, kwargs, minimum fitted slope of log(error) vs log(NFE), spacing)
CASES = [
    ("ddim", {}, 0.9, "time_uniform"),
    ("euler", {}, 0.9, "time_uniform"),
    ("deis", {"order": 1}, 0.9, "time_uniform"),
    ("dpmpp_2m", {}, 1.7, "quadratic"),
    ("dpmpp_2s", {}, 1.7, "quadratic"),
    ("deis", {"order": 2}, 1.7, "quadratic"),
    ("heun", {}, 1.7, "quadratic"),
    ("deis", {"order": 3}, 2.5, "time_uniform"),
]
FIRST_ORDER = {"ddim", "euler"}


@pytest.mark.parametrize(("method", "kwargs", "min_slope", "spacing"), CASES)
@pytest.mark.parametrize("problem_name", ["gaussian", "mixture"])
def test_vp_convergence_order(method, kwargs, min_slope, spacing, problem_name):
    with jax.enable_x64(True):
        schedule = VPSchedule.linear()
        if problem_name == "gaussian":
            problem = GaussianData(0.3, 0.5)
            noise = jax.random.normal(jax.random.key(0), (16, 3), jnp.float64)
        else:
            problem = GaussianMixture1D()
            noise = jnp.linspace(-2.5, 2.5, 24, dtype=jnp.float64)[:, None]
        nfes, errs, slope = error_vs_nfe(
            problem, schedule, noise, method, NFES, spacing=spacing, **kwargs
        )
    assert slope >= min_slope, (method, kwargs, nfes, errs, slope)
    if min_slope < 1.5:  # first-order methods must not look better than first order either
        assert slope <= 1.3, (method, nfes, errs, slope)
    assert errs[-1] < 0.05


@pytest.mark.parametrize(("method", "min_slope"), [("euler", 0.9), ("heun", 1.7)])
@pytest.mark.parametrize("prediction", ["flow", "x0"])
def test_flow_path_convergence_order(method, min_slope, prediction):
    """Euler/Heun on the rectified path with the exact Gaussian velocity, t from 1 to 0."""
    with jax.enable_x64(True):
        schedule = FlowSchedule()
        problem = GaussianData(0.3, 0.5)
        noise = jax.random.normal(jax.random.key(1), (16, 3), jnp.float64)
        nfes, errs, slope = error_vs_nfe(
            problem, schedule, noise, method, NFES, prediction=prediction
        )
    assert slope >= min_slope, (method, nfes, errs, slope)

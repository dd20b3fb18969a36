import math

import jax.numpy as jnp
import numpy as np
import pytest
from ode_samplers import FlowSchedule, VPSchedule, time_grid


def test_linear_schedule_matches_ddpm_table_at_discrete_times():
    sched = VPSchedule.linear(beta_start=1e-4, beta_end=0.02, num_train_steps=1000)
    betas = 1e-4 + (0.02 - 1e-4) * np.arange(1000) / 999  # independent construction
    alphabar = np.cumprod(1 - betas)
    t = jnp.asarray((np.arange(1000) + 1) / 1000, jnp.float32)  # t = (n + 1) / N
    assert sched.num_train_steps == 1000
    np.testing.assert_allclose(sched.alpha(t), np.sqrt(alphabar), rtol=2e-6)
    np.testing.assert_allclose(sched.sigma(t), np.sqrt(1 - alphabar), rtol=2e-6)
    np.testing.assert_allclose(sched.log_snr(t), np.log(alphabar / (1 - alphabar)), atol=1e-4)


def test_cosine_schedule_matches_nichol_formula():
    sched = VPSchedule.cosine(num_train_steps=1000)
    n = np.arange(1000)

    def f(u):
        return np.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    alphabar = f((n + 1) / 1000) / f(0)  # unclipped; clipping only touches the last steps
    t = jnp.asarray((n + 1) / 1000, jnp.float32)
    np.testing.assert_allclose(sched.alpha(t)[:990], np.sqrt(alphabar[:990]), rtol=1e-5)


@pytest.mark.parametrize("sched", [VPSchedule.linear(), VPSchedule.cosine(), FlowSchedule()])
def test_schedule_endpoints_monotone_and_inverse(sched):
    assert float(sched.alpha(0.0)) == 1.0 and float(sched.sigma(0.0)) == 0.0
    assert float(sched.log_snr(0.0)) == np.inf
    t = jnp.linspace(0.0, 1.0, 2001)[1:-1]
    lam = sched.log_snr(t)
    assert np.all(np.diff(np.asarray(lam)) < 0)
    np.testing.assert_allclose(sched.t_from_log_snr(lam), t, atol=2e-6)
    a, s = sched.alpha(t), sched.sigma(t)
    np.testing.assert_allclose(jnp.log(a**2 / s**2), lam, rtol=1e-4, atol=1e-4)
    if isinstance(sched, VPSchedule):
        np.testing.assert_allclose(a**2 + s**2, 1.0, atol=1e-6)
    else:
        np.testing.assert_allclose(a, 1 - t, atol=1e-7)
        np.testing.assert_allclose(s, t, atol=1e-7)
        da, ds = sched.alpha_sigma_dot(t)
        np.testing.assert_allclose(da, -1.0)
        np.testing.assert_allclose(ds, 1.0)


def test_vp_interpolates_log_snr_linearly_between_grid_points():
    sched = VPSchedule.linear()
    lam = np.log(sched.alphas_cumprod / (1 - sched.alphas_cumprod))
    t = jnp.asarray([(10 + 0.25) / 1000], jnp.float32)  # a quarter between n = 9 and n = 10
    np.testing.assert_allclose(sched.log_snr(t), [0.75 * lam[9] + 0.25 * lam[10]], rtol=1e-5)


def test_default_grid_keeps_first_and_last_evaluation_times():
    sched = VPSchedule.linear()
    for spacing in ("time_uniform", "log_snr", "quadratic"):
        for k in (2, 10, 37):
            g = time_grid(sched, k, spacing)
            assert len(g) == k + 1 and g[-1] == 0.0
            assert g[0] == 1.0 and abs(g[-2] - 1e-3) < 1e-12
            assert np.all(np.diff(g) < 0)
    g = time_grid(sched, 1000)  # 1000 uniform steps are exactly the DDPM timesteps
    np.testing.assert_allclose(g[:-1], (np.arange(1000)[::-1] + 1) / 1000, atol=1e-12)
    g = time_grid(sched, 10, final_denoise=False)
    assert len(g) == 11 and g[-1] == pytest.approx(1e-3)


def test_trailing_and_leading_conventions():
    sched = VPSchedule.linear()
    trailing = time_grid(sched, 10, "trailing")
    np.testing.assert_allclose(
        trailing * 1000, [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    )
    leading = time_grid(sched, 10, "leading")
    np.testing.assert_allclose(leading * 1000, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1, 0])
    with pytest.raises(ValueError, match="trailing.*num_train_steps"):
        time_grid(FlowSchedule(), 10, "trailing")
    with pytest.raises(ValueError, match="unknown spacing"):
        time_grid(sched, 10, "karras")
    with pytest.raises(ValueError, match="log_snr"):
        time_grid(FlowSchedule(), 10, "log_snr")


def test_flow_grid_runs_to_zero():
    g = time_grid(FlowSchedule(), 4)
    np.testing.assert_allclose(g, [1.0, 0.75, 0.5, 0.25, 0.0])

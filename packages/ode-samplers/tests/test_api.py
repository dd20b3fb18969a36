"""The public surface: `__all__`, the `Schedule` protocol, and `ode_samplers.testing`."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import ode_samplers
import pytest
from ode_samplers import FlowSchedule, Schedule, VPSchedule, sample, time_grid
from ode_samplers.testing import GaussianData, error_vs_nfe


class MyFlow:
    """The rectified path alpha = 1 - t, sigma = t written from the protocol alone."""

    ode_space = "t"
    t_max = 1.0
    t_min = 0.0
    num_train_steps = None

    def numpy(self, t):
        t = np.asarray(t, np.float64)
        with np.errstate(divide="ignore"):
            lam = 2.0 * (np.log1p(-t) - np.log(t))
        return {"alpha": 1.0 - t, "sigma": t, "log_snr": lam,
                "alpha_dot": -np.ones_like(t), "sigma_dot": np.ones_like(t)}  # fmt: skip

    def t_from_log_snr_numpy(self, lam):
        return 0.5 * (1.0 - np.tanh(0.25 * np.asarray(lam, np.float64)))


class CosineVP:
    """Continuous cosine VP schedule alpha = cos(pi t / 2), sigma = sin(pi t / 2), from scratch.

    `numpy` / `t_from_log_snr_numpy` are all the samplers need; `alpha` / `sigma` (JAX) are
    what the `ode_samplers.testing` problems call in addition.
    """

    ode_space = "rho"
    t_max = 0.999
    t_min = 1e-3
    num_train_steps = None

    def numpy(self, t):
        t = np.asarray(t, np.float64)
        a, s = np.cos(0.5 * np.pi * t), np.sin(0.5 * np.pi * t)
        with np.errstate(divide="ignore"):
            lam = 2.0 * (np.log(a) - np.log(s))
        return {"alpha": a, "sigma": s, "log_snr": lam,
                "alpha_dot": -0.5 * np.pi * s, "sigma_dot": 0.5 * np.pi * a}  # fmt: skip

    def t_from_log_snr_numpy(self, lam):
        return 2.0 / np.pi * np.arctan(np.exp(-0.5 * np.asarray(lam, np.float64)))

    def alpha(self, t):
        return jnp.cos(0.5 * jnp.pi * jnp.asarray(t))

    def sigma(self, t):
        return jnp.sin(0.5 * jnp.pi * jnp.asarray(t))


def test_all_matches_the_namespace_and_fixtures_live_in_testing():
    exposed = {
        name
        for name, value in vars(ode_samplers).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert exposed == set(ode_samplers.__all__)
    assert len(ode_samplers.__all__) == len(set(ode_samplers.__all__))
    for name in ("GaussianData", "GaussianMixture1D", "error_vs_nfe"):
        assert not hasattr(ode_samplers, name), name
        assert name in ode_samplers.testing.__all__
        assert hasattr(ode_samplers.testing, name)
    assert {"Schedule", "ModelFn"} <= set(ode_samplers.__all__)


def test_schedule_protocol_lists_what_the_samplers_read():
    from ode_samplers._custom_types import _SCHEDULE_MEMBERS

    assert set(_SCHEDULE_MEMBERS) == {
        "ode_space", "t_max", "t_min", "num_train_steps", "numpy", "t_from_log_snr_numpy",
    }  # fmt: skip
    for sched in (VPSchedule.linear(), VPSchedule.cosine(), FlowSchedule(), MyFlow(), CosineVP()):
        assert isinstance(sched, Schedule), sched
    assert MyFlow.__mro__ == (MyFlow, object) and CosineVP.__mro__ == (CosineVP, object)
    assert not isinstance(object(), Schedule)
    # the host-side inverse agrees with the JAX one on the built-ins
    for sched in (VPSchedule.linear(), FlowSchedule()):
        t = np.linspace(0.01, 0.99, 7)
        lam = sched.numpy(t)["log_snr"]
        np.testing.assert_allclose(sched.t_from_log_snr_numpy(lam), t, atol=1e-12)


@pytest.mark.parametrize(
    ("method", "prediction", "kwargs"),
    [
        ("euler", "flow", {}),
        ("heun", "flow", {}),
        ("heun", "x0", {"spacing": "log_snr", "t_max": 0.99, "t_min": 0.01}),
        ("dpmpp_2m", "x0", {"t_max": 0.99}),
        ("dpmpp_2s", "x0", {"t_max": 0.99}),
        ("deis", "v", {"t_max": 0.99, "order": 3}),
        ("ddim", "x0", {"eta": 0.5, "key": jax.random.key(3)}),
        ("ddpm", "x0", {"key": jax.random.key(4)}),
    ],
)
def test_user_schedule_without_private_base_gives_the_builtin_numbers(method, prediction, kwargs):
    model_fn = GaussianData(0.3, 0.5).model_fn(FlowSchedule(), prediction)
    noise = jax.random.normal(jax.random.key(0), (8, 3))
    ref = sample(model_fn, noise, schedule=FlowSchedule(), method=method, num_steps=6,
                 prediction=prediction, **kwargs)  # fmt: skip
    mine = sample(model_fn, noise, schedule=MyFlow(), method=method, num_steps=6,
                  prediction=prediction, **kwargs)  # fmt: skip
    np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-6)
    assert float(jnp.std(ref)) > 0.1  # a real sample, not a degenerate one
    np.testing.assert_array_equal(
        time_grid(MyFlow(), 5, "log_snr", t_max=0.9, t_min=0.1),
        time_grid(FlowSchedule(), 5, "log_snr", t_max=0.9, t_min=0.1),
    )


def test_user_cosine_schedule_samples_exactly_at_second_order():
    """A from-scratch continuous cosine VP schedule: DPM++(2M) converges to the exact PF-ODE map."""
    with jax.enable_x64(True):
        noise = jax.random.normal(jax.random.key(0), (16, 3), jnp.float64)
        nfes, errs, order = error_vs_nfe(GaussianData(0.3, 0.5), CosineVP(), noise, "dpmpp_2m")
    assert order >= 1.7, (nfes, errs, order)
    assert errs[-1] < 5e-3, errs


def test_non_schedule_is_refused_naming_missing_members():
    class HalfSchedule:
        ode_space = "rho"
        t_max, t_min, num_train_steps = 1.0, 0.0, None

    model_fn = GaussianData().model_fn(VPSchedule.linear(), "eps")
    with pytest.raises(TypeError, match="numpy.*t_from_log_snr_numpy"):
        sample(model_fn, jnp.zeros((2, 3)), schedule=HalfSchedule(), method="ddim", num_steps=3)
    with pytest.raises(TypeError, match="not an ode_samplers.Schedule"):
        time_grid(object(), 3)

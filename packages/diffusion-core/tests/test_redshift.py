"""Sampling entry points refuse NaN, infinite and negative redshifts, naming the index (#18)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from diffusion_core import check_redshift, ddpm_model_fn


def _fake(params, x, t, z=None, drop=None):
    return jnp.broadcast_to(z[:, None, None, None], x.shape)


@pytest.mark.parametrize(
    "z, culprit",
    [
        (np.array([0.5, -99.0, 1.0], np.float32), r"redshift\[1\] = -99"),
        ([0.1, 0.2, float("nan")], r"redshift\[2\] = nan"),
        (jnp.array([np.inf, 1.0, 1.0]), r"redshift\[0\] = inf"),
        (-0.5, r"redshift\[0\] = -0.5"),
        (np.array([-1.0, -2.0, 0.3]), r"redshift\[0\] = -1 \(and 1 more\)"),
        ("abc", r"redshift must be numbers, got str"),
    ],
)
def test_bad_redshift_is_refused_by_ddpm_model_fn(z, culprit):
    with pytest.raises(ValueError, match=r"^ddpm_model_fn: " + culprit):
        ddpm_model_fn(_fake, None, z)


def test_valid_and_traced_redshifts_pass():
    x, t = jnp.zeros((3, 2, 2, 1)), jnp.full((3,), 0.5)
    z = jnp.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(ddpm_model_fn(_fake, None, z)(x, t)[:, 0, 0, 0], z)
    check_redshift(None, "unconditional")  # passes

    @jax.jit
    def traced(z):  # inside jit the values are unknown: no check, no error
        return ddpm_model_fn(_fake, None, z)(x, t)

    out = traced(jnp.array([-1.0, 0.5, 2.0]))
    np.testing.assert_allclose(out[:, 0, 0, 0], [-1.0, 0.5, 2.0])


def test_upper_bound_when_given():
    check_redshift([0.0, 4.0], "sim", high=4.0)  # the ends are inside
    check_redshift([9.0], "lib")  # no upper bound unless asked
    with pytest.raises(ValueError, match=r"^sim: redshift\[1\] = 4.01; .* in \[0, 4\]$"):
        check_redshift([1.0, 4.01], "sim", high=4.0)

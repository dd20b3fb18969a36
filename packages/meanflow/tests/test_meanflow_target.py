"""Exactness of the MeanFlow target: JVP vs finite differences, and the Gaussian closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from meanflow import average_velocity, meanflow_target, velocity_from_x
from mf_toy import mlp_apply, mlp_init


def _gauss_sigma(t, s):
    return jnp.sqrt((1 - t) ** 2 * s**2 + t**2)


def gauss_v(z, t, mu, s):
    """Exact marginal velocity E[ε - x | z_t = z] for x ~ N(μ, s² I)."""
    tc = t[:, None, None, None]
    ratio = (tc - (1 - tc) * s**2) / _gauss_sigma(tc, s) ** 2
    return -mu + ratio * (z - (1 - tc) * mu)


def gauss_u(z, t, r, mu, s):
    """Exact average velocity over [r, t]: (z_t - z_r) / (t - r) along the probability-flow ODE,
    z_r = (1 - r) μ + σ_r/σ_t (z_t - (1 - t) μ)."""
    tc, rc = t[:, None, None, None], r[:, None, None, None]
    frac = (1 - _gauss_sigma(rc, s) / _gauss_sigma(tc, s)) / (tc - rc)
    return -mu + frac * (z - (1 - tc) * mu)


def _inputs(key, b=6, shape=(4, 4, 1)):
    k1, k2, k3 = jax.random.split(key, 3)
    z = jax.random.normal(k1, (b, *shape))
    a, c = jax.random.uniform(k2, (b,), minval=0.1, maxval=0.95), jax.random.uniform(k3, (b,))
    t = jnp.maximum(a, c * a + 0.05)
    r = jnp.minimum(a, c * a)
    return z, t, r


def test_gaussian_exact_u_gives_instantaneous_velocity():
    """MeanFlow identity: exact u plugged into the target code with the exact v as tangent gives
    V = v(z, t) — through the package's X-prediction path (apply -> average_velocity)."""
    mu, s = 0.7, 0.4
    z, t, r = _inputs(jax.random.key(0))

    def exact_apply(params, x, t, r=None, w=None, z=None, drop=None):
        # a "network" whose X-prediction makes average_velocity return the exact u
        return x - t[:, None, None, None] * gauss_u(x, t, r, mu, s)

    def u_fn(zz, tt, rr):
        u = average_velocity(exact_apply, None, zz, tt, rr, None, None, None, t_clip=0.05)
        return u

    np.testing.assert_allclose(u_fn(z, t, r), gauss_u(z, t, r, mu, s), rtol=1e-5, atol=1e-5)
    u, V = meanflow_target(u_fn, z, t, r, gauss_v(z, t, mu, s))
    v = gauss_v(z, t, mu, s)
    np.testing.assert_allclose(V, v, rtol=2e-4, atol=2e-4)
    # and the identity is not trivially satisfied: u differs from v where t > r
    assert float(jnp.max(jnp.abs(u - v))) > 0.05


def test_wrong_tangent_breaks_identity():
    """Sanity of the previous test: with a wrong tangent, V != v."""
    mu, s = 0.7, 0.4
    z, t, r = _inputs(jax.random.key(1))
    u_fn = lambda zz, tt, rr: gauss_u(zz, tt, rr, mu, s)  # noqa: E731
    _, V = meanflow_target(u_fn, z, t, r, jnp.zeros_like(z))
    assert float(jnp.max(jnp.abs(V - gauss_v(z, t, mu, s)))) > 1e-2


def test_jvp_matches_central_finite_difference():
    """d/dt u along (v, 1, 0) equals a float64 central finite difference of the float32 network."""
    params = mlp_init(jax.random.key(3), dim=16)
    z, t, r = _inputs(jax.random.key(4), shape=(4, 4, 1))
    w = jnp.full(t.shape, 2.0)
    red = jnp.linspace(0.1, 3.0, t.shape[0])
    drop = jnp.zeros(t.shape, bool)
    tangent = jax.random.normal(jax.random.key(5), z.shape)

    def u_fn(zz, tt, rr, p=params):
        return average_velocity(mlp_apply, p, zz, tt, rr, w, red, drop, t_clip=0.05)

    u, V = meanflow_target(u_fn, z, t, r, tangent)
    assert V.dtype == jnp.float32
    dudt = (V - u) / (t - r)[:, None, None, None]

    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        z64, t64, r64, v64 = (jnp.asarray(a, jnp.float64) for a in (z, t, r, tangent))

        def u64(eps):
            return average_velocity(
                mlp_apply,
                p64,
                z64 + eps * v64,
                t64 + eps,
                r64,
                w.astype(jnp.float64),
                red.astype(jnp.float64),
                drop,
                t_clip=0.05,
            )

        h = 1e-5
        fd = np.asarray((u64(h) - u64(-h)) / (2 * h))
    np.testing.assert_allclose(np.asarray(dudt), fd, rtol=1e-3, atol=1e-3)
    assert np.max(np.abs(fd)) > 0.1  # a non-trivial derivative


def test_velocity_from_x_clips_small_t():
    z = jnp.ones((2, 1, 1, 1))
    x = jnp.zeros((2, 1, 1, 1))
    u = velocity_from_x(z, x, jnp.array([0.5, 0.01]), t_clip=0.05)
    np.testing.assert_allclose(u.ravel(), [2.0, 20.0], rtol=1e-6)


@pytest.mark.parametrize("bad", [{"variant": "x"}, {"loss": "l1"}, {"w_max": 0.5}])
def test_config_rejects_bad_values(bad):
    from meanflow import PMFConfig

    with pytest.raises(ValueError, match=next(iter(bad))):
        PMFConfig(**bad)

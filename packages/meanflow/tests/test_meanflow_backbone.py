"""Integration with the real gen_backbones pMF U-Net (test-only dependency): the objective runs,
the JVP through the network matches finite differences, the sampler takes it."""

import jax
import jax.numpy as jnp
import numpy as np
from gen_backbones import build
from meanflow import PMFConfig, average_velocity, meanflow_target, pmf_loss, sample


def test_pmf_tiny_loss_grad_jvp_and_sampling():
    net = build("pmf-tiny", image_size=8, channels=1)
    params = net.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    batch = {
        "image": rng.standard_normal((4, 8, 8, 1)).astype(np.float32),
        "redshift": np.array([0.1, 1.0, 2.0, 3.5], np.float32),
    }
    # forward only (compiling grad-of-JVP of the U-Net is slow on CPU; the bench does it)
    loss, m = pmf_loss(net.apply, PMFConfig(variant="official"))(params, batch, jax.random.key(1))
    assert np.isfinite(float(loss)) and float(m["mse_raw"]) > 0

    # the JVP through the backbone agrees with a central difference (float32, loose tolerance)
    z = jnp.asarray(batch["image"])
    t, r = jnp.full((4,), 0.7), jnp.full((4,), 0.3)
    w, c, drop = jnp.full((4,), 2.0), jnp.asarray(batch["redshift"]), jnp.zeros(4, bool)
    v = jax.random.normal(jax.random.key(2), z.shape)

    def u_fn(zz, tt, rr):
        return average_velocity(net.apply, params, zz, tt, rr, w, c, drop)

    u, V = meanflow_target(u_fn, z, t, r, v)
    h = 1e-2
    fd = (u_fn(z + h * v, t + h, r) - u_fn(z - h * v, t - h, r)) / (2 * h)
    dudt = (V - u) / 0.4
    assert float(jnp.max(jnp.abs(dudt - fd))) < 2e-2 * float(jnp.max(jnp.abs(fd))) + 1e-3

    x, nfe = sample(net.apply, params, z, c, num_steps=1, return_nfe=True)
    assert x.shape == z.shape and nfe == 1 and bool(jnp.all(jnp.isfinite(x)))

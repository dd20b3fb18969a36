"""Sampler: exact transport with the exact average velocity, NFE accounting, conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from meanflow import PMFConfig, sample
from test_meanflow_target import gauss_u

MU, S = 0.7, 0.4


def exact_apply(params, x, t, r=None, w=None, z=None, drop=None):
    """X-prediction whose average velocity is the exact Gaussian one (μ shifted by redshift)."""
    mu = MU + jnp.where(drop, 0.0, z)[:, None, None, None]
    return x - t[:, None, None, None] * gauss_u(x, t, r, mu, S)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_exact_average_velocity_transports_exactly(steps):
    """With the exact u, any K-step grid maps ε to the exact ODE endpoint μ + s ε."""
    noise = jax.random.normal(jax.random.key(0), (5, 3, 3, 1))
    red = jnp.array([0.0, 0.5, 1.0, 2.0, 4.0])
    x, nfe = sample(exact_apply, None, noise, red, num_steps=steps, return_nfe=True)
    assert nfe == steps and x.shape == noise.shape and x.dtype == jnp.float32
    want = (MU + red)[:, None, None, None] + S * noise
    np.testing.assert_allclose(x, want, rtol=1e-4, atol=1e-4)


def test_custom_grid_and_unconditional():
    noise = jax.random.normal(jax.random.key(1), (3, 2, 2, 1))
    x, nfe = sample(exact_apply, None, noise, None, time_grid=[1.0, 0.7, 0.2, 0.0], return_nfe=True)
    assert nfe == 3
    np.testing.assert_allclose(x, MU + S * noise, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="time_grid"):
        sample(exact_apply, None, noise, None, time_grid=[0.0, 1.0])
    with pytest.raises(ValueError, match="redshift"):
        sample(exact_apply, None, noise, jnp.zeros(4))


@pytest.mark.parametrize("steps", [1, 3])
def test_one_network_evaluation_per_step(steps):
    calls = []

    def counting_apply(params, x, t, r=None, w=None, z=None, drop=None):
        jax.debug.callback(lambda: calls.append(1))
        return params * x

    noise = jnp.ones((2, 2, 2, 1))
    x = sample(counting_apply, jnp.float32(0.5), noise, jnp.zeros(2), num_steps=steps)
    jax.block_until_ready(x)
    assert len(calls) == steps


def test_one_step_is_x_prediction_at_t1_r0_and_guidance_embedding():
    """x = ε - u(ε, r=0, t=1) = X(ε, t=1, r=0, w), per-example w and redshift; the scale w reaches
    the network unchanged for both variants (the backbone embeds it)."""

    def apply(params, x, t, r=None, w=None, z=None, drop=None):
        return x * 0.0 + (w * 10 + z)[:, None, None, None]

    noise = jax.random.normal(jax.random.key(2), (2, 1, 1, 1))
    red = jnp.array([0.25, 1.5])
    x = sample(apply, None, noise, red, guidance=jnp.array([1.0, 4.0]))
    np.testing.assert_allclose(x.ravel(), [10.25, 41.5], rtol=1e-6)
    x = sample(apply, None, noise, red, guidance=4.0, config=PMFConfig(variant="official"))
    np.testing.assert_allclose(x.ravel(), [40.25, 41.5], rtol=1e-6)


def test_clip_x0_clips_every_step_estimate_and_is_exact_when_inactive():
    """One step: the sample is the clipped X. Two steps with X(z) = 2 z: the first estimate is
    clipped before the step is taken, so the result equals the hand-computed clipped path; a range
    wider than every estimate changes nothing (the exact transport stays exact)."""
    noise = jnp.array([-3.0, -0.2, 0.4, 5.0]).reshape(4, 1, 1, 1)
    red = jnp.zeros(4)

    def double(params, x, t, r=None, w=None, z=None, drop=None):
        return 2.0 * x

    x1 = sample(double, None, noise, red, clip_x0=(-1.0, 1.0))
    np.testing.assert_allclose(x1.ravel(), np.clip(2 * noise.ravel(), -1, 1), rtol=1e-6)
    # two steps, t: 1 -> 0.5 -> 0; step i: x0 = clip(2 z), z <- z - (t - r) (z - x0) / t
    z = np.asarray(noise.ravel(), np.float64)
    for t, r in ((1.0, 0.5), (0.5, 0.0)):
        x0 = np.clip(2 * z, -1, 1)
        z = z - (t - r) * (z - x0) / t
    x2 = sample(double, None, noise, red, num_steps=2, clip_x0=(-1.0, 1.0))
    np.testing.assert_allclose(x2.ravel(), z, rtol=1e-5)
    unclipped = sample(double, None, noise, red, num_steps=2)
    assert not np.allclose(unclipped, x2)
    wide = sample(exact_apply, None, noise, red, num_steps=2, clip_x0=(-1e6, 1e6))
    np.testing.assert_allclose(wide, sample(exact_apply, None, noise, red, num_steps=2), rtol=1e-6)
    with pytest.raises(ValueError, match="clip_x0"):
        sample(double, None, noise, red, clip_x0=(1.0, -1.0))


def test_gaussian_baseline_is_the_exact_map_of_gaussian_data():
    """objective.baseline="gaussian": with a network that outputs 0, the clean-image map is the
    exact one of per-band Gaussian data (checked against the independent ``gauss_u``, including
    r = t, where it must be the posterior mean), and every K-step sample is exactly μ + σ ε."""
    from meanflow import gaussian_clean_image, pmf_loss
    from test_meanflow_target import _inputs

    z, t, r = _inputs(jax.random.key(3))
    got = gaussian_clean_image(z, t, r, MU, S)
    want = z - t[:, None, None, None] * gauss_u(z, t, r, MU, S)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    tc = t[:, None, None, None]
    post = MU + (1 - tc) * S**2 / ((1 - tc) ** 2 * S**2 + tc**2) * (z - (1 - tc) * MU)
    np.testing.assert_allclose(gaussian_clean_image(z, t, t, MU, S), post, rtol=1e-5, atol=1e-5)

    mean, std = jnp.array([0.1, -0.3]), jnp.array([0.2, 0.9])  # per band
    zero = lambda params, x, t, r=None, w=None, z=None, drop=None: jnp.zeros_like(x)  # noqa: E731
    cfg = PMFConfig(baseline="gaussian")
    noise = jax.random.normal(jax.random.key(4), (3, 4, 4, 2))
    for steps in (1, 2, 4):
        x = sample(zero, None, noise, jnp.ones(3), num_steps=steps, config=cfg, stats=(mean, std))
        np.testing.assert_allclose(x, mean + std * noise, rtol=1e-4, atol=1e-5)
    # without the baseline the zero network samples zeros; stats are required with it
    np.testing.assert_allclose(sample(zero, None, noise, jnp.ones(3)), 0.0)
    with pytest.raises(ValueError, match="stats"):
        sample(zero, None, noise, jnp.ones(3), config=cfg)
    with pytest.raises(ValueError, match="stats"):
        pmf_loss(zero, cfg)


def test_asinh_baseline_keeps_the_sky_noise_white_in_linear_flux():
    """objective.baseline="gaussian_asinh": where the network paints a bright flat galaxy, the
    one-step sample's noise, mapped back through the stretch ``x = s sinh(norm y)``, has the sky's
    linear-flux σ (the real data's: the sky noise is white in flux) — under "gaussian" it is
    cosh(norm · level) times larger, the mottled cores of diagnosis item 15. A zero network
    draws exactly what "gaussian" draws."""
    from meanflow import asinh_noise_gate, pmf_loss

    mean, std, norm = jnp.array([0.0, 0.05]), jnp.array([0.02, 0.03]), jnp.array([6.0, 4.0])
    level = jnp.array([0.5, 0.6])  # stretched core level per band: cosh(norm·level) = 10.1, 5.6
    noise = jax.random.normal(jax.random.key(5), (4, 32, 32, 2))
    zero = lambda params, x, t, r=None, w=None, z=None, drop=None: jnp.zeros_like(x)  # noqa: E731
    flat = lambda params, x, t, r=None, w=None, z=None, drop=None: level - mean + 0 * x  # noqa: E731
    asinh, gauss = PMFConfig(baseline="gaussian_asinh"), PMFConfig(baseline="gaussian")
    for steps in (1, 2):
        a = sample(
            zero, None, noise, jnp.ones(4), num_steps=steps, config=asinh, stats=(mean, std, norm)
        )
        np.testing.assert_allclose(a, mean + std * noise, rtol=1e-4, atol=1e-5)

    def linear_sigma(y):  # per band, s = 1
        return np.asarray(jnp.std(jnp.sinh(norm * y), axis=(0, 1, 2)))

    sky = linear_sigma(mean + std * noise)
    core_a = linear_sigma(
        sample(flat, None, noise, jnp.ones(4), config=asinh, stats=(mean, std, norm))
    )
    core_g = linear_sigma(sample(flat, None, noise, jnp.ones(4), config=gauss, stats=(mean, std)))
    np.testing.assert_allclose(core_a / sky, 1.0, atol=0.05)
    np.testing.assert_allclose(
        core_g / sky, np.cosh(norm * level) / np.cosh(norm * mean), rtol=0.05
    )
    np.testing.assert_allclose(asinh_noise_gate(mean, mean, norm), 1.0)

    with pytest.raises(ValueError, match="gaussian_asinh.*norm"):
        sample(zero, None, noise, jnp.ones(4), config=asinh, stats=(mean, std))
    with pytest.raises(ValueError, match="gaussian_asinh"):
        pmf_loss(zero, asinh, stats=(mean, std))


@pytest.mark.parametrize(
    "z, culprit",
    [
        ([0.5, -99.0, 1.0], r"redshift\[1\] = -99"),
        (np.array([0.1, 0.2, np.nan], np.float32), r"redshift\[2\] = nan"),
        (jnp.array([-0.1, -0.2, 1.0]), r"redshift\[0\] = -0.1 \(and 1 more\)"),
    ],
)
def test_bad_redshift_is_refused_naming_the_index(z, culprit):
    """NaN or negative redshifts used to flow into the embedding silently (#18)."""
    noise = jnp.zeros((3, 2, 2, 1))
    with pytest.raises(ValueError, match=r"^meanflow.sample: " + culprit):
        sample(exact_apply, None, noise, z)


@pytest.mark.parametrize(
    "cfg, w, culprit",
    [
        (PMFConfig(), 9.0, r"guidance=9 lies outside the scales \[1, 7\]"),
        (PMFConfig(variant="official"), 8.5, r"guidance=8.5 .* \[1, 8\]"),
        (PMFConfig(w_dist="fixed", w_max=3.0), 2.0, r"guidance=2 .* \[3, 3\]"),
        (PMFConfig(), jnp.array([1.0, 0.5]), r"guidance=0.5"),
    ],
)
def test_guidance_outside_the_trained_scales_is_refused(cfg, w, culprit):
    """The network's w input is trained on config.guidance_range only; w = 1 (the default) passes."""
    noise = jnp.zeros((2, 2, 2, 1))
    with pytest.raises(ValueError, match=r"^meanflow.sample: " + culprit):
        sample(exact_apply, None, noise, jnp.ones(2), guidance=w, config=cfg)
    lo, hi = cfg.guidance_range
    sample(exact_apply, None, noise, jnp.ones(2), guidance=hi, config=cfg)


@pytest.mark.parametrize("steps", [1, 3])
def test_pmf_model_fn_is_the_one_sampling_seam(steps):
    """``sample`` is ``ode_samplers.sample(pmf_model_fn(...), method="mean_flow")`` on the flow
    schedule — the entry point DDPM sampling uses — and both equal the pMF step written out here:
    ``z <- z - (t_i - t_{i+1}) u(z, r=t_{i+1}, t=t_i)`` with ``u = (z - X) / max(t, t_clip)``."""
    from meanflow import pmf_model_fn
    from mf_toy import mlp_apply, mlp_init
    from ode_samplers import FlowSchedule
    from ode_samplers import sample as ode_sample

    params = mlp_init(jax.random.key(3))
    noise = jax.random.normal(jax.random.key(4), (6, 1, 1, 2))
    red = jnp.linspace(0.1, 3.0, 6)
    cfg = PMFConfig(t_clip=0.4)  # clip active at t = 1/3 of the 3-step grid
    got = sample(mlp_apply, params, noise, red, num_steps=steps, guidance=2.0, config=cfg)
    fn = pmf_model_fn(mlp_apply, params, red, guidance=2.0, config=cfg)
    seam = ode_sample(
        fn, noise, schedule=FlowSchedule(), method="mean_flow", prediction="flow", num_steps=steps
    )
    np.testing.assert_allclose(got, seam, rtol=1e-6, atol=1e-6)
    z, grid = np.asarray(noise, np.float64), np.linspace(1.0, 0.0, steps + 1)
    w = jnp.full((6,), 2.0)
    for t_i, t_n in zip(grid[:-1], grid[1:]):
        tb, rb = jnp.full((6,), t_i, jnp.float32), jnp.full((6,), t_n, jnp.float32)
        x = np.asarray(
            mlp_apply(params, jnp.asarray(z, jnp.float32), tb, rb, w, red, jnp.zeros(6, bool))
        )
        z = z - (t_i - t_n) * (z - x) / max(t_i, 0.4)
    np.testing.assert_allclose(got, z, rtol=1e-5, atol=1e-5)

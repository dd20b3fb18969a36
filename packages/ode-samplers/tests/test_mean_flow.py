"""method='mean_flow' (two-time flow-map models, MeanFlow / pixel MeanFlow) and the explicit
`times=` grid of `sample`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ode_samplers import METHODS, FlowSchedule, VPSchedule, sample, time_grid
from ode_samplers.testing import GaussianData

FLOW = FlowSchedule()
VP = VPSchedule.linear()
M, S = 0.3, 0.5  # data N(M, S^2) in every coordinate


def _noise(shape=(16, 5), seed=0, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _mu_sd(t):
    """Mean and std of x_t on the flow path (alpha = 1 - t, sigma = t) for data N(M, S^2)."""
    return (1.0 - t) * M, jnp.sqrt((1.0 - t) ** 2 * S**2 + t**2)


def _flow_map(x, t, r):
    """Exact probability-flow map x_t -> x_r: affine between the two Gaussian marginals."""
    mu_t, sd_t = _mu_sd(t)
    mu_r, sd_r = _mu_sd(r)
    return mu_r + sd_r / sd_t * (x - mu_t)


def exact_average_velocity(x, t, r):
    """u(x, t, r) = (x - x_r) / (t - r): the exact MeanFlow target (t > r), t, r (B,)."""
    t, r = t[:, None], r[:, None]
    return (x - _flow_map(x, t, r)) / (t - r)


@pytest.mark.parametrize(
    "grid",
    [{"num_steps": 1}, {"num_steps": 2}, {"num_steps": 4}, {"times": [1.0, 0.7, 0.2, 0.0]}],
    ids=["K1", "K2", "K4", "times"],
)
def test_exact_average_velocity_lands_on_the_exact_ode_solution(grid):
    noise = _noise()
    x, nfe = sample(exact_average_velocity, noise, schedule=FLOW, method="mean_flow",
                    prediction="flow", return_nfe=True, **grid)  # fmt: skip
    exact = M + S * noise  # the PF-ODE map from t = 1 (N(0, 1)) to t = 0 (N(M, S^2))
    np.testing.assert_allclose(_flow_map(noise, 1.0, 0.0), exact, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(GaussianData(M, S).ode_solution(noise, 1.0, 0.0, FLOW), exact,
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert x.shape == noise.shape and x.dtype == jnp.float32
    np.testing.assert_allclose(x, exact, rtol=1e-6, atol=2e-6)
    k = grid.get("num_steps", 3)
    assert isinstance(nfe, int) and nfe == k
    # float64: exact to round-off
    with jax.enable_x64(True):
        z = _noise(dtype=jnp.float64)
        x64 = sample(exact_average_velocity, z, schedule=FLOW, method="mean_flow",
                     prediction="flow", **grid)  # fmt: skip
        np.testing.assert_allclose(x64, M + S * z, rtol=1e-12, atol=1e-12)


def test_one_step_is_noise_minus_the_average_velocity():
    noise = _noise()
    x = sample(exact_average_velocity, noise, schedule=FLOW, method="mean_flow",
               num_steps=1, prediction="flow")  # fmt: skip
    ones, zeros = jnp.ones(noise.shape[0]), jnp.zeros(noise.shape[0])
    np.testing.assert_allclose(x, noise - exact_average_velocity(noise, ones, zeros), atol=1e-6)


def _recording(log):
    """A flow-map model that records (t, r, dtypes, shapes) of every runtime call, in order."""

    def model_fn(x, t, r):
        jax.debug.callback(
            lambda t, r: log.append((np.asarray(t), np.asarray(r))), t, r, ordered=True
        )
        assert t.shape == r.shape == (x.shape[0],) and t.dtype == r.dtype == x.dtype
        return exact_average_velocity(x, t, r)

    return model_fn


@pytest.mark.parametrize(
    ("schedule", "grid", "expected"),
    [
        (FLOW, {"num_steps": 4}, np.linspace(1.0, 0.0, 5)),
        (FLOW, {"times": [1.0, 0.7, 0.2, 0.0]}, np.array([1.0, 0.7, 0.2, 0.0])),
        (FLOW, {"times": [0.9, 0.5, 0.25]}, np.array([0.9, 0.5, 0.25])),  # no final denoise
        (VP, {"num_steps": 3}, time_grid(VP, 3, "quadratic")),  # t_min = 1/N, then r = 0
    ],
    ids=["flow-K4", "flow-times", "flow-times-no-denoise", "vp-K3"],
)
def test_the_model_receives_the_next_grid_time_as_r(schedule, grid, expected):
    log = []
    run = jax.jit(lambda z: sample(_recording(log), z, schedule=schedule, method="mean_flow",
                                   prediction="flow", **grid))  # fmt: skip
    jax.block_until_ready(run(_noise((3, 2))))
    jax.effects_barrier()
    assert len(log) == len(expected) - 1
    ts = np.array([t for t, _ in log])  # (K, B): every row of a call gets the same times
    rs = np.array([r for _, r in log])
    assert np.all(ts == ts[:, :1]) and np.all(rs == rs[:, :1])
    np.testing.assert_allclose(ts[:, 0], expected[:-1].astype(np.float32), rtol=0, atol=0)
    np.testing.assert_allclose(rs[:, 0], expected[1:].astype(np.float32), rtol=0, atol=0)
    assert (rs[-1, 0] == 0.0) == (expected[-1] == 0.0)


def toy_two_time(z, t, r):
    """A smooth two-time model of x, t, r (nothing like an exact velocity)."""
    t, r = t[:, None], r[:, None]
    return 1.7 * jnp.sin(2.0 * z) * (1.0 + t) + 0.8 * r * z - jnp.cos(3.0 * t - 2.0 * r) + 0.4


def _hand_loop(z, grid, lo, hi):
    """The pixel-MeanFlow sampler, written out (meanflow._sampling's step)."""
    z = jnp.asarray(z, jnp.float32)
    ones = jnp.ones((z.shape[0],), jnp.float32)
    for t, r in zip(grid[:-1], grid[1:], strict=True):
        t, r = np.float32(t), np.float32(r)
        u = toy_two_time(z, t * ones, r * ones)
        x0 = jnp.clip(z - t * u, lo, hi)
        u = (z - x0) / t
        z = z - (t - r) * u
    return z


@pytest.mark.parametrize(
    "grid",
    [{"num_steps": 1}, {"num_steps": 3}, {"times": [1.0, 0.6, 0.35, 0.1, 0.0]}],
    ids=["K1", "K3", "times"],
)
def test_clip_x0_equals_the_hand_written_mean_flow_loop(grid):
    lo, hi = -1.0, 1.0
    noise = _noise((32, 6), seed=1)
    g = (
        np.asarray(grid["times"])
        if "times" in grid
        else np.linspace(1.0, 0.0, grid["num_steps"] + 1)
    )
    x = sample(toy_two_time, noise, schedule=FLOW, method="mean_flow", prediction="flow",
               clip_x0=(lo, hi), **grid)  # fmt: skip
    ref = _hand_loop(noise, g, lo, hi)
    np.testing.assert_allclose(x, ref, rtol=1e-6, atol=2e-6)
    # the clip binds (else this would test nothing), and without it both are the plain step
    free = sample(toy_two_time, noise, schedule=FLOW, method="mean_flow", prediction="flow", **grid)
    assert float(jnp.max(jnp.abs(free - x))) > 0.1
    np.testing.assert_allclose(free, _hand_loop(noise, g, -np.inf, np.inf), rtol=1e-6, atol=2e-6)
    if "num_steps" in grid and grid["num_steps"] == 1:  # one step: the sample itself is clipped
        assert float(jnp.min(x)) >= lo and float(jnp.max(x)) <= hi


@pytest.mark.parametrize("grid", [{"num_steps": 6}, {"times": [1.0, 0.5, 0.2, 0.05, 0.0]}])
def test_vp_x0_mean_flow_ignoring_r_is_ddim(grid):
    """The 'DDIM step with r' claim: a flow-map model that ignores r samples exactly as DDIM."""
    x0_model = GaussianData(M, S).model_fn(VP, "x0")
    noise = _noise()
    a = sample(lambda x, t, r: x0_model(x, t), noise, schedule=VP, method="mean_flow",
               prediction="x0", **grid)  # fmt: skip
    b = sample(x0_model, noise, schedule=VP, method="ddim", eta=0.0, prediction="x0", **grid)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert float(jnp.std(a)) > 0.1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("schedule", [VP, FLOW], ids=["vp", "flow"])
def test_times_reproduces_the_default_grid_for_every_method(method, schedule):
    exact = GaussianData(M, S).model_fn(schedule, "x0")
    model_fn = (lambda x, t, r: exact(x, t)) if method == "mean_flow" else exact
    kw = {"schedule": schedule, "method": method, "prediction": "x0", "key": jax.random.key(2),
          "return_nfe": True}  # fmt: skip
    t_max = 0.98 if schedule is FLOW else None  # deis / dpmpp_2s need a finite log-SNR
    noise = _noise()
    ref, nfe_ref = sample(model_fn, noise, num_steps=5, t_max=t_max, **kw)
    spacing = "time_uniform" if method == "ddpm" or schedule is FLOW else "quadratic"
    grid = time_grid(schedule, 5, spacing, t_max=t_max)
    for num_steps in (None, 5):
        x, nfe = sample(model_fn, noise, times=grid, num_steps=num_steps, **kw)
        np.testing.assert_array_equal(x, ref)
        assert nfe == nfe_ref
    # a grid that stops short of t = 0: no final denoise step (heun / dpmpp_2s: 2 NFE each)
    _, nfe = sample(model_fn, noise, times=grid[:-1], **kw)
    assert nfe == (8 if method in ("heun", "dpmpp_2s") else 4)


def test_bad_times_and_inconsistent_num_steps_are_refused_naming_times():
    z = _noise((2, 3))
    kw = {"schedule": FLOW, "method": "mean_flow", "prediction": "flow"}
    for bad in ([0.0, 0.5, 1.0], [1.0, 0.5, 0.5, 0.0], [1.2, 0.5, 0.0], [1.0, 0.5, -0.1],
                [1.0], [[1.0, 0.0]], [1.0, float("nan"), 0.0], []):  # fmt: skip
        shown = str(np.asarray(bad, np.float64).tolist()).replace("[", r"\[").replace("]", r"\]")
        with pytest.raises(ValueError, match=rf"times must be a strictly decreasing.*{shown}"):
            sample(exact_average_velocity, z, times=bad, **kw)
    with pytest.raises(
        ValueError, match=r"num_steps=2 disagrees with times=\[1.0, 0.7, 0.2, 0.0\]"
    ):
        sample(exact_average_velocity, z, times=[1.0, 0.7, 0.2, 0.0], num_steps=2, **kw)
    with pytest.raises(ValueError, match=r"times=\[1.0, 0.0\] with spacing='log_snr'"):
        sample(exact_average_velocity, z, times=[1.0, 0.0], spacing="log_snr", **kw)
    with pytest.raises(ValueError, match=r"times=\[1.0, 0.5, 0.0\] with t_max=0.9, t_min=0.1"):
        sample(exact_average_velocity, z, times=[1.0, 0.5, 0.0], t_max=0.9, t_min=0.1, **kw)
    with pytest.raises(ValueError, match="pass num_steps"):
        sample(exact_average_velocity, z, **kw)
    with pytest.raises(ValueError, match="times must be a concrete"):
        jax.jit(lambda g: sample(exact_average_velocity, z, times=g, **kw))(jnp.array([1.0, 0.0]))

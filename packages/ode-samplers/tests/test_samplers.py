import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ode_samplers import METHODS, FlowSchedule, VPSchedule, guided, sample
from ode_samplers import nfe as nfe_of
from ode_samplers.testing import GaussianData, GaussianMixture1D

SCHED = VPSchedule.linear()
KEY = jax.random.key(0)


def _noise(shape=(8, 3), seed=0, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _kwargs(method):
    return {"key": KEY} if method == "ddpm" else {}


def _for(method, fn):
    """'mean_flow' calls a two-time model_fn(x, t, r): give it one that ignores r."""
    return (lambda x, t, r: fn(x, t)) if method == "mean_flow" else fn


def test_first_order_methods_are_the_same_update():
    """DDIM eta=0, DEIS-1, first-order DPM++ and (VP) Euler: one update, four derivations."""
    with jax.enable_x64(True):
        model_fn = GaussianMixture1D().model_fn(SCHED, "eps")
        noise = _noise((16, 2), dtype=jnp.float64)
        runs = [
            sample(model_fn, noise, schedule=SCHED, method=m, num_steps=7, spacing="log_snr", **kw)
            for m, kw in [("ddim", {}), ("deis", {"order": 1}), ("dpmpp_2m", {"order": 1}),
                          ("euler", {})]
        ]  # fmt: skip
        for x in runs[1:]:
            np.testing.assert_allclose(x, runs[0], rtol=1e-10, atol=1e-10)
        # and DPM++(2M) is genuinely different (the second-order term is active)
        x2 = sample(
            model_fn, noise, schedule=SCHED, method="dpmpp_2m", num_steps=7, spacing="log_snr"
        )
        assert float(jnp.max(jnp.abs(x2 - runs[0]))) > 1e-3


def test_ddim_eta_one_is_ddpm_posterior_variance():
    with jax.enable_x64(True):
        model_fn = GaussianMixture1D().model_fn(SCHED, "eps")
        noise = _noise((16, 2), dtype=jnp.float64)
        a = sample(
            model_fn,
            noise,
            schedule=SCHED,
            method="ddim",
            num_steps=25,
            eta=1.0,
            key=KEY,
            spacing="quadratic",
        )
        b = sample(model_fn, noise, schedule=SCHED, method="ddpm", num_steps=25, key=KEY,
                   variance="small", spacing="quadratic")  # fmt: skip
        c = sample(model_fn, noise, schedule=SCHED, method="ddpm", num_steps=25, key=KEY,
                   variance="large", spacing="quadratic")  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
        assert float(jnp.max(jnp.abs(c - b))) > 1e-3


@pytest.mark.parametrize("variance", ["small", "large"])
@pytest.mark.parametrize("problem_name", ["gaussian", "mixture"])
def test_ddpm_ancestral_reproduces_data_moments(variance, problem_name):
    if problem_name == "gaussian":
        problem, mean, var = GaussianData(0.3, 0.5), 0.3, 0.25
    else:
        problem = GaussianMixture1D()
        w, m, s = (np.asarray(v) for v in (problem.w, problem.m, problem.s))
        mean = float(np.sum(w * m))
        var = float(np.sum(w * (s**2 + m**2)) - mean**2)
    n = 20000
    noise = _noise((n, 1), seed=3)
    x = sample(problem.model_fn(SCHED, "eps"), noise, schedule=SCHED, method="ddpm",
               num_steps=1000, key=jax.random.key(7), variance=variance)  # fmt: skip
    x = np.asarray(x, np.float64)
    se_mean = np.sqrt(var / n)
    se_var = var * np.sqrt(2.0 / n) * 1.5  # (mixtures are not Gaussian: kurtosis margin)
    assert abs(x.mean() - mean) < 4 * se_mean, (x.mean(), mean)
    assert abs(x.var() - var) < 4 * se_var, (x.var(), var)


@pytest.mark.parametrize(("method", "kw"), [("ddpm", {}), ("ddim", {"eta": 0.7})])
def test_per_row_keys_give_each_row_the_same_path_whatever_its_batch(method, kw):
    """key of shape (B,): row b's step noise comes from keys[b] alone, so sampling the rows in
    two batches gives the batch-of-six result (a batch's first row would otherwise reuse the
    first batch's draws, or its key depend on where the batch starts), rows with equal noise but
    their own keys differ, and the per-row noise draws what one shared key draws."""
    model_fn = GaussianMixture1D().model_fn(SCHED, "eps")

    def run(z, key, steps=20):
        return sample(model_fn, z, schedule=SCHED, method=method, num_steps=steps, key=key, **kw)

    noise, keys = _noise((6, 3)), jax.random.split(KEY, 6)
    parts = jnp.concatenate([run(noise[:2], keys[:2]), run(noise[2:], keys[2:])])
    np.testing.assert_allclose(parts, run(noise, keys), rtol=1e-5, atol=1e-6)
    twins = run(jnp.repeat(noise[:1], 2, axis=0), keys[:2])
    assert float(jnp.max(jnp.abs(twins[0] - twins[1]))) > 1e-3  # each row its own noise
    with pytest.raises(ValueError, match="one key per row of noise"):
        run(noise, keys[:5])
    # same distribution as with one shared key (100 steps: both carry the same step bias)
    problem, n = GaussianData(0.3, 0.5), 20000
    x, y = (np.asarray(sample(problem.model_fn(SCHED, "eps"), _noise((n, 1), seed=3),
                              schedule=SCHED, method=method, num_steps=100, key=k, **kw))
            for k in (jax.random.split(KEY, n), KEY))  # fmt: skip
    assert abs(x.mean() - y.mean()) < 4 * np.sqrt(2 * 0.25 / n), (x.mean(), y.mean())
    assert abs(x.var() - y.var()) < 4 * 0.25 * np.sqrt(4.0 / n), (x.var(), y.var())


@pytest.mark.parametrize(
    ("method", "prediction"),
    [("dpmpp_2m", "x0"), ("deis", "v"), ("heun", "flow"), ("dpmpp_2s", "v"), ("ddim", "flow")],
)
def test_prediction_types_give_the_same_samples(method, prediction):
    with jax.enable_x64(True):
        problem = GaussianMixture1D()
        noise = _noise((8, 2), dtype=jnp.float64)
        ref = sample(problem.model_fn(SCHED, "eps"), noise, schedule=SCHED, method=method,
                     num_steps=6)  # fmt: skip
        x = sample(problem.model_fn(SCHED, prediction), noise, schedule=SCHED, method=method,
                   num_steps=6, prediction=prediction)  # fmt: skip
    np.testing.assert_allclose(x, ref, rtol=1e-8, atol=1e-8)


def _counting_model():
    """Exact model that counts its runtime calls (through jax.debug.callback) and traces."""
    calls, traces = [0], [0]
    base = GaussianData().model_fn(SCHED, "eps")

    def model_fn(x, t):
        traces[0] += 1
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return base(x, t)

    return model_fn, calls, traces


@pytest.mark.parametrize("final_denoise", [True, False])
@pytest.mark.parametrize("method", METHODS)
def test_nfe_counts_every_model_call_and_loop_is_not_unrolled(method, final_denoise):
    model_fn, calls, traces = _counting_model()
    kwargs = dict(schedule=SCHED, method=method, num_steps=9, final_denoise=final_denoise, key=KEY)
    x = jax.jit(lambda z: sample(_for(method, model_fn), z, **kwargs))(_noise())
    jax.block_until_ready(x)
    jax.effects_barrier()
    nfe = nfe_of(method, 9, final_denoise_step=final_denoise)
    two = method in ("heun", "dpmpp_2s")
    expected = (2 * 9 - (1 if final_denoise else 0)) if two else 9
    assert nfe == expected
    assert calls[0] == nfe
    assert traces[0] <= 3  # one scan body (1-2 calls) + the final denoise, whatever num_steps


@pytest.mark.parametrize("method", METHODS)
def test_jit_matches_eager_and_vmap_matches_loop(method):
    model_fn = _for(method, GaussianMixture1D().model_fn(SCHED, "eps"))

    def run(z, key):
        return sample(model_fn, z, schedule=SCHED, method=method, num_steps=5, key=key)

    stack = jnp.stack([_noise(seed=s) for s in range(3)])  # (3, B, D)
    keys = jax.random.split(KEY, 3)
    eager = run(stack[0], keys[0])
    jitted = jax.jit(run)
    vmapped = jax.vmap(run)(stack, keys)
    np.testing.assert_allclose(jitted(stack[0], keys[0]), eager, rtol=1e-5, atol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(vmapped[i], jitted(stack[i], keys[i]), rtol=1e-5, atol=1e-5)
    assert eager.shape == stack.shape[1:] and eager.dtype == jnp.float32
    assert np.all(np.isfinite(vmapped)) and float(jnp.std(vmapped[0] - vmapped[1])) > 0.01


def test_plain_python_model_fn_on_images():
    """A closed-form Python function on (N, H, W, C) images (no framework objects)."""

    def model_fn(x, t):  # exact x0 prediction for data ~ N(0, 1): E[x0|x_t] = alpha x
        a = SCHED.alpha(t)[:, None, None, None]
        return a * x

    noise = _noise((2, 4, 4, 3))
    x = sample(model_fn, noise, schedule=SCHED, method="dpmpp_2m", num_steps=20, prediction="x0",
               spacing="log_snr", final_denoise=False)  # fmt: skip
    # data N(0,1) under VP is stationary: the PF-ODE map is the identity (alpha^2 + sigma^2 = 1)
    assert x.shape == noise.shape and x.dtype == noise.dtype
    np.testing.assert_allclose(x, noise, rtol=0.05, atol=0.05)


def test_guided_is_uncond_plus_scale_times_difference_and_costs_two_passes():
    passes = [0]
    cond_p = GaussianData(1.0, 0.5)
    uncond_p = GaussianData(-1.0, 0.5)

    def counted(fn):
        def wrapped(x, t):
            jax.debug.callback(lambda: passes.__setitem__(0, passes[0] + 1))
            return fn(x, t)

        return wrapped

    cond = counted(cond_p.model_fn(SCHED, "eps"))
    uncond = counted(uncond_p.model_fn(SCHED, "eps"))
    x = _noise()
    t = jnp.full((8,), 0.4)
    np.testing.assert_allclose(
        guided(cond, uncond, 3.0)(x, t), uncond(x, t) + 3.0 * (cond(x, t) - uncond(x, t)), rtol=1e-6
    )
    passes[0] = 0
    out, nfe = sample(guided(cond, uncond, 1.0), x, schedule=SCHED, method="heun", num_steps=4,
                      return_nfe=True)  # fmt: skip
    jax.effects_barrier()
    assert isinstance(nfe, int) and nfe == 7  # 3 Heun steps + the final (Euler) denoise step
    assert passes[0] == 2 * nfe
    ref = sample(cond, x, schedule=SCHED, method="heun", num_steps=4)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_flow_schedule_euler_is_exact_for_straight_paths():
    """Data = a single point c: the FM velocity is constant along straight lines; Euler is exact."""
    c = 0.7

    def velocity(x, t):  # x_t = (1-t) c + t eps => v = eps - c = (x - c) / t
        return (x - c) / t[:, None]

    noise = _noise()
    x = sample(velocity, noise, schedule=FlowSchedule(), method="euler", num_steps=3,
               prediction="flow")  # fmt: skip
    np.testing.assert_allclose(x, jnp.full_like(noise, c), atol=1e-5)


def test_clear_errors():
    model_fn = GaussianData().model_fn(SCHED, "eps")
    z = _noise()
    with pytest.raises(ValueError, match="needs key"):
        sample(model_fn, z, schedule=SCHED, method="ddpm", num_steps=3)
    with pytest.raises(ValueError, match="eta=0.5.*needs key"):
        sample(model_fn, z, schedule=SCHED, method="ddim", num_steps=3, eta=0.5)
    with pytest.raises(ValueError, match="unknown method"):
        sample(model_fn, z, schedule=SCHED, method="plms", num_steps=3)
    with pytest.raises(ValueError, match="unknown prediction"):
        sample(model_fn, z, schedule=SCHED, method="ddim", num_steps=3, prediction="score")
    with pytest.raises(ValueError, match="deis.*sigma/alpha"):
        sample(model_fn, z, schedule=FlowSchedule(), method="deis", num_steps=3, prediction="x0")
    with pytest.raises(ValueError, match="returned shape"):
        sample(lambda x, t: x[:, :1], z, schedule=SCHED, method="ddim", num_steps=3)
    with pytest.raises(ValueError, match="num_steps"):
        sample(model_fn, z, schedule=SCHED, method="ddim", num_steps=0)


@pytest.mark.parametrize("method", ["ddim", "dpmpp_2m", "deis", "heun"])
def test_clip_x0_bounds_the_denoised_estimate_and_is_exact_when_inactive(method):
    sched = VPSchedule.linear(beta_start=1e-4, beta_end=0.02, num_train_steps=1000)
    noise = jax.random.normal(jax.random.key(3), (64, 4))

    def far(x, t):  # an x0-model that always predicts 5: far outside the data range
        return jnp.full_like(x, 5.0)

    x = sample(
        far, noise, schedule=sched, method=method, num_steps=8, prediction="x0", clip_x0=(-1.0, 1.0)
    )
    np.testing.assert_allclose(np.asarray(x), 1.0, rtol=0, atol=1e-5)
    # a range that never binds gives exactly the unclipped solver
    exact = GaussianData(mean=0.3, std=0.5).model_fn(sched, "eps")
    ref = sample(exact, noise, schedule=sched, method=method, num_steps=8)
    wide = sample(exact, noise, schedule=sched, method=method, num_steps=8, clip_x0=(-1e6, 1e6))
    np.testing.assert_allclose(np.asarray(wide), np.asarray(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_eps_prediction_on_a_flow_schedule_is_refused_not_nan(method):
    """At t = 1 a flow path has alpha = 0, so x0 = (x - sigma eps) / alpha is 0/0: five methods
    returned NaN without a word (#18). Now one ValueError names the method, the prediction and the
    way out; t_max < 1 gives finite samples."""

    def half(x, t):
        return 0.5 * x

    half = _for(method, half)
    kw = {"schedule": FlowSchedule(), "method": method, "num_steps": 4, "key": KEY}
    with pytest.raises(ValueError, match=rf"method='{method}' with prediction='eps'.*t_max < 1"):
        sample(half, _noise(), prediction="eps", **kw)
    x = sample(half, _noise(), prediction="eps", t_max=0.98, **kw)
    assert np.isfinite(np.asarray(x)).all()

"""DDPM objective tests: closed forms with fake models, and a tiny model that must learn."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from diffusion_core import (
    DDPMConfig,
    TrainConfig,
    ddpm_loss,
    ddpm_model_fn,
    ddpm_schedule,
    ddpm_train_config,
    huber_loss,
    smooth_redshift,
    train,
)
from ode_samplers import sample

SCHED = ddpm_schedule()


def _batch(b=256, hw=8, z=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.uniform(-1, 1, (b, hw, hw, 1)).astype(np.float32),
        "redshift": np.full((b,), z, np.float32),
    }


def test_schedule_is_the_studys_linear_beta():
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
    n = np.array([0, 1, 499, 998, 999])
    t = jnp.asarray((n + 1) / 1000, jnp.float32)
    np.testing.assert_allclose(SCHED.alpha(t), np.sqrt(ab[n]), rtol=1e-5)
    np.testing.assert_allclose(SCHED.sigma(t), np.sqrt(1 - ab[n]), rtol=1e-4)


def test_perfect_denoiser_has_zero_loss_on_the_timestep_grid():
    """A model that knows x0 recovers ε exactly — only if x_t = α x0 + σ ε with t = (n+1)/N."""
    batch = _batch(b=64)
    x0 = jnp.asarray(batch["image"])

    def oracle(params, x, t, z=None, drop=None):
        s = (slice(None), None, None, None)
        eps = (x - SCHED.alpha(t)[s] * x0) / SCHED.sigma(t)[s]
        off_grid = jnp.abs(t * 1000 - jnp.round(t * 1000))  # 0 iff t = (n + 1) / 1000
        return eps + 100.0 * off_grid[s]

    for loss in ("huber", "l2"):
        cfg = DDPMConfig(loss=loss, label_smoothing=0.0)
        val, m = jax.jit(ddpm_loss(oracle, SCHED, cfg))(None, batch, jax.random.key(1))
        assert float(val) < 1e-6 and float(m["mse"]) < 1e-6


def test_v_prediction_oracle_has_zero_loss_and_samples_through_ode_samplers():
    """prediction="v": the target is α ε − σ x0; an oracle for it has zero loss, one that returns
    ε instead does not, and the sampler given prediction="v" turns the oracle back into x0."""
    batch = _batch(b=64)
    x0 = jnp.asarray(batch["image"])
    s_ = (slice(None), None, None, None)

    def v_oracle(params, x, t, z=None, drop=None):
        a, s = SCHED.alpha(t)[s_], SCHED.sigma(t)[s_]
        eps = (x - a * x0) / s
        return a * eps - s * x0

    def eps_oracle(params, x, t, z=None, drop=None):
        return (x - SCHED.alpha(t)[s_] * x0) / SCHED.sigma(t)[s_]

    cfg = DDPMConfig(loss="l2", label_smoothing=0.0, prediction="v")
    val, _ = jax.jit(ddpm_loss(v_oracle, SCHED, cfg))(None, batch, jax.random.key(1))
    assert float(val) < 1e-6
    bad, _ = jax.jit(ddpm_loss(eps_oracle, SCHED, cfg))(None, batch, jax.random.key(1))
    assert float(bad) > 0.1
    fn = ddpm_model_fn(v_oracle, None, 1.0)
    noise = jax.random.normal(jax.random.key(2), x0.shape)
    x = sample(fn, noise, schedule=SCHED, method="ddim", num_steps=10, prediction="v")
    np.testing.assert_allclose(np.asarray(x), np.asarray(x0), atol=1e-3)
    with pytest.raises(ValueError, match="prediction"):
        DDPMConfig(prediction="x0")


def test_cosine_lr_decays_to_zero_after_warmup():
    from diffusion_core import make_optimizer

    cfg = TrainConfig(steps=100, batch_size=1, lr=1e-2, warmup_steps=10, lr_decay="cosine")
    opt = make_optimizer(cfg)
    p = {"w": jnp.zeros(())}
    st = opt.init(p)
    sizes = []
    for _ in range(100):  # Adam's first step on a constant gradient moves by lr(step)
        upd, st = opt.update({"w": jnp.ones(())}, st, p)
        sizes.append(-float(upd["w"]))
    assert sizes[0] == 0.0 and abs(sizes[10] - 1e-2) < 1e-4  # warm-up, then the peak
    assert sizes[55] < 0.6e-2 and sizes[-1] < 1e-5  # half-way cosine, then ~0
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(steps=1, batch_size=1, lr_decay="linear")


def _huber_expectation(c: float, d: float = 1.0) -> float:
    """E[h_d(c - ε)], ε ~ N(0, 1), by quadrature (h_1 = PyTorch's smooth_l1)."""
    e = np.linspace(-12, 12, 200_001)
    a = np.abs(c - e)
    h = np.where(a < d, 0.5 * a**2, d * (a - 0.5 * d))
    return float(np.trapezoid(h * np.exp(-(e**2) / 2) / math.sqrt(2 * np.pi), e))


@pytest.mark.parametrize(
    "loss,delta", [("huber", 1.0), ("huber", 0.4), ("huber", 2.5), ("l2", 1.0)]
)
def test_huber_vs_l2_closed_form(loss, delta):
    """Model outputs the constant c: L2 -> c² + 1, Huber(δ) -> E[h_δ(c - ε)]."""
    c = 3.0

    def const(params, x, t, z=None, drop=None):
        return jnp.full_like(x, params)

    fn = jax.jit(ddpm_loss(const, SCHED, DDPMConfig(loss=loss, huber_delta=delta)))
    val, m = fn(jnp.float32(c), _batch(b=512), jax.random.key(0))
    want = c**2 + 1 if loss == "l2" else _huber_expectation(c, delta)
    np.testing.assert_allclose(float(val), want, rtol=0.03)
    np.testing.assert_allclose(float(m["mse"]), c**2 + 1, rtol=0.03)
    assert abs(_huber_expectation(c) - (c**2 + 1)) > 5  # the two really differ


@pytest.mark.parametrize("delta", [0.1, 1.0, 3.0])
def test_huber_loss_is_optax_huber_and_delta_times_torch_smooth_l1(delta):
    """The one Huber: equal to optax.huber_loss (independent implementation) and to
    δ · smooth_l1(β=δ) (PyTorch's formula, written here in NumPy), elementwise, any δ."""
    import optax

    err = np.random.default_rng(1).normal(0, 2 * delta, (4, 6, 6, 5)).astype(np.float32)
    got = np.asarray(huber_loss(jnp.asarray(err), delta))
    assert got.shape == err.shape
    np.testing.assert_allclose(got, np.asarray(optax.huber_loss(err, delta=delta)), rtol=1e-6)
    a = np.abs(err)
    smooth_l1 = np.where(a < delta, 0.5 * a**2 / delta, a - 0.5 * delta)
    np.testing.assert_allclose(got, delta * smooth_l1, rtol=1e-5, atol=1e-7)
    assert (a > delta).any() and (a < delta).any()  # both branches exercised


def test_label_smoothing_and_dropout_reach_the_model():
    """Model returns (z_seen - z_true) + drop: L2 = σ² + 1 + p (+ cross terms ~ 0)."""
    batch = _batch(b=512)

    def probe(params, x, t, z=None, drop=None):
        s = (slice(None), None, None, None)
        d = jnp.zeros_like(z) if drop is None else drop.astype(jnp.float32)
        return jnp.broadcast_to((z - 2.0 + d)[s], x.shape)

    for sigma, p in [(0.0, 0.0), (0.5, 0.0), (0.0, 0.3)]:
        cfg = DDPMConfig(loss="l2", label_smoothing=sigma, dropout=p)
        val, _ = jax.jit(ddpm_loss(probe, SCHED, cfg))(None, batch, jax.random.key(3))
        np.testing.assert_allclose(float(val), sigma**2 + 1 + p, atol=0.08)


def test_smooth_redshift():
    key = jax.random.key(0)
    z = jnp.full((20000,), 2.0)
    s = np.asarray(smooth_redshift(key, z, 0.1))
    np.testing.assert_allclose(s.mean(), 2.0, atol=0.005)
    np.testing.assert_allclose(s.std(), 0.1, rtol=0.03)
    edge = np.asarray(smooth_redshift(key, jnp.array([0.0, 4.0] * 500), 0.5))
    assert edge.min() >= 0.0 and edge.max() <= 4.0 and (edge == 0.0).any() and (edge == 4.0).any()
    np.testing.assert_array_equal(smooth_redshift(key, z, 0.0), z)


def test_model_fn_conditioning_and_guidance():
    """ε_c = z, ε_u = -1 (null embedding): guided = -1 + w (z + 1)."""

    def fake(params, x, t, z=None, drop=None):
        s = (slice(None), None, None, None)
        out = z if drop is None else jnp.where(drop, -1.0, z)
        return jnp.broadcast_to(out[s], x.shape)

    x, t = jnp.zeros((3, 4, 4, 1)), jnp.full((3,), 0.5)
    z = jnp.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(ddpm_model_fn(fake, None, z)(x, t)[:, 0, 0, 0], z)
    np.testing.assert_allclose(ddpm_model_fn(fake, None, 1.5)(x, t)[:, 0, 0, 0], [1.5] * 3)
    np.testing.assert_allclose(ddpm_model_fn(fake, None, z, guidance=1.0)(x, t)[:, 0, 0, 0], z)
    g = ddpm_model_fn(fake, None, z, guidance=3.0)(x, t)[:, 0, 0, 0]
    np.testing.assert_allclose(g, -1 + 3.0 * (z + 1), rtol=1e-6)


def test_presets_and_validation():
    c = DDPMConfig()
    assert (c.loss, c.huber_delta, c.dropout) == ("huber", 1.0, 0.0)
    t = ddpm_train_config(steps=10)
    assert (t.lr, t.ema_decay, t.grad_clip, t.batch_size) == (5e-5, 0.995, None, 128)
    assert ddpm_train_config(steps=10, lr=1e-3).lr == 1e-3
    with pytest.raises(ValueError, match="loss"):
        DDPMConfig(loss="l1")
    with pytest.raises(ValueError, match="dropout"):
        DDPMConfig(dropout=1.0)
    with pytest.raises(KeyError, match="redshift"):
        ddpm_loss(lambda *a, **k: None, SCHED)(None, {"image": jnp.zeros((2, 4, 4, 1))}, None)


# ----------------------------------------------------------------------------- learning

PAT_A = np.where(np.arange(8)[None, :] < 4, 1.0, -1.0) * np.ones((8, 1))  # left half bright
PAT_B = np.where((np.arange(8)[:, None] + np.arange(8)[None, :]) % 2 == 0, 1.0, -1.0)  # checker
Z_A, Z_B = 0.5, 3.0


def _mlp_init(key, hidden=256):
    sizes = [64 + 16 + 16, hidden, hidden, 64]
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (a, b)) * (1.0 / math.sqrt(a)) * (0.0 if b == 64 else 1.0),
            "b": jnp.zeros(b),
        }
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def _mlp_apply(params, x, t, r=None, w=None, z=None, drop=None):
    """A tiny MLP predicting v = α ε - σ x0, returned as ε = α v + σ x_t (well conditioned)."""
    b = x.shape[0]
    freqs = jnp.exp(jnp.linspace(0.0, math.log(200.0), 8))
    temb = jnp.concatenate([jnp.sin(t[:, None] * freqs), jnp.cos(t[:, None] * freqs)], -1)
    zf = jnp.linspace(0.5, 4.0, 8)
    zemb = jnp.concatenate([jnp.sin(z[:, None] * zf), jnp.cos(z[:, None] * zf)], -1)
    h = jnp.concatenate([x.reshape(b, -1), temb, zemb], -1)
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jax.nn.silu(h)
    s = (slice(None), None, None, None)
    return SCHED.alpha(t)[s] * h.reshape(x.shape) + SCHED.sigma(t)[s] * x


def test_tiny_ddpm_learns_the_pattern_selected_by_redshift(tmp_path):
    """Train ~400 steps; DDIM-20 must produce pattern A at z=0.5 and B at z=3.0, every sample."""
    bs = 64

    def batches_fn(start):
        for i in range(start, 10**9):
            rng = np.random.default_rng([0, i])
            which = rng.integers(0, 2, bs)
            img = np.where(which[:, None, None], PAT_B, PAT_A)[..., None].astype(np.float32)
            z = np.where(which, Z_B, Z_A).astype(np.float32)
            yield {"image": img, "redshift": z}

    loss_fn = ddpm_loss(_mlp_apply, SCHED, DDPMConfig(loss="huber", label_smoothing=0.05))
    config = TrainConfig(
        steps=400,
        batch_size=bs,
        lr=2e-3,
        ema_decay=0.98,
        checkpoint_every=400,
        log_every=100,
        progress=False,
        seed=0,
    )
    state = train(loss_fn, _mlp_init(jax.random.key(0)), batches_fn, config, tmp_path)

    n = 16
    z = jnp.array([Z_A] * n + [Z_B] * n, jnp.float32)
    model_fn = ddpm_model_fn(_mlp_apply, state.ema_params, z)
    noise = jax.random.normal(jax.random.key(7), (2 * n, 8, 8, 1))
    x = np.asarray(
        jax.jit(lambda e: sample(model_fn, e, schedule=SCHED, method="ddim", num_steps=20))(noise)
    )[..., 0]
    err_a = ((x - PAT_A) ** 2).mean(axis=(1, 2))
    err_b = ((x - PAT_B) ** 2).mean(axis=(1, 2))
    agree_a = (np.sign(x[:n]) == PAT_A).mean(axis=(1, 2))
    agree_b = (np.sign(x[n:]) == PAT_B).mean(axis=(1, 2))
    assert (agree_a >= 0.95).all() and (agree_b >= 0.95).all(), (agree_a, agree_b)
    assert (err_a[:n] < 0.25).all() and (err_b[n:] < 0.25).all(), (err_a, err_b)
    assert (err_b[:n] > 1.0).all() and (err_a[n:] > 1.0).all(), (err_a, err_b)


def test_v_prediction_keeps_the_clean_image_estimate_bounded_at_high_noise():
    """Regression test for the realism diagnosis: stretched galaxy stamps have std ~0.2, and an
    ε-net's residual error is amplified by σ/α (~160 at t = 1) into its x0 estimate, which the
    deterministic samplers then integrate (sky noise 3-5x the data's, a frame of hundreds of sky
    σ). After the same short training, the v-net's x0 error at t = 1 stays near the data's std."""
    import optax
    from gen_backbones import build

    net = build("ddpm-tiny", image_size=16, channels=5)
    x_data = 0.2 * jax.random.normal(jax.random.key(5), (512, 16, 16, 5))
    z = jnp.ones((32,))
    err = {}
    for pred in ("eps", "v"):
        loss_fn = ddpm_loss(
            net.apply, SCHED, DDPMConfig(loss="l2", label_smoothing=0.0, prediction=pred)
        )
        params, opt = net.init(jax.random.key(0)), optax.adam(2e-3)
        state = opt.init(params)

        @jax.jit
        def step(p, st, key, loss_fn=loss_fn, opt=opt):
            k1, k2 = jax.random.split(key)
            idx = jax.random.randint(k1, (32,), 0, 512)
            g, _ = jax.grad(loss_fn, has_aux=True)(p, {"image": x_data[idx], "redshift": z}, k2)
            u, st = opt.update(g, st, p)
            return optax.apply_updates(p, u), st

        for i in range(150):
            params, state = step(params, state, jax.random.key(i))
        x0 = x_data[:64]
        t = jnp.ones((64,))
        a, s = SCHED.alpha(t)[:, None, None, None], SCHED.sigma(t)[:, None, None, None]
        xt = a * x0 + s * jax.random.normal(jax.random.key(9), x0.shape)
        out = net.apply(params, xt, t, z=jnp.ones((64,)))
        x0_hat = (xt - s * out) / a if pred == "eps" else a * xt - s * out
        err[pred] = float(jnp.sqrt(jnp.mean((x0_hat - x0) ** 2)))
    assert err["v"] < 0.4, err  # about the data's std: the mean image, the best guess at t = 1
    assert err["eps"] > 5 * err["v"], err


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_gaussian_baseline_is_the_exact_prediction_of_gaussian_data(prediction):
    """baseline="gaussian": a network that outputs 0 predicts exactly the ε (or v) of per-band
    Gaussian data, so the probability-flow ODE maps x_1 to mean + std (x_1 − α₁ mean)/s₁ (s₁ the
    marginal std at t = 1) — DDIM-100 must land there up to its first-order discretisation error
    (measured: ≤ 2.9 % of the value; 5.7 % with 50 steps) — and the loss needs the stats."""
    from diffusion_core import with_baseline

    mean, std = jnp.array([0.1, -0.3, 0.5]), jnp.array([0.2, 0.9, 0.5])
    cfg = DDPMConfig(prediction=prediction, baseline="gaussian")
    zero = lambda params, x, t, r=None, w=None, z=None, drop=None: jnp.zeros_like(x)  # noqa: E731
    apply = with_baseline(zero, SCHED, cfg, (mean, std))
    noise = jax.random.normal(jax.random.key(0), (4, 6, 6, 3))
    model_fn = ddpm_model_fn(apply, None, jnp.ones(4))
    x = sample(model_fn, noise, schedule=SCHED, method="ddim", num_steps=100, prediction=prediction)
    a1, s1 = SCHED.alpha(jnp.ones(())), SCHED.sigma(jnp.ones(()))
    want = mean + std * (noise - a1 * mean) / jnp.sqrt(a1**2 * std**2 + s1**2)
    np.testing.assert_allclose(x, want, rtol=0.04, atol=0.01)
    with pytest.raises(ValueError, match="stats"):
        ddpm_loss(zero, SCHED, cfg)
    assert with_baseline(zero, SCHED, DDPMConfig()) is zero


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_asinh_baseline_keeps_the_sky_noise_white_in_linear_flux(prediction):
    """baseline="gaussian_asinh": a network that paints a flat level L predicts exactly the ε (or
    v) of data N(L, (std g)²), g = cosh(norm mean)/cosh(norm L) — DDIM-100 lands on that
    Gaussian's ODE map (closed form as in the "gaussian" test) — so the samples' noise, mapped
    back through the stretch x = sinh(norm y), has the sky's linear-flux σ, where "gaussian" leaves
    the sky's stretched noise (cosh(norm L)/cosh(norm mean) times the sky's flux noise: item 16's
    fractional core noise of 1/softening). A network that outputs 0 gives "gaussian" exactly; the
    norm is required."""
    from diffusion_core import asinh_noise_gate, with_baseline

    # the gated noise std·g = 0.08, 0.11 stays above the schedule's smallest σ (0.01), below
    # which the last step's posterior mean removes it
    mean, std, norm = jnp.array([0.0, 0.05]), jnp.array([0.3, 0.4]), jnp.array([1.0, 0.8])
    level = jnp.array([1.9, 2.4])  # g = 0.29, 0.31
    cfg = DDPMConfig(prediction=prediction, baseline="gaussian_asinh")
    gauss = DDPMConfig(prediction=prediction, baseline="gaussian")
    zero = lambda params, x, t, r=None, w=None, z=None, drop=None: jnp.zeros_like(x)  # noqa: E731
    flat = lambda params, x, t, r=None, w=None, z=None, drop=None: level - mean + 0 * x  # noqa: E731
    x = jax.random.normal(jax.random.key(1), (3, 4, 4, 2))
    t = jnp.array([0.01, 0.3, 1.0])
    np.testing.assert_allclose(
        with_baseline(zero, SCHED, cfg, (mean, std, norm))(None, x, t),
        with_baseline(zero, SCHED, gauss, (mean, std))(None, x, t),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip

    noise = jax.random.normal(jax.random.key(0), (8, 16, 16, 2))
    a1, s1 = SCHED.alpha(jnp.ones(())), SCHED.sigma(jnp.ones(()))

    def draw(net, config, stats):
        model_fn = ddpm_model_fn(with_baseline(net, SCHED, config, stats), None, jnp.ones(8))
        return sample(model_fn, noise, schedule=SCHED, method="ddim", num_steps=100, prediction=prediction)  # fmt: skip

    got = draw(flat, cfg, (mean, std, norm))
    sd = std * asinh_noise_gate(level, mean, norm)
    want = level + sd * (noise - a1 * level) / jnp.sqrt(a1**2 * sd**2 + s1**2)
    np.testing.assert_allclose(got, want, rtol=0.04, atol=2e-3)  # ≤ 3 % of the noise

    def flux_sigma(y):  # per band, softening 1
        return np.asarray(jnp.std(jnp.sinh(norm * y), axis=(0, 1, 2)))

    sky = flux_sigma(mean + std * noise)
    np.testing.assert_allclose(flux_sigma(got) / sky, 1.0, atol=0.1)
    old = flux_sigma(draw(zero, gauss, (mean, std)) + level - mean)  # "gaussian"'s noise at L
    assert np.all(old / sky > 0.5 * np.cosh(norm * level)), old / sky
    with pytest.raises(ValueError, match="gaussian_asinh.*norm"):
        ddpm_loss(zero, SCHED, cfg, stats=(mean, std))


def test_pixel_weight_weighs_each_pixel_by_the_noisy_inputs_excess_over_the_sky():
    """pixel_weight=λ: each pixel's loss is multiplied by 1 + λ max(0, (x_t − α mean)/√(α² std²
    + σ²)), computed here independently from the x_t and t the network was given; a weight of x0
    (which would bias the optimum toward bright images) gives a different number."""
    mean, std = np.array([0.1, -0.2], np.float32), np.array([0.3, 0.5], np.float32)
    rng = np.random.default_rng(3)
    batch = {
        "image": rng.normal(0.5, 1.0, (16, 4, 4, 2)).astype(np.float32),
        "redshift": np.ones((16,), np.float32),
    }
    x0 = jnp.asarray(batch["image"])
    seen = []

    def off_by_one(params, x, t, z=None, drop=None):  # eps prediction with error exactly 1
        seen.append((np.asarray(x), np.asarray(t)))
        s = (slice(None), None, None, None)
        return (x - SCHED.alpha(t)[s] * x0) / SCHED.sigma(t)[s] + 1.0

    lam = 2.5
    cfg = DDPMConfig(loss="l2", label_smoothing=0.0, pixel_weight=lam)
    val, _ = ddpm_loss(off_by_one, SCHED, cfg, stats=(mean, std))(None, batch, jax.random.key(0))
    x_t, t = seen[-1]
    a = np.asarray(SCHED.alpha(jnp.asarray(t)))[:, None, None, None]
    s = np.asarray(SCHED.sigma(jnp.asarray(t)))[:, None, None, None]
    excess = np.maximum(0.0, (x_t - a * mean) / np.sqrt((a * std) ** 2 + s**2))
    np.testing.assert_allclose(float(val), np.mean(1 + lam * excess), rtol=1e-5)
    from_x0 = np.mean(1 + lam * np.maximum(0.0, (batch["image"] - mean) / std))
    assert abs(float(val) - from_x0) > 0.05 * from_x0
    plain = ddpm_loss(off_by_one, SCHED, DDPMConfig(loss="l2", label_smoothing=0.0))
    assert float(plain(None, batch, jax.random.key(0))[0]) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="pixel_weight"):
        ddpm_loss(off_by_one, SCHED, cfg)
    with pytest.raises(ValueError, match="pixel_weight"):
        DDPMConfig(pixel_weight=-1.0)


def test_colour_weight_costs_band_contrasts_more_and_luminosity_the_same():
    """colour_weight=κ, L2: a pixel's error e is charged C m² + (1 + κ)|e − m|² over its C bands
    (m the band mean), computed here by hand; an error equal in every band costs what it did,
    and the reported mse stays the plain one."""
    rng = np.random.default_rng(5)
    batch = {
        "image": rng.normal(0.0, 1.0, (8, 4, 4, 3)).astype(np.float32),
        "redshift": np.ones((8,), np.float32),
    }
    x0 = jnp.asarray(batch["image"])

    def off_by(e):
        def apply(params, x, t, z=None, drop=None):  # eps prediction with error exactly e
            s = (slice(None), None, None, None)
            return (x - SCHED.alpha(t)[s] * x0) / SCHED.sigma(t)[s] + jnp.asarray(e)

        return apply

    kappa, e = 3.0, np.array([1.0, 2.0, 4.0], np.float32)
    m = e.mean()
    want = (3 * m**2 + (1 + kappa) * np.sum((e - m) ** 2)) / 3
    cfg = DDPMConfig(loss="l2", label_smoothing=0.0, colour_weight=kappa)
    val, aux = ddpm_loss(off_by(e), SCHED, cfg)(None, batch, jax.random.key(0))
    assert float(val) == pytest.approx(want, rel=1e-5)
    assert float(aux["mse"]) == pytest.approx(np.mean(e**2), rel=1e-5)
    grey = np.full(3, 2.0, np.float32)
    val_grey, _ = ddpm_loss(off_by(grey), SCHED, cfg)(None, batch, jax.random.key(0))
    assert float(val_grey) == pytest.approx(4.0, rel=1e-5)
    with pytest.raises(ValueError, match="colour_weight"):
        DDPMConfig(colour_weight=-0.5)

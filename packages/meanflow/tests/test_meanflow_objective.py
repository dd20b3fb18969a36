"""The objective's guidance term, dropout handling, sampling distributions and config I/O."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from meanflow import PMFConfig, pmf_loss, sample_guidance_scale, sample_time_pairs
from mf_toy import mlp_apply, mlp_init, toy_batch

VARIANTS = ["algorithm1", "official"]


def _uncond_perturbed(scale):
    """The toy network, with its output on dropped-redshift rows shifted by ``scale``."""

    def apply(params, x, t, r=None, w=None, z=None, drop=None):
        out = mlp_apply(params, x, t, r, w, z, drop)
        return out + scale * drop.astype(jnp.float32)[:, None, None, None]

    return apply


@pytest.mark.parametrize("variant", VARIANTS)
def test_guidance_term_vanishes_at_w1_and_acts_above(variant):
    """v_uncond only enters through (1 - 1/w)(v_cond - v_uncond): at w = 1 changing the
    unconditional branch leaves the loss unchanged; at w = 3 it changes it."""
    params = mlp_init(jax.random.key(0))
    batch = toy_batch(np.random.default_rng(0), 64)
    key = jax.random.key(1)

    for w, changes in ((1.0, False), (3.0, True)):
        cfg = PMFConfig(variant=variant, w_dist="fixed", w_max=w, dropout=0.0, adaptive=False)
        run = jax.jit(lambda s, cfg=cfg: pmf_loss(_uncond_perturbed(s), cfg)(params, batch, key)[0])
        l0, l1 = float(run(0.0)), float(run(5.0))
        if changes:
            assert abs(l0 - l1) > 1e-2 * l0
        else:
            np.testing.assert_allclose(l0, l1, rtol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_metrics_and_loss_options(variant):
    params = mlp_init(jax.random.key(0))
    batch = toy_batch(np.random.default_rng(0), 64)
    key = jax.random.key(2)
    loss, m = pmf_loss(mlp_apply, PMFConfig(variant=variant, adaptive=False))(params, batch, key)
    assert set(m) >= {"loss", "mse_raw", "mse_fm", "drop_frac"}
    assert np.isfinite(float(loss)) and float(m["mse_raw"]) > 0
    # l2 loss is the per-example sum over pixels; mse_raw is the per-pixel mean: ratio = pixels
    np.testing.assert_allclose(float(loss), 2 * float(m["mse_raw"]), rtol=1e-5)
    # adaptive weighting: loss / sg(loss + eps) < 1 per example
    la, _ = pmf_loss(mlp_apply, PMFConfig(variant=variant, adaptive=True))(params, batch, key)
    assert 0 < float(la) < 1
    # huber <= l2 / 2 elementwise-summed bound
    huber = PMFConfig(variant=variant, loss="huber", adaptive=False)
    lh, mh = pmf_loss(mlp_apply, huber)(params, batch, key)
    assert float(lh) <= 0.5 * float(loss) + 1e-6
    np.testing.assert_allclose(float(mh["mse_raw"]), float(m["mse_raw"]), rtol=1e-5)
    with pytest.raises(KeyError, match="redshift"):
        pmf_loss(mlp_apply)(params, {"image": batch["image"]}, key)


def test_time_and_guidance_sampling():
    cfg = PMFConfig()
    t, r = sample_time_pairs(jax.random.key(0), 4000, cfg)
    t, r = np.asarray(t), np.asarray(r)
    assert np.all(t >= r) and np.all((t > 0) & (t < 1))
    assert np.all(t[:2000] == r[:2000]) and np.mean(t[2000:] > r[2000:]) > 0.99
    # r = t rows: one logit-normal(0.8, 0.8)-max draw; check the median of logit(max of two)
    logit = np.log(t[:2000] / (1 - t[:2000]))
    # median of max of two N(0.8, 0.8): 0.8 + 0.8 * Phi^-1(sqrt(0.5)) = 0.8 + 0.8 * 0.5449
    assert abs(np.median(logit) - (0.8 + 0.8 * 0.5449)) < 0.06
    w = np.asarray(sample_guidance_scale(jax.random.key(1), 20000, cfg))
    assert w.min() >= 1 and w.max() <= 7
    # density ∝ 1/w: log w is uniform on [0, log 7]
    np.testing.assert_allclose(np.mean(np.log(w)), np.log(7) / 2, rtol=0.02)
    wu = np.asarray(sample_guidance_scale(jax.random.key(1), 20000, PMFConfig(w_dist="uniform")))
    np.testing.assert_allclose(wu.mean(), 4.0, rtol=0.02)


def test_config_round_trip():
    cfg = PMFConfig(variant="official", loss="huber", adaptive=True, label_smoothing=0.0)
    assert PMFConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        PMFConfig.from_dict({"bogus": 1})


def test_official_variant_draws_like_the_public_code():
    """Official: the r = t rows take one logit-normal draw (median sigmoid(p_mean) = 0.690, the
    max of two has median 0.775), w is log-uniform on [1, 1 + w_max], adaptive weight on."""
    from meanflow import sample_guidance_scale, sample_time_pairs

    n = 200_000
    med = {}
    for v in ("algorithm1", "official"):
        cfg = PMFConfig(variant=v)
        t, r = sample_time_pairs(jax.random.key(0), n, cfg)
        eq = np.asarray(t == r)
        assert abs(eq.mean() - cfg.frac_equal) < 1e-3
        med[v] = float(np.median(np.asarray(t)[eq]))
        w = np.asarray(sample_guidance_scale(jax.random.key(1), n, cfg))
        top = cfg.w_max + (1.0 if v == "official" else 0.0)
        assert w.min() >= 1.0 and abs(w.max() - top) < 0.01
        np.testing.assert_allclose(np.mean(np.log(w)), np.log(top) / 2, rtol=0.01)
    assert abs(med["official"] - 1 / (1 + np.exp(-0.8))) < 0.005
    assert abs(med["algorithm1"] - 0.775) < 0.005
    assert PMFConfig(variant="official").use_adaptive
    assert (
        not PMFConfig().use_adaptive
        and not PMFConfig(variant="official", adaptive=False).use_adaptive
    )


def test_uniform_time_mixture_covers_low_noise():
    """t_uniform = 0 draws what the logit-normal sampler draws; t_uniform = 1 draws t = max and
    r = min of two uniforms (CDFs x² and 1 - (1 - x)²; on the r = t rows t is the max of two);
    t_uniform = 0.4 mixes: P(t < 0.5) = 0.4 · 0.25 + 0.6 · P_logit-normal(t < 0.5)."""
    n = 200_000
    key = jax.random.key(3)
    t0, r0 = (np.asarray(a) for a in sample_time_pairs(key, n, PMFConfig(t_uniform=0.0)))
    # the study's sampler written out independently: two logit-normal draws from the key's two
    # halves, t = max, r = min, r = t on the first half of the rows
    k1, k2 = jax.random.split(key)
    a, b = (np.asarray(jax.nn.sigmoid(0.8 + 0.8 * jax.random.normal(k, (n,)))) for k in (k1, k2))
    t_ref = np.maximum(a, b)
    r_ref = np.where(np.arange(n) < n // 2, t_ref, np.minimum(a, b))
    np.testing.assert_array_equal(t0, t_ref)
    np.testing.assert_array_equal(r0, r_ref)
    t1, r1 = (np.asarray(a) for a in sample_time_pairs(key, n, PMFConfig(t_uniform=1.0)))
    rest = slice(n // 2, None)  # the r < t rows
    for x in (0.1, 0.25, 0.5, 0.8):
        assert abs(np.mean(t1 < x) - x**2) < 0.005
        assert abs(np.mean(r1[rest] < x) - (1 - (1 - x) ** 2)) < 0.006
    tm, _ = (np.asarray(a) for a in sample_time_pairs(key, n, PMFConfig(t_uniform=0.4)))
    p_ln = np.mean(t0 < 0.5)  # the logit-normal max's own rate (~2.5 %)
    assert p_ln < 0.04
    assert abs(np.mean(tm < 0.5) - (0.4 * 0.25 + 0.6 * p_ln)) < 0.005
    with pytest.raises(ValueError, match="t_uniform"):
        PMFConfig(t_uniform=1.5)


@pytest.mark.parametrize("delta", [0.2, 1.0, 4.0])
def test_pmf_and_ddpm_huber_agree_for_any_delta(delta):
    """One Huber for both objectives: on the same errors, pMF's per-example loss is the sum over
    pixels of the DDPM's per-element loss, for any δ (a second, different copy would break it)."""
    from diffusion_core import DDPMConfig
    from diffusion_core._ddpm import _per_element
    from meanflow._objective import _per_example

    err = jnp.asarray(np.random.default_rng(0).normal(0, 2 * delta, (3, 5, 5, 2)), jnp.float32)
    pmf = _per_example(err, PMFConfig(loss="huber", huber_delta=delta))
    ddpm = _per_element(err, DDPMConfig(loss="huber", huber_delta=delta)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(np.asarray(pmf), np.asarray(ddpm), rtol=1e-6)


def test_config_round_trip_and_the_old_t_min_name():
    """to_dict/from_dict round-trips; a config stored before the rename (t_min) loads as t_clip,
    and an unknown key is named."""
    cfg = PMFConfig(t_clip=0.1, loss="huber")
    assert PMFConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in cfg.to_dict().items() if k != "t_clip"} | {"t_min": 0.1}
    assert PMFConfig.from_dict(old) == cfg
    with pytest.raises(ValueError, match="unknown key.*'t_max'"):
        PMFConfig.from_dict({"t_max": 1.0})

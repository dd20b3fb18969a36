import pytest
from galgen._presets import REPRODUCE_PRESETS, TRAIN_PRESETS, resolve, study_runs


def test_overrides_are_typed_and_nested():
    cfg = resolve("pmf-1m", ["train.steps=7", "objective.loss=huber", "train.lr=1e-3"])
    assert cfg["train"]["steps"] == 7 and isinstance(cfg["train"]["steps"], int)
    assert cfg["objective"]["loss"] == "huber"
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    # the preset table itself is untouched
    assert TRAIN_PRESETS["pmf-1m"]["train"]["steps"] != 7


@pytest.mark.parametrize("bad", ["steps=3", "model.x=1", "train.steps"])
def test_bad_override_names_the_key(bad):
    with pytest.raises(ValueError, match="--set"):
        resolve("ddpm-tiny", [bad])


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="ddpm-paper"):
        resolve("nope")


def test_ablation_grid_of_table3_is_present():
    grid = {
        (c["backbone"]["preset"], c["objective"]["loss"], c["objective"]["label_smoothing"] > 0)
        for c in TRAIN_PRESETS.values()
        if c["model"] == "pmf"
    }
    assert {
        ("pmf-1m", "l2", True),
        ("pmf-1m", "huber", True),
        ("pmf-1m", "huber", False),
        ("pmf-25m", "l2", True),
        ("pmf-25m", "l2", False),
    } <= grid
    assert REPRODUCE_PRESETS["paper"]["ddpm_steps"] == 1000


def _runs(preset):
    """Every resolved training config a reproduce preset trains, by run name."""
    runs = study_runs(REPRODUCE_PRESETS[preset])
    return {name: resolve(tp, over) for name, (_, tp, over) in runs.items()}


@pytest.mark.parametrize("preset", sorted(REPRODUCE_PRESETS))
def test_every_reproduce_run_is_a_valid_config(preset):
    """A typo in a preset must fail here, not hours into a run."""
    from diffusion_core import DDPMConfig, TrainConfig
    from gen_backbones import PRESETS
    from meanflow import PMFConfig

    planned = study_runs(REPRODUCE_PRESETS[preset])
    for name, cfg in _runs(preset).items():
        assert cfg["model"] == planned[name][0], name  # reproduce trains the preset's own model
        assert cfg["backbone"]["preset"] in PRESETS, name
        (DDPMConfig if cfg["model"] == "ddpm" else PMFConfig)(**cfg["objective"])
        TrainConfig(**cfg["train"])


def test_cpu_pmf_trains_the_low_noise_maps_of_multi_step_sampling():
    """Diagnosis item 14: the steps after the first of a 2- or 4-step pMF sample start at
    t <= 0.5; the CPU recipe must train such times on several per cent of its r < t rows (the
    study's sampler: 2.5 %), while the study's pmf presets keep the study's sampler."""
    import jax
    import numpy as np
    from meanflow import PMFConfig, sample_time_pairs

    def low_t_rate(preset):
        cfg = PMFConfig.from_dict(resolve(preset)["objective"])
        t, r = (np.asarray(a) for a in sample_time_pairs(jax.random.key(0), 100_000, cfg))
        return np.mean(t[r < t] <= 0.5)

    assert low_t_rate("pmf-cpu") > 0.04
    assert low_t_rate("pmf-1m") < 0.03


def test_cpu_pmf_keeps_bright_cores_as_smooth_as_real_ones(tmp_path):
    """Diagnosis item 15: where the network paints a bright galaxy, the CPU recipe's one-step
    sample must carry about the sky's linear-flux noise, as real stamps do (the stretch shrinks it
    in the cores) — the former recipe passed the sky's *stretched* noise through, which maps back
    to ~cosh(norm · level) times the sky's flux noise (x37-74 at this level). Stretch and sky stats
    are fitted on synthetic stamps by the functions ``galgen.train`` uses; the study's pmf-1m has
    no baseline."""
    import galgen
    import jax
    import jax.numpy as jnp
    import numpy as np
    from galaxiesml_data import ArcsinhStretch, find_split, open_split
    from galgen._study import sky_stats, transform_options
    from meanflow import PMFConfig, sample
    from morph_metrics import sky_noise

    galgen.synth(tmp_path, n_train=64, n_val=8, n_test=8, size=16, seed=0, workers=1)
    x = np.asarray(open_split(find_split(tmp_path, "training")).images, np.float32)
    cfg = resolve("pmf-cpu")
    tf = ArcsinhStretch.fit(x, **transform_options(cfg["data"]))
    y = tf.forward(x)
    stats = sky_stats(y)  # as galgen.train stores them in config.json
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    level = mean + 0.5  # a core half a stretched unit above the sky (z < 0.5 cores: 0.5-0.8)
    flat = lambda params, x, t, r=None, w=None, z=None, drop=None: level - mean + 0 * x  # noqa: E731
    noise = jax.random.normal(jax.random.key(0), (8, 16, 16, 5))
    out = sample(flat, None, noise, jnp.ones(8), config=PMFConfig.from_dict(cfg["objective"]),
                 stats=(mean, std, tf.norm))  # fmt: skip
    real_sky = np.median(sky_noise(x, 4), axis=0)  # the stamps' own flux noise (robust σ)
    ratio = tf.inverse(np.asarray(out)).std(axis=(0, 1, 2)) / real_sky
    assert np.all((ratio > 0.8) & (ratio < 1.5)), ratio  # measured 1.12-1.28; "gaussian": 37-74
    assert resolve("pmf-1m")["objective"].get("baseline", "none") == "none"


def test_paper_ablations_are_table3():
    p = REPRODUCE_PRESETS["paper"]
    rows = {
        label: (c["backbone"]["preset"], c["objective"]["loss"], c["objective"]["label_smoothing"])
        for label, c in _runs("paper").items()
        if label != "ddpm"
    }
    assert rows.pop("pmf") == ("pmf-1m", "l2", 0.01) and p["ablation_base"] == "p-MF 1M L2"
    assert rows == {
        "p-MF 1M Huber": ("pmf-1m", "huber", 0.01),
        "p-MF 1M Huber-NLS": ("pmf-1m", "huber", 0.0),
        "p-MF 25M L2": ("pmf-25m", "l2", 0.01),
        "p-MF 25M L2-NLS": ("pmf-25m", "l2", 0.0),
    }


def test_cpu_ablations_are_the_full_loss_by_smoothing_grid():
    runs = _runs("cpu")
    grid = {
        (c["objective"]["loss"], c["objective"]["label_smoothing"] > 0)
        for label, c in runs.items()
        if label != "ddpm"
    }
    assert grid == {("l2", True), ("l2", False), ("huber", True), ("huber", False)}
    # every Table 3 run trains exactly like the main pMF run apart from the objective
    assert len({str(c["train"]) for label, c in runs.items() if label != "ddpm"}) == 1
    assert REPRODUCE_PRESETS["cpu"]["n_eval"] >= 1000


def test_ddpm_tiny_v_differs_from_ddpm_tiny_only_in_the_prediction():
    from diffusion_core import DDPMConfig

    a, b = resolve("ddpm-tiny"), resolve("ddpm-tiny-v")
    assert DDPMConfig(**b["objective"]).prediction == "v"
    assert DDPMConfig(**a["objective"]).prediction == "eps"
    b["objective"]["prediction"] = "eps"
    a["objective"].setdefault("prediction", "eps")
    a["preset"] = b["preset"]
    assert a == b


def test_cpu_presets_train_v_prediction_on_data_of_unit_scale(tmp_path):
    """Regression for the realism diagnosis (docs/results.md, items 1, 4 and 5): every smoke and
    cpu run adds to the Gaussian-sky baseline, and the DDPMs must predict v (the eps-net's x0 estimate is amplified ~160x at t = 1) and stretch the
    data to a std near the schedule's unit variance (std ~0.24 with the old peak=1 drew a frame).
    Measured on synthetic stamps, with the transform fitted as ``train`` fits it."""
    import galgen
    import numpy as np
    from galaxiesml_data import ArcsinhStretch, find_split, open_split
    from galgen._study import transform_options

    galgen.synth(tmp_path, n_train=64, n_val=8, n_test=8, size=16, seed=0, workers=1)
    x = np.asarray(open_split(find_split(tmp_path, "training")).images, np.float32)
    old = ArcsinhStretch.fit(x).forward(x).std()
    assert old < 0.35  # what the study's stretch gives: the test can see the difference
    for preset in ("smoke", "cpu"):
        runs = _runs(preset)
        # both models add to the exact Gaussian-sky prediction (pMF drew no sky noise without it)
        # (pMF's variant also shrinks that noise where it paints a galaxy: diagnosis item 15)
        baselines = {(c["model"], c["objective"].get("baseline")) for c in runs.values()}
        assert baselines == {("ddpm", "gaussian"), ("pmf", "gaussian_asinh")}, preset
        cfg = runs["ddpm"]
        assert cfg["objective"]["prediction"] == "v", preset
        std = ArcsinhStretch.fit(x, **transform_options(cfg["data"])).forward(x).std()
        # ddpm-cpu's softening-2 stretch (item 12): ~0.9 on 32x32 stamps, ~1.1 on these 16x16
        assert 0.45 < std < 1.5, (preset, std)


def test_cpu_study_ddpm_draws_the_rare_high_redshift_galaxies_more_often():
    """Diagnosis item 19: in plain epochs the 0.6 % of the cpu training galaxies at z >= 3 did not
    teach the DDPM the g-band drop-out; the cpu preset's DDPM draws its batches with redshift
    weights that make them several times more frequent, while the smoke preset (where the same
    weights cost the common redshifts' colours), the pMF runs (measured mixed) and the study's
    presets draw every galaxy once per epoch."""
    import numpy as np
    from galaxiesml_data import redshift_weights

    # the cpu preset's synthetic training redshifts, per 0.25-wide bin from z = 0 (8,192 galaxies)
    counts = [1281, 2093, 1650, 1033, 675, 574, 337, 208, 138, 81, 46, 28, 20, 11, 10, 7]
    z = np.repeat(np.arange(16) * 0.25 + 0.125, counts)
    high = z >= 3

    def share(cfg):
        w = redshift_weights(z, cfg["data"].get("z_balance", 0.0))
        return w[high].sum() / w.sum()

    assert high.mean() < 0.01
    cpu = _runs("cpu")
    assert 5 * high.mean() < share(cpu["ddpm"]) < 0.1  # several times more, but not every bin alike
    plain = [c for n, c in cpu.items() if n != "ddpm"] + list(_runs("smoke").values())
    plain += [resolve(p) for p in ("ddpm-cpu", "ddpm-paper", "pmf-1m")]
    assert all(share(c) == pytest.approx(high.mean()) for c in plain)

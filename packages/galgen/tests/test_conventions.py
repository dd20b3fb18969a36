"""Each shared convention has one owner; where two independent packages must hold the same data
literal (they cannot import each other), these tests fail the day the copies drift apart."""

from __future__ import annotations

import diffusion_core as dc
import galaxiesml_data as gd
import meanflow as mf
import morph_metrics as mm
import numpy as np
import pytest
from galgen._presets import TRAIN_PRESETS

PAPER = ["ddpm-paper", "pmf-1m", "pmf-1m-huber", "pmf-1m-huber-nls", "pmf-25m", "pmf-25m-nls"]


@pytest.mark.parametrize("name", PAPER)
def test_paper_presets_train_as_the_study(name):
    """Thesis Table A.1 (lr 5e-5, EMA 0.995, no gradient clipping, constant lr) for the DDPM and
    every pMF paper preset, and exactly ``diffusion_core.ddpm_train_config`` (AdamW, wd 0.01)."""
    train = TRAIN_PRESETS[name]["train"]
    got = dc.TrainConfig.from_dict({**train, "seed": 42})
    assert got == dc.ddpm_train_config(train["steps"], train["batch_size"])
    assert (got.lr, got.ema_decay, got.grad_clip) == (5e-5, 0.995, None)
    assert (got.lr_decay, got.warmup_steps) == ("none", 0)


def test_ddpm_paper_objective_is_table_a2():
    """Table A.2: linear β 1e-4 → 0.02 over 1000 steps, Huber loss, no classifier-free guidance."""
    cfg = dc.DDPMConfig(**TRAIN_PRESETS["ddpm-paper"]["objective"])
    assert (cfg.loss, cfg.huber_delta, cfg.prediction) == ("huber", 1.0, "eps")
    assert cfg.dropout == 0.0  # no CFG: the null embedding is never trained
    sched = dc.ddpm_schedule()
    n = np.arange(1, 1001)
    alpha_bar = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))  # Ho et al. from the table
    t = n / 1000.0
    np.testing.assert_allclose(np.asarray(sched.alpha(t)) ** 2, alpha_bar, rtol=1e-5)


@pytest.mark.parametrize("name", [p for p in PAPER if p.startswith("pmf")])
def test_pmf_paper_objectives_are_table_a3(name):
    """Table A.3: (t, r) logit-normal(0.8, 0.8), w_max 7, 50 % of rows with t ≠ r, label dropout
    0.1 — for every pMF paper preset (they differ only in loss and label smoothing, Table 3)."""
    obj = TRAIN_PRESETS[name]["objective"]
    cfg = mf.PMFConfig(**obj)
    assert (cfg.p_mean, cfg.p_std, cfg.w_max, cfg.frac_equal, cfg.dropout) == (
        0.8,
        0.8,
        7.0,
        0.5,
        0.1,
    )
    assert set(obj) <= {"loss", "label_smoothing"}  # nothing else departs from the study
    assert cfg.baseline == "none" and cfg.variant == "algorithm1"


def test_redshift_domain_has_one_value():
    """The models' domain (diffusion_core), the data files' valid range (galaxiesml_data) and the
    study's redshift bins (morph_metrics) cover the same [0, 4]."""
    assert dc.REDSHIFT_DOMAIN == gd.REDSHIFT_RANGE == (0.0, 4.0)
    for edges in (mm.BCD_EDGES, mm.COLOUR_Z_EDGES):
        assert (edges[0], edges[-1]) == dc.REDSHIFT_DOMAIN
    z = dc.smooth_redshift(__import__("jax").random.key(0), np.array([0.0, 4.0] * 200), 1.0)
    assert float(np.min(z)) == dc.REDSHIFT_DOMAIN[0] and float(np.max(z)) == dc.REDSHIFT_DOMAIN[1]


def test_hsc_constants_agree():
    """HSC pixel scale, zero point, bands and per-band seeing: the data schema (galaxiesml_data,
    which synthesises with them) and the measurement preset (morph_metrics.HSC) hold the same."""
    assert mm.HSC.bands == mm.HSC_BANDS == tuple(gd.BANDS)
    assert mm.HSC.pixel_scale == gd.PIXEL_SCALE
    assert mm.HSC.psf_fwhm == tuple(gd.PSF_FWHM[b] for b in gd.BANDS)
    assert mm.HSC_ZERO_POINT == gd.ZERO_POINT


@pytest.mark.parametrize("name", sorted(TRAIN_PRESETS))
def test_every_preset_is_a_valid_typed_config(name):
    """Each training preset builds its typed sections (DDPMConfig / PMFConfig, TrainConfig, the
    backbone) with every value of the declared type — what `galgen train` checks before writing."""
    from galgen._presets import resolve
    from galgen._study import check_config

    cfg = resolve(name) | {"image_size": 64 if "paper" in name else 32, "channels": 5, "seed": 0}
    check_config(cfg)
    obj = (dc.DDPMConfig if cfg["model"] == "ddpm" else mf.PMFConfig).from_dict(cfg["objective"])
    assert set(cfg["objective"]) <= set(obj.to_dict())

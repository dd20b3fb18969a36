"""Explicit survey parameters, per-pixel mask and variance, configurable histogram ranges."""

import galsim
import numpy as np
import pytest
from morph_metrics import compare, histograms, jsd, measure

SCALE, FWHM = 0.168, 0.7
KW = {"pixel_scale": SCALE, "psf_fwhm": FWHM, "n_workers": 1}


@pytest.fixture(scope="module")
def galaxy():
    """A Sérsic galaxy (n 1.5, q 0.6) with sky noise, and a bright blob planted on its outskirts."""
    gal = galsim.Sersic(1.5, half_light_radius=0.6, flux=1000.0).shear(
        q=0.6, beta=0.4 * galsim.radians
    )
    img = galsim.Convolve(gal, galsim.Gaussian(fwhm=FWHM)).drawImage(nx=64, ny=64, scale=SCALE)
    img.addNoiseSNR(galsim.GaussianNoise(galsim.BaseDeviate(3)), 150, preserve_flux=True)
    clean = img.array.astype(np.float64)
    yy, xx = np.mgrid[:64, :64]
    bad = (np.abs(yy - 40) <= 3) & (np.abs(xx - 38) <= 3)  # 7x7 px, ~9 px from the centre
    dirty = clean.copy()
    dirty[bad] += 5 * clean.max()  # a cosmic ray / satellite trail / bad column
    return clean, dirty, bad


def test_mask_removes_a_planted_artifact(galaxy):
    clean, dirty, bad = galaxy
    ref = measure(clean[None], **KW)
    hit = measure(dirty[None], **KW)
    fixed = measure(dirty[None], mask=bad[None], **KW)
    assert ref["flag"][0] == 0 and fixed["flag"][0] == 0, fixed["fail_reason"]
    # the artifact moves the fit; masked, the fit is the clean one
    assert abs(hit["ellipticity"][0] - ref["ellipticity"][0]) > 0.05
    assert fixed["ellipticity"][0] == pytest.approx(ref["ellipticity"][0], abs=0.02)
    assert fixed["sersic_index"][0] == pytest.approx(ref["sersic_index"][0], rel=0.05)
    assert fixed["semi_major_axis"][0] == pytest.approx(ref["semi_major_axis"][0], rel=0.05)
    # paper protocol: the masked moments are the clean ones too
    p_ref = measure(clean[None], protocol="paper")
    p_hit = measure(dirty[None], protocol="paper")
    p_fix = measure(dirty[None], protocol="paper", mask=bad[None])
    assert abs(p_hit["semi_major_axis"][0] / p_ref["semi_major_axis"][0] - 1) > 0.1
    assert p_fix["semi_major_axis"][0] == pytest.approx(p_ref["semi_major_axis"][0], rel=0.05)
    assert p_fix["ellipticity"][0] == pytest.approx(p_ref["ellipticity"][0], abs=0.01)
    # NaN pixels are allowed under the mask only
    holed = clean.copy()
    holed[bad] = np.nan
    assert measure(holed[None], **KW)["fail_reason"][0].endswith("NaN/inf pixels")
    ok = measure(holed[None, ..., None], mask=bad[None, ..., None], **KW)  # (N, H, W, C) mask
    assert ok["flag"][0] == 0
    assert ok["ellipticity"][0] == pytest.approx(ref["ellipticity"][0], abs=0.02)


def test_variance_weights_the_fit(galaxy):
    clean, dirty, bad = galaxy
    ref = measure(clean[None], **KW)
    sky = ref["background_rms"][0]
    var = np.full(clean.shape, sky**2)
    same = measure(clean[None], variance=var[None], **KW)
    np.testing.assert_allclose(same["sersic_index"], ref["sersic_index"], rtol=0.02)
    # planted defect with an honest variance map: the fit (not the segmentation) ignores it
    var_bad = var.copy()
    var_bad[bad] = 1e8 * sky**2
    hit = measure(dirty[None], variance=var[None], **KW)
    down = measure(dirty[None], variance=var_bad[None, ..., None], **KW)
    err_hit = abs(hit["sersic_index"][0] / ref["sersic_index"][0] - 1)
    err_down = abs(down["sersic_index"][0] / ref["sersic_index"][0] - 1)
    assert err_down < 0.5 * err_hit, (err_down, err_hit)


def test_histogram_ranges_are_configurable():
    a, b = np.full(50, 30.0), np.full(50, 40.0)  # px, beyond the 64-px default range [0, 20]
    p, q, _ = histograms(a, b, statistic="semi_major_axis")
    assert jsd(p, q) == 0.0  # both clipped into the last bin: blind
    p, q, edges = histograms(a, b, statistic="semi_major_axis", ranges={"semi_major_axis": (0, 80)})
    assert edges[-1] == 80 and jsd(p, q) == pytest.approx(1.0)
    cols_a = {"semi_major_axis": a, "flag": np.zeros(50)}
    cols_b = {"semi_major_axis": b, "flag": np.zeros(50)}
    z = np.linspace(0.1, 3.0, 50)
    blind = compare(cols_a, cols_b, z, statistics=("semi_major_axis",), n_boot=2)
    seen = compare(
        cols_a,
        cols_b,
        z,
        statistics=("semi_major_axis",),
        n_boot=2,
        ranges={"semi_major_axis": (0, 80)},
        bins=20,
    )
    by_edges = compare(
        cols_a,
        cols_b,
        z,
        statistics=("semi_major_axis",),
        n_boot=2,
        edges={"semi_major_axis": np.array([0.0, 35.0, 80.0])},
    )
    assert blind["jsd"]["semi_major_axis"][0] == 0.0
    assert seen["jsd"]["semi_major_axis"][0] == pytest.approx(1.0)
    assert by_edges["jsd"]["semi_major_axis"][0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ranges="):
        histograms(a, b, statistic="gini")

"""statmorph protocol against GalSim ground truth (Sérsic galaxies with known n, e, PSF, noise)."""

import concurrent.futures as cf

import galsim
import numpy as np
import pytest
from morph_metrics import HSC, gaussian_psf, measure

SCALE, FWHM = 0.168, 0.7  # arcsec/px, Gaussian PSF FWHM in arcsec


def render(n, rhalf_px, q, snr, seed, size=64):
    """Sheared Sérsic (half-light radius of the circularized profile) * Gaussian PSF + noise."""
    gal = galsim.Sersic(n, half_light_radius=rhalf_px * SCALE, flux=1000.0)
    gal = gal.shear(q=q, beta=(37.0 * seed % 180) * galsim.degrees)
    img = galsim.Convolve(gal, galsim.Gaussian(fwhm=FWHM)).drawImage(nx=size, ny=size, scale=SCALE)
    img.addNoiseSNR(galsim.GaussianNoise(galsim.BaseDeviate(seed)), snr, preserve_flux=True)
    return img.array


@pytest.fixture(scope="module")
def truth_and_cols():
    rng = np.random.default_rng(1)
    truth, imgs = [], []
    for i in range(32):
        n, rh, q, snr = (
            rng.uniform(0.5, 4),
            rng.uniform(2, 5),
            rng.uniform(0.4, 1),
            rng.uniform(50, 200),
        )
        truth.append((n, rh, q))
        imgs.append(render(n, rh, q, snr, seed=i + 1))
    imgs = np.stack(imgs)[..., None].astype(np.float32)
    cols = measure(imgs, protocol="statmorph", pixel_scale=SCALE, psf_fwhm=FWHM, chunk_size=4)
    return np.array(truth), cols, imgs


def test_statmorph_recovers_sersic_index_and_ellipticity(truth_and_cols):
    truth, cols, _ = truth_and_cols
    n, rh, q = truth.T
    assert np.mean(cols["flag"] == 0) >= 0.8
    rel_n = np.abs(cols["sersic_index"] / n - 1)
    d_e = np.abs(cols["ellipticity"] - (1 - q))
    assert np.nanmedian(rel_n) <= 0.15
    assert np.nanmedian(d_e) <= 0.05
    # semi_major_axis is the half-light semi-major axis of the PSF-deconvolved model
    rel_a = np.abs(cols["semi_major_axis"] / (rh / np.sqrt(q)) - 1)
    assert np.nanmedian(rel_a) <= 0.15
    assert np.all(np.abs(cols["x_centroid"] - 31.5) < 1.5)
    assert np.all(cols["isophotal_area"] > np.pi * rh**2)


def test_psf_kernel_equals_psf_fwhm_and_threads_match(truth_and_cols):
    _, cols, imgs = truth_and_cols
    kernel = gaussian_psf(FWHM / SCALE) * 3.0  # normalized inside
    with cf.ThreadPoolExecutor(2) as ex:
        via_kernel = measure(imgs[:3], psf=kernel, psf_fwhm=None, executor=ex, chunk_size=1)
    for k in ("sersic_index", "ellipticity", "semi_major_axis", "isophotal_area", "flag"):
        np.testing.assert_allclose(via_kernel[k], cols[k][:3], rtol=1e-5, err_msg=k)


def test_hsc_preset_feeds_measure():
    kw = HSC.kwargs("i")
    assert kw == {"band": 2, "pixel_scale": 0.168, "psf_fwhm": 0.58, "gain": None}
    img = np.zeros((1, 48, 48, 5), np.float32)
    img[0, :, :, 2] = render(1.0, 3.0, 0.7, 150, seed=5, size=48)
    cols = measure(img, **kw, n_workers=1)
    assert cols["sersic_index"][0] == pytest.approx(1.0, rel=0.3)
    # the same survey by name: band by name, pixel scale and that band's PSF from the preset
    named = measure(img, "i", survey=HSC, n_workers=1)
    for k in ("sersic_index", "ellipticity", "semi_major_axis", "flag"):
        np.testing.assert_array_equal(named[k], cols[k], err_msg=k)
    with pytest.raises(ValueError, match="unknown band"):
        measure(img, "u", survey=HSC)
    with pytest.raises(ValueError, match="unknown band"):
        HSC.kwargs("u")


def test_statmorph_all_agrees_with_fast_mode_and_fills_extras(truth_and_cols):
    _, cols, imgs = truth_and_cols
    assert np.all(np.isnan(cols["concentration"]))  # fast mode skips CAS / Gini-M20
    full = measure(imgs[:2], pixel_scale=SCALE, psf_fwhm=FWHM, statmorph_all=True, n_workers=1)
    for k in ("concentration", "asymmetry", "gini", "m20", "half_light_radius", "sn_per_pixel"):
        assert np.all(np.isfinite(full[k])), k
    # same fit, started from statmorph's own guess instead of ours
    np.testing.assert_allclose(full["sersic_index"], cols["sersic_index"][:2], rtol=0.02)
    np.testing.assert_allclose(full["ellipticity"], cols["ellipticity"][:2], atol=0.01)

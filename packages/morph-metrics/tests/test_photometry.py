"""Photometry, image statistics, the real-vs-real floor and photo-z: closed forms and planted
defects that a blind metric would miss (see conftest.py for the GalSim population)."""

import numpy as np
import pytest
from morph_metrics import (
    aperture_flux,
    asinh_mag,
    border_excess,
    colour_names,
    colours,
    compare_columns,
    floor_ratio,
    match_redshifts,
    measure,
    photometry,
    photoz_features,
    photoz_metrics,
    pixel_histogram,
    radial_profile,
    real_floor,
    sky_noise,
    sky_ratio,
    softening_from_sky,
)

RADIUS = 6.0


# ----------------------------------------------------------------------------- bad input

_ENTRY_POINTS = {
    "measure": lambda x: measure(x, psf_fwhm=0.7, pixel_scale=0.168),
    "aperture_flux": lambda x: aperture_flux(x, 3.0),
    "photometry": lambda x: photometry(x, 3.0, 0.01),
    "sky_noise": lambda x: sky_noise(x),
    "radial_profile": lambda x: radial_profile(x),
    "pixel_histogram": lambda x: pixel_histogram(x, np.linspace(-1, 1, 5), 0.1),
}


@pytest.mark.parametrize("name", list(_ENTRY_POINTS))
@pytest.mark.parametrize(
    "images, culprit",
    [
        (np.ones((2, 5, 32, 32), np.float32), "look channels-first (N, C, H, W)"),
        (np.ones((2, 32, 32, 5), bool), "real numbers, got dtype bool"),
        (np.full((2, 32, 32, 5), "1.0"), "real numbers, got dtype <U3"),
        (np.ones((2, 32, 32, 5), np.complex64), "real numbers, got dtype complex64"),
        (np.ones((32, 5)), "must be (N, H, W, C) or (N, H, W), got shape (32, 5)"),
    ],
    ids=["channels-first", "bool", "strings", "complex", "2-d"],
)
def test_every_stamp_entry_point_refuses_layout_and_dtype_confusion(name, images, culprit):
    """#18: the stamp-taking entry points share one check; a channels-first batch (what the
    GalaxiesML file stores on disk) or a non-numeric dtype names the function and the shape."""
    with pytest.raises(ValueError) as info:
        _ENTRY_POINTS[name](images)
    assert str(info.value).startswith(name) and culprit in str(info.value)


# ----------------------------------------------------------------------------- closed forms


def test_asinh_mag_matches_pogson_when_bright_and_stays_finite_when_faint():
    b = np.array([0.5, 2.0])
    f = np.array([[1e4, 3e5]])
    np.testing.assert_allclose(asinh_mag(f, b), 27.0 - 2.5 * np.log10(f), atol=1e-6)
    # zero flux: m = zp - 2.5 log10(b); monotonic and finite through negative fluxes
    np.testing.assert_allclose(asinh_mag(np.zeros(2), b), 27.0 - 2.5 * np.log10(b))
    x = np.linspace(-5, 5, 101)[:, None] * b
    m = asinh_mag(x, b, zero_point=30.0)
    assert np.all(np.isfinite(m)) and np.all(np.diff(m, axis=0) < 0)
    with pytest.raises(ValueError, match="softening"):
        asinh_mag(f, np.array([1.0, 0.0]))


def test_aperture_flux_exact_overlap_and_gaussian_enclosed_flux():
    ones = np.ones((1, 32, 32, 2))
    np.testing.assert_allclose(aperture_flux(ones, 5.3), np.pi * 5.3**2, rtol=1e-9)
    from scipy.special import ndtr

    s, r = 8.0, 16.0  # large against a pixel, so flux varies little within one
    x = np.arange(96) - 47.5
    p1 = ndtr((x + 0.5) / s) - ndtr((x - 0.5) / s)  # pixel-integrated unit Gaussian
    g = np.outer(p1, p1)
    expected = 1 - np.exp(-(r**2) / (2 * s**2))  # enclosed fraction of a 2-D Gaussian
    assert aperture_flux(g[None, ..., None], r)[0, 0] == pytest.approx(expected, rel=2e-3)


def test_colours_are_adjacent_differences_with_band_names():
    mags = np.array([[22.0, 21.5, 21.2, 21.1, 21.05]])
    c = colours(mags)
    assert list(c) == ["g-r", "r-i", "i-z", "z-y"] == colour_names()
    np.testing.assert_allclose([c[k][0] for k in c], [0.5, 0.3, 0.1, 0.05])
    assert list(colours(mags[:, :3], bands=("u", "v", "w"))) == ["u-v", "v-w"]


def test_radial_profile_and_pixel_histogram():
    yy, xx = np.mgrid[:32, :32] - 15.5
    img = np.hypot(xx, yy)[None, ..., None] * np.array([1.0, 2.0])  # value = radius (× band)
    prof, edges = radial_profile(img)
    # annulus means of r lie within each annulus; band 2 is twice band 1
    assert np.all(prof[0, :, 0] >= edges[:-1]) and np.all(prof[0, :, 0] <= edges[1:])
    np.testing.assert_allclose(prof[0, :, 1], 2 * prof[0, :, 0])
    noise = np.random.default_rng(0).normal(size=(2, 32, 32, 1))  # against a direct loop
    p2, _ = radial_profile(noise, edges=np.array([0.0, 2.5, 7.0, 16.0]))
    r = np.hypot(xx, yy)
    for k, (lo, hi) in enumerate([(0, 2.5), (2.5, 7.0), (7.0, 16.0)]):
        sel = (r >= lo) & (r < hi)
        np.testing.assert_allclose(p2[:, k, 0], noise[:, sel, 0].mean(axis=1))
    h = pixel_histogram(np.zeros((3, 8, 8, 2)), np.linspace(-1, 1, 5))
    np.testing.assert_array_equal(h.sum(axis=1), [192, 192])
    assert h[0, 2] == 192  # asinh(0) = 0 falls in [0, 0.5)


def test_match_redshifts_is_nearest_and_without_replacement():
    pool = np.array([0.1, 0.5, 0.52, 2.0, 3.0])
    idx = match_redshifts(np.array([0.5, 0.51, 2.9]), pool)
    assert sorted(idx.tolist()) == sorted(set(idx.tolist()))
    np.testing.assert_array_equal(idx, [1, 2, 4])
    with pytest.raises(ValueError, match="pool"):
        match_redshifts(np.ones(3), np.ones(2))


# ----------------------------------------------------------------------------- planted defects


def _phot(images, softening):
    return photometry(images, RADIUS, softening)


@pytest.fixture(scope="module")
def phot(population):
    """Photometry of A, B, C with one softening (from A's sky), and the floor A vs B."""
    a = population["A"]
    b_soft = softening_from_sky(np.median(sky_noise(a["image"]), axis=0), RADIUS)
    cols = {k: _phot(population[k]["image"], b_soft) for k in ("A", "B", "C")}
    stats = [k for k in cols["A"] if k != "flag"]
    floor = real_floor(cols["A"], cols["B"], a["redshift"], stats, n_boot=100)
    return {"cols": cols, "soft": b_soft, "stats": stats, "floor": floor}


def _above(res, floor, metric, s, k=4.0):
    """True if ``res`` exceeds the floor by more than k combined bootstrap σ."""
    (o, _, e), (fo, _, fe) = res[metric][s], floor[metric][s]
    return o - fo > k * np.hypot(e, fe)


def test_colour_cast_scores_far_above_floor_on_affected_colours_only(population, phot):
    b = population["B"]
    cast = b["image"].copy()
    cast[..., 1] *= 1.2  # the r band: g-r and r-i change, i-z and z-y do not
    gen = _phot(cast, phot["soft"])
    stats = ["g-r", "r-i", "i-z", "z-y"]
    res = compare_columns(phot["cols"]["A"], gen, population["A"]["redshift"], stats, n_boot=100)
    ratio = floor_ratio(res, phot["floor"])
    for s in ("g-r", "r-i"):
        for metric in ("jsd", "bcd"):
            assert _above(res, phot["floor"], metric, s), (s, metric, res[metric][s])
            assert ratio[metric][s] > 3, (s, metric, ratio[metric][s])
    for s in ("i-z", "z-y"):  # untouched bands: exactly the floor (the same second real sample)
        for metric in ("jsd", "bcd"):
            assert ratio[metric][s] == pytest.approx(1.0, abs=1e-9)


def test_real_vs_real_sits_at_the_floor(population, phot):
    """A third real sample C scores like B on every photometric statistic (within bootstrap)."""
    res = compare_columns(
        phot["cols"]["A"], phot["cols"]["C"], population["A"]["redshift"], phot["stats"], n_boot=100
    )
    for metric in ("jsd", "bcd"):
        for s in phot["stats"]:
            (o, _, e), (fo, _, fe) = res[metric][s], phot["floor"][metric][s]
            assert abs(o - fo) < 4 * np.hypot(e, fe), (metric, s, o, fo)


def test_bright_frame_scores_its_planted_border_excess(population):
    a, b = population["A"], population["B"]
    sky = np.median(sky_noise(a["image"]), axis=0)
    framed = b["image"].astype(np.float64).copy()
    amp = np.array([3.0, 1.0, 2.0, 5.0, 0.5])  # planted, in units of each band's real sky σ
    ring = np.zeros(framed.shape[1:3], bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
    framed[:, ring, :] += amp * sky
    np.testing.assert_allclose(border_excess(framed, a["image"]), amp, atol=0.1)
    np.testing.assert_allclose(border_excess(b["image"], a["image"]), 0.0, atol=0.1)


def test_halved_sky_noise_gives_sky_ratio_one_half(population):
    a, b = population["A"], population["B"]
    quiet = b["clean"] + 0.5 * b["noise"]
    np.testing.assert_allclose(sky_ratio(quiet, a["image"]), 0.5, atol=0.04)
    np.testing.assert_allclose(sky_ratio(b["image"], a["image"]), 1.0, atol=0.08)
    np.testing.assert_allclose(
        np.median(sky_noise(a["image"]), axis=0), population_sky(), rtol=0.06
    )


def population_sky():
    from conftest import SKY

    return SKY


def test_photoz_recovers_redshift_and_flags_shuffled_conditioning(population, phot):
    from morph_metrics import PhotoZ

    tr = population["train"]
    train_cols = _phot(tr["image"], phot["soft"])
    pz = PhotoZ(max_iter=80).fit(photoz_features(train_cols), tr["redshift"])
    z_a = population["A"]["redshift"]
    pred = pz.predict(photoz_features(phot["cols"]["A"]))
    good = photoz_metrics(z_a, pred)
    shuffled = photoz_metrics(np.random.default_rng(0).permutation(z_a), pred)
    assert good["n"] == len(z_a)
    assert good["nmad"] < 0.1 and good["outlier_rate"] < 0.15, good
    assert shuffled["outlier_rate"] > 0.5 and shuffled["outlier_rate"] > 4 * good["outlier_rate"]
    # closed form of the metrics
    m = photoz_metrics(np.array([0.0, 1.0, 1.0, 3.0]), np.array([0.0, 1.2, 1.0, 3.0]))
    assert m["bias"] == 0.0 and m["outlier_rate"] == 0.0 and m["nmad"] == 0.0
    m = photoz_metrics(np.array([1.0, 1.0, 1.0]), np.array([1.0, 1.4, 0.6]))
    assert m["outlier_rate"] == pytest.approx(2 / 3)

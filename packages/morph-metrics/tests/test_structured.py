"""Segmentation on structured galaxies (knots, bulge + disk + knots, spiral, an overlapping pair):
the central galaxy is kept whole, a real neighbour is split off, and the Sérsic fit agrees with
GalSim truth and with statmorph on the truth-based segmentation map (issue #16, item 5).

Delta PSF and a bright galaxy: the case where the pre-#16 segmentation broke the galaxy into
fragments (it fails every test here but the last, which plants that segmentation on purpose).
"""

import numpy as np
import pytest
from morph_metrics import measure
from structured_stamps import KINDS, OLD_SEGMENTATION, ideal_statmorph, make_stamp, psf_kernel

SIZE, SNR = 72, 1000.0
SEEDS = (11, 12)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for kind in KINDS:
        stamps = [make_stamp(kind, s, size=SIZE, psf_fwhm=0.0, snr=SNR) for s in SEEDS]
        imgs = np.stack([s["image"] for s in stamps])
        cols = measure(imgs, psf=psf_kernel(stamps[0]), n_workers=1)
        out[kind] = (stamps, cols)
    return out


def _coverage(stamps, cols):
    ideal = np.array([s["ideal_seg"].sum() for s in stamps], float)
    return cols["isophotal_area"] / ideal


@pytest.mark.parametrize("kind", ["knots", "bulge_disk_knots", "spiral"])
def test_structured_galaxy_is_one_segment(runs, kind):
    stamps, cols = runs[kind]
    assert np.all(cols["flag"] == 0), cols["fail_reason"]
    # the central segment spans (at least most of) the galaxy's 1-sigma isophote, not a fragment
    assert np.all(_coverage(stamps, cols) >= 0.8), _coverage(stamps, cols)


@pytest.mark.parametrize("kind", ["knots", "spiral", "pair"])
def test_sersic_fit_matches_truth(runs, kind):
    stamps, cols = runs[kind]
    t = {k: np.array([s["truth"][k] for s in stamps]) for k in ("n", "r_half", "e")}
    assert np.all(np.abs(cols["ellipticity"] - t["e"]) <= 0.08), (cols["ellipticity"], t["e"])
    assert np.all(np.abs(cols["semi_major_axis"] / t["r_half"] - 1) <= 0.3), (
        cols["semi_major_axis"],
        t["r_half"],
    )
    if kind != "spiral":  # arms + clumps change the profile: no single Sérsic n to compare
        assert np.all(np.abs(cols["sersic_index"] / t["n"] - 1) <= 0.3), (cols["sersic_index"], t)


def test_pair_neighbour_is_split_off(runs):
    stamps, cols = runs["pair"]
    assert np.all(cols["flag"] == 0), cols["fail_reason"]
    assert np.all(_coverage(stamps, cols) >= 0.8)
    # a neighbour left in the segment pulls the light-weighted centre towards it (by ~5 px)
    for i, s in enumerate(stamps):
        d = ideal_statmorph(s)
        assert np.hypot(cols["x_centroid"][i] - d["x"], cols["y_centroid"][i] - d["y"]) < 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_statmorph_on_ideal_segmentation(runs, kind):
    stamps, cols = runs[kind]
    for i, s in enumerate(stamps):
        d = ideal_statmorph(s)
        assert cols["sersic_index"][i] == pytest.approx(d["n"], rel=0.15)
        assert cols["semi_major_axis"][i] == pytest.approx(d["r_half"], rel=0.15)
        assert cols["ellipticity"][i] == pytest.approx(d["e"], abs=0.03)


def test_old_segmentation_fragments_the_galaxy(runs):
    """Planted defect: the pre-#16 settings must fail the coverage criterion used above."""
    stamps, _ = runs["knots"]
    imgs = np.stack([s["image"] for s in stamps])
    old = measure(imgs, psf=psf_kernel(stamps[0]), n_workers=1, **OLD_SEGMENTATION)
    assert np.all(_coverage(stamps, old) < 0.5), _coverage(stamps, old)

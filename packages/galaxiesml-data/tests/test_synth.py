"""The synthetic population: rendering against GalSim, physics trends, truth, determinism."""

from __future__ import annotations

import galsim
import h5py
import numpy as np
import pytest
from galaxiesml_data import BANDS, PIXEL_SCALE, PSF_FWHM, open_split, sky_sigma, synthesize
from galaxiesml_data._synth import MOFFAT_BETA, render_galaxy, sample_galaxy


def _population(n=3000, seed=11):
    rng = np.random.default_rng(seed)
    gals = [sample_galaxy(rng) for _ in range(n)]
    return {k: np.array([g[k] for g in gals]) for k in gals[0]}


def test_fft_rendering_matches_direct_galsim_convolution():
    """Each band of our draw-once-then-FFT render equals GalSim's Convolve(bulge + disk, Moffat)."""
    rng = np.random.default_rng(4)
    errs = []
    for _ in range(3):
        g = sample_galaxy(rng)
        g["companion"] = False
        g["bulge_hlr"], g["disk_hlr"] = max(g["bulge_hlr"], 1.0), min(max(g["disk_hlr"], 2.0), 6.0)
        primary, companion = render_galaxy(g, 32)
        assert not companion.any()
        for k, b in enumerate(BANDS):
            gal = galsim.Add(
                galsim.Sersic(
                    g["bulge_n"],
                    half_light_radius=g["bulge_hlr"] * PIXEL_SCALE,
                    flux=g["f_bulge"][k],
                ).shear(q=g["bulge_q"], beta=g["pos_angle"] * galsim.degrees),
                galsim.Sersic(
                    1.0, half_light_radius=g["disk_hlr"] * PIXEL_SCALE, flux=g["f_disk"][k]
                ).shear(q=g["disk_q"], beta=g["pos_angle"] * galsim.degrees),
            )
            psf = galsim.Moffat(beta=MOFFAT_BETA, fwhm=PSF_FWHM[b])
            ref = galsim.Convolve(gal, psf).drawImage(
                nx=32, ny=32, scale=PIXEL_SCALE, offset=(g["dx"], g["dy"])
            )
            ref = ref.array
            errs.append(np.abs(primary[k] - ref).max() / ref.max())
            assert primary[k].sum() == pytest.approx(ref.sum(), rel=0.01)
    # pixel-grid convolution with the sampled Moffat: within 4% of the peak, ~1.5% on average
    assert max(errs) < 0.04 and np.mean(errs) < 0.02, errs


def test_redshift_distribution_resembles_galaxiesml():
    p = _population()
    z = p["z"]
    assert z.min() >= 0.01 and z.max() <= 4.0
    assert 0.85 < (z < 1.5).mean() < 0.97  # bulk below 1.5 ...
    assert (z > 2.5).mean() > 0.01 and z.max() > 3.5  # ... with a tail to 4
    assert 0.3 < np.median(z) < 0.8


def test_sizes_shrink_and_bulges_fade_with_redshift():
    p = _population()
    z = p["z"]
    bins = [(0.0, 0.4), (0.4, 0.8), (0.8, 1.5), (1.5, 4.0)]
    hlr = [p["disk_hlr"][(z >= lo) & (z < hi)].mean() for lo, hi in bins]
    bt = [p["bulge_fraction"][(z >= lo) & (z < hi)].mean() for lo, hi in bins]
    assert all(np.diff(hlr) < 0), hlr
    assert all(np.diff(bt) < 0), bt


def test_surface_brightness_dims_as_one_plus_z_to_the_fourth():
    p = _population(800)
    ok = (p["disk_hlr"] > 0.4) & (p["disk_hlr"] < 25)  # not clipped
    sb_obs = p["ref_flux"] / p["disk_hlr"] ** 2
    sb_rest = 10 ** (-0.4 * p["abs_mag"]) / p["disk_hlr_kpc"] ** 2
    c = np.log10(sb_obs / sb_rest * (1 + p["z"]) ** 4)[ok]
    assert c.std() < 1e-9 * abs(c.mean()) + 1e-9
    c3 = np.log10(sb_obs / sb_rest * (1 + p["z"]) ** 3)[ok]
    assert c3.std() > 0.05  # the test can tell (1+z)^3 from (1+z)^4


def test_catalogue_trends_in_rendered_files(synth32):
    ds = open_split(synth32["training"])
    c, z = ds.columns, ds.redshift
    # measured (i band, PSF-convolved) half-light radius falls with redshift
    hlr = c["i_half_light_radius"]
    means = [hlr[(z >= lo) & (z < hi)].mean() for lo, hi in ((0, 0.4), (0.4, 0.9), (0.9, 4.1))]
    assert means[0] > means[1] > means[2], means
    # colours redden with bulge fraction at fixed redshift
    low = z < 0.6
    gi = (c["g_cmodel_mag"] - c["i_cmodel_mag"])[low]
    bt = c["truth_bulge_fraction"][low]
    assert np.corrcoef(np.argsort(np.argsort(gi)), np.argsort(np.argsort(bt)))[0, 1] > 0.6
    # the five bands differ and fluxes are consistent with magnitudes (ZP 27)
    np.testing.assert_allclose(c["i_cmodel_mag"], 27 - 2.5 * np.log10(c["truth_i_flux"]), atol=1e-4)
    assert np.all(np.ptp(np.stack([c[f"{b}_cmodel_mag"] for b in BANDS]), axis=0) > 0.05)
    # sersic column is the truth light-weighted index; measured axes are ordered; PA in degrees
    frac = c["truth_i_bulge_flux"] / c["truth_i_flux"]
    np.testing.assert_allclose(
        c["i_sersic_index"], frac * c["truth_bulge_n"] + (1 - frac), rtol=1e-6
    )
    assert np.all(c["i_major_axis"] >= c["i_minor_axis"]) and np.all(np.abs(c["i_pos_angle"]) <= 90)
    assert np.all((c["i_ellipticity"] >= 0) & (c["i_ellipticity"] < 1))
    # measured ellipticity follows the disk's truth axis ratio for disk-dominated galaxies
    disky = (frac < 0.2) & (c["truth_disk_hlr"] > 2)
    assert np.corrcoef(c["i_ellipticity"][disky], 1 - c["truth_disk_q"][disky])[0, 1] > 0.7
    # some galaxies have companions, most do not
    assert 0.1 < c["truth_has_companion"].mean() < 0.4
    # pixel flux of isolated compact galaxies matches their truth flux (noise: sigma * 32 px)
    x = ds.images[:]
    iso = (~c["truth_has_companion"]) & (c["truth_disk_hlr"] < 2.5) & (c["truth_bulge_hlr"] < 2)
    assert iso.sum() > 10
    for k, b in enumerate(BANDS):
        resid = x[iso, :, :, k].sum(axis=(1, 2)) - c[f"truth_{b}_flux"][iso]
        assert np.all(np.abs(resid) < 6 * sky_sigma(b) * 32 + 0.08 * c[f"truth_{b}_flux"][iso]), b


def test_deterministic_across_worker_counts_and_chunking(tmp_path):
    a = synthesize(tmp_path / "a", 10, 3, 2, size=16, seed=9, workers=1, progress=False)
    b = synthesize(tmp_path / "b", 10, 3, 2, size=16, seed=9, workers=2, progress=False, chunk=3)
    for split in a:
        with h5py.File(a[split]) as fa, h5py.File(b[split]) as fb:
            assert sorted(fa) == sorted(fb)
            for k in fa:
                np.testing.assert_array_equal(fa[k][()], fb[k][()], err_msg=f"{split}:{k}")
    # a larger run starts with the same galaxies, other seeds differ
    c = synthesize(tmp_path / "c", 12, 0, 0, size=16, seed=9, workers=1, progress=False)
    d = synthesize(tmp_path / "d", 4, 0, 0, size=16, seed=10, workers=1, progress=False)
    np.testing.assert_array_equal(
        open_split(c["training"]).images[:10], open_split(a["training"]).images[:]
    )
    assert not np.array_equal(
        open_split(d["training"]).images[:4], open_split(a["training"]).images[:4]
    )
    assert len(open_split(c["testing"])) == 0


def test_127_variant_is_zero_offset_crop(tmp_path):
    p = synthesize(tmp_path, 3, 1, 1, size=64, seed=2, workers=1, progress=False, also_127=True)
    assert p["training_127"].name == "5x127x127_training_with_morphology.hdf5"
    big, small = open_split(p["training_127"]), open_split(p["training"])
    assert big.images.shape == (3, 127, 127, 5)
    np.testing.assert_array_equal(small.images[:], big.images[:][:, 31:95, 31:95])
    np.testing.assert_array_equal(
        small.columns["i_half_light_radius"], big.columns["i_half_light_radius"]
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_train"):
        synthesize("/tmp/never", 0, 1, 1, progress=False)
    with pytest.raises(ValueError, match="size"):
        synthesize("/tmp/never", 1, 1, 1, size=4, progress=False)


def test_unguarded_script_with_workers_fails_once_with_the_fix(tmp_path):
    """A script calling synthesize(workers=2) at module level: the spawned workers re-import it.
    They used to re-run synthesize (truncating the parent's open files) and mp.Pool respawned them
    forever; now the child refuses before opening anything, the parent stops with one message
    naming the fix, and no partial file is left behind."""
    import subprocess
    import sys

    script = tmp_path / "make_data.py"
    out = tmp_path / "data"
    script.write_text(
        "from galaxiesml_data import synthesize\n"
        f"synthesize({str(out)!r}, 8, 0, 0, size=16, workers=2, chunk=4, progress=False)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: a worker process died; synthesize(workers > 1)")
    assert 'if __name__ == "__main__":' in last
    assert not list(out.glob("*.hdf5"))

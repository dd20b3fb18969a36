"""The paper protocol against analytic second moments, centre selection and input handling."""

import concurrent.futures as cf
import multiprocessing as mp

import numpy as np
import pytest
from morph_metrics import Flag, measure


def gaussian_blob(size, sig_maj, sig_min, theta_deg, flux=5000.0, x0=None, y0=None):
    """Point-sampled elliptical Gaussian (N(0, C) with C from the two sigmas and the angle)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    x0 = (size - 1) / 2 if x0 is None else x0
    y0 = (size - 1) / 2 if y0 is None else y0
    t = np.radians(theta_deg)
    u = (x - x0) * np.cos(t) + (y - y0) * np.sin(t)
    v = -(x - x0) * np.sin(t) + (y - y0) * np.cos(t)
    g = np.exp(-0.5 * (u / sig_maj) ** 2 - 0.5 * (v / sig_min) ** 2)
    return flux * g / (2 * np.pi * sig_maj * sig_min)


@pytest.mark.parametrize("sig_maj, sig_min, theta", [(4.0, 2.0, 30.0), (3.0, 2.5, -60.0)])
def test_paper_moments_match_analytic_gaussian(sig_maj, sig_min, theta):
    rng = np.random.default_rng(0)
    img = gaussian_blob(64, sig_maj, sig_min, theta) + rng.normal(0, 0.05, (64, 64))
    cols = measure(img[None, ..., None].astype(np.float32), protocol="paper")
    # the protocol smooths with a sigma = 1.5 px Gaussian first: variances add
    a = np.sqrt(sig_maj**2 + 1.5**2)
    b = np.sqrt(sig_min**2 + 1.5**2)
    assert cols["flag"][0] == 0
    assert cols["semi_major_axis"][0] == pytest.approx(a, rel=0.05)
    assert cols["ellipticity"][0] == pytest.approx(1 - b / a, rel=0.05)
    assert cols["orientation"][0] == pytest.approx(theta, abs=3.0)
    e = cols["ellipticity"][0]
    assert cols["sersic_index"][0] == pytest.approx(np.log(2) / np.log((1 + e) / (1 - e)))
    assert cols["isophotal_area"][0] > np.pi * a * b  # isophote is far outside 1 sigma


def test_paper_takes_central_segment_not_first_in_scan_order():
    rng = np.random.default_rng(1)
    img = gaussian_blob(64, 2.0, 2.0, 0.0, flux=3000, x0=10, y0=8)  # first in scan order
    img += gaussian_blob(64, 4.0, 2.0, 0.0, flux=3000)
    img += rng.normal(0, 0.05, img.shape)
    cols = measure(img[None, ..., None], protocol="paper")
    assert cols["x_centroid"][0] == pytest.approx(31.5, abs=0.5)
    assert cols["y_centroid"][0] == pytest.approx(31.5, abs=0.5)
    assert cols["ellipticity"][0] > 0.25


def _batch(n=6, seed=2):
    rng = np.random.default_rng(seed)
    imgs = [
        gaussian_blob(48, rng.uniform(2, 4), rng.uniform(1.5, 2), rng.uniform(0, 180))
        + rng.normal(0, 0.05, (48, 48))
        for _ in range(n)
    ]
    return np.stack(imgs)[..., None].astype(np.float32)


def test_bad_stamps_are_flagged_not_raised():
    imgs = _batch(4)
    imgs[1, 3, 3, 0] = np.nan
    imgs[2] = 0.0
    imgs[3] = np.random.default_rng(3).normal(0, 1, imgs[3].shape)  # pure noise
    imgs[3] += 0.02 - imgs[3].mean()  # positive total flux, but no galaxy
    for protocol in ("paper", "statmorph"):
        cols = measure(imgs, protocol=protocol, pixel_scale=0.168, psf_fwhm=0.7, n_workers=1)
        assert cols["flag"][0] & (Flag.NONFINITE | Flag.NONPOSITIVE_FLUX | Flag.FAILED) == 0
        assert np.isfinite(cols["semi_major_axis"][0])
        assert cols["flag"][1] == Flag.NONFINITE
        assert cols["flag"][2] == Flag.NONPOSITIVE_FLUX
        assert cols["flag"][3] != 0
        # the reason is kept: empty exactly for good stamps, a sentence for each flagged one
        assert list(cols["fail_reason"] == "") == list(cols["flag"] == 0)
        assert "NaN/inf" in cols["fail_reason"][1]
        assert "total flux" in cols["fail_reason"][2]
        assert cols["fail_reason"][3] != ""
        # failed rows are NaN; a noise blob may be "measured" but then carries a statmorph flag
        nan_rows = [1, 2] + ([3] if cols["flag"][3] < Flag.STATMORPH_BAD else [])
        for k in ("semi_major_axis", "ellipticity", "sersic_index", "isophotal_area"):
            assert np.all(np.isnan(cols[k][nan_rows])), (protocol, k)


@pytest.mark.parametrize(
    "images, kwargs, match",
    [
        (np.ones((4, 4)), {}, "must be"),
        (np.ones((0, 8, 8, 1)), {}, "empty"),
        (np.ones((1, 8, 8, 1)), {"band": 2}, "band"),
        (np.ones((1, 8, 8, 1)), {"protocol": "sep"}, "protocol"),
        (np.ones((1, 8, 8, 1)), {}, "needs a PSF: psf_fwhm=.*survey="),
        (np.ones((1, 8, 8, 1)), {"psf_fwhm": 0.7}, "pixel_scale= .*required"),
        (np.ones((1, 8, 8, 1)), {"band": "g", "psf_fwhm": 0.7}, "needs survey="),
        (np.ones((1, 8, 8, 1)), {"psf": np.zeros((3, 3))}, "psf"),
        (np.ones((1, 8, 8, 1)), {"psf": np.ones((1, 1)), "variance": np.ones((8, 8))}, "variance"),
        (np.ones((2, 8, 8, 1)), {"protocol": "paper", "mask": np.zeros((2, 8, 8))}, "boolean"),
        (
            np.ones((1, 8, 8, 1)),
            {"psf": np.ones((1, 1)), "gain": 2.0, "variance": np.ones((1, 8, 8))},
            "not both",
        ),
        (np.array([[[["a"]]]]), {}, "real numbers"),
    ],
)
def test_bad_input_raises_clear_error(images, kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure(images, **kwargs)


def test_executors_give_identical_results_in_order():
    imgs = _batch(9)
    ref = measure(imgs, protocol="paper", n_workers=1)
    with cf.ThreadPoolExecutor(2) as ex:
        thr = measure(imgs, protocol="paper", executor=ex, chunk_size=2)
    with cf.ProcessPoolExecutor(2) as ex:
        prc = measure(imgs, protocol="paper", executor=ex, chunk_size=4)
    dflt = measure(imgs, protocol="paper", chunk_size=3, progress=True)  # own process pool
    for other in (thr, prc, dflt):
        assert other.keys() == ref.keys()
        for k in ref:
            np.testing.assert_array_equal(other[k], ref[k], err_msg=k)
    # rows really are per-stamp: measuring a permutation permutes the rows
    perm = np.random.default_rng(0).permutation(9)
    rev = measure(imgs[perm], protocol="paper", chunk_size=2, n_workers=1)
    np.testing.assert_array_equal(rev["semi_major_axis"], ref["semi_major_axis"][perm])


def test_own_pool_spawns_after_an_accelerator_backend_started(monkeypatch):
    """CUDA does not survive a fork: once JAX runs on a GPU (here a stand-in module reporting
    one), measure's own pool must spawn its workers — and give the same rows as in-process."""
    import sys
    import types

    from morph_metrics import _measure

    made = []
    real_pool = cf.ProcessPoolExecutor

    def recording_pool(*args, **kwargs):
        made.append(kwargs.get("mp_context"))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(_measure.cf, "ProcessPoolExecutor", recording_pool)
    imgs = _batch(6)
    ref = measure(imgs, protocol="paper", n_workers=1)

    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(default_backend=lambda: "cpu"))
    measure(imgs, protocol="paper", chunk_size=3, n_workers=2)
    assert made[-1] is None  # CPU-only JAX: the platform default (fork on Linux)

    monkeypatch.setitem(sys.modules, "jax", types.SimpleNamespace(default_backend=lambda: "gpu"))
    got = measure(imgs, protocol="paper", chunk_size=3, n_workers=2)
    assert made[-1].get_start_method() == "spawn"
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)


def _imported(name: str) -> bool:
    import sys

    return name in sys.modules


@pytest.mark.skipif(
    mp.get_start_method() != "fork",
    reason="preloading serves fork pools (Linux's default); spawned workers import afresh",
)
def test_fork_pool_workers_inherit_the_preloaded_modules(monkeypatch):
    """A task's imports (statmorph: ~5 s) are paid once in the parent, not by every worker of
    every pool: the parent imports ``preload`` before forking, so a worker already has it."""
    import sys

    from morph_metrics import _measure

    monkeypatch.delitem(sys.modules, "wave", raising=False)  # a stdlib module nothing here uses
    with _measure._process_pool(1) as pool:
        assert not pool.submit(_imported, "wave").result()
    with _measure._process_pool(1, preload=("wave",)) as pool:
        assert pool.submit(_imported, "wave").result()


def test_own_pools_preload_what_the_protocol_imports(monkeypatch):
    from morph_metrics import _measure, measure_chunks

    asked = []
    real = _measure._process_pool

    def recording(n_workers, preload=()):
        asked.append(tuple(preload))
        return real(n_workers, preload)

    monkeypatch.setattr(_measure, "_process_pool", recording)
    imgs = _batch(6)
    measure(imgs, protocol="paper", chunk_size=3, n_workers=2)
    measure_chunks(lambda i, j: imgs[i:j], 6, protocol="paper", chunk_size=3, n_workers=2)
    assert asked == [("photutils.segmentation",)] * 2
    assert "statmorph" in _measure._task_modules("statmorph")

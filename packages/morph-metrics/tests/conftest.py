"""A small real-like five-band galaxy population rendered with GalSim, for the photometry tests.

Each galaxy: an exponential disk (GalSim, PSF-convolved, 32×32 px) drawn once and scaled per band
by a toy redshift-dependent SED (a 4000 Å break moving through g r i z y), magnitudes fainter with
z, plus Gaussian sky noise of a fixed σ per band. The noise-free image and the noise are kept
apart so tests can plant defects (halved noise) exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

SIZE = 32
SKY = np.array([0.05, 0.07, 0.11, 0.19, 0.36])  # per-band sky σ, flux units (ZP 27), like HSC
LAMBDA = np.array([4754.0, 6175.0, 7711.0, 8898.0, 9762.0])  # Å


def _sed(lam_rest: np.ndarray) -> np.ndarray:
    """f_ν of a toy galaxy: a rising continuum with a smooth ×0.4 break at 4000 Å."""
    brk = 0.4 + 0.6 / (1 + np.exp(-(lam_rest - 4000.0) / 150.0))
    return (lam_rest / 5000.0) ** 1.5 * brk


def render(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` galaxies: ``clean``, ``noise`` ``(n, 32, 32, 5)`` float64, ``image`` = their sum
    (float32), ``redshift (n,)``."""
    import galsim

    rng = np.random.default_rng(seed)
    z = rng.uniform(0.05, 3.0, n)
    m_i = np.clip(19.5 + 1.6 * z + rng.normal(0, 0.5, n), 17.0, 24.5)
    psf = galsim.Gaussian(fwhm=0.7)
    clean = np.empty((n, SIZE, SIZE, 5))
    for k in range(n):
        hlr = float(np.clip(0.9 / (1 + z[k]) * 10 ** rng.normal(0, 0.15), 0.15, 1.5))  # arcsec
        gal = galsim.Exponential(half_light_radius=hlr).shear(
            q=float(rng.uniform(0.4, 1.0)), beta=float(rng.uniform(0, np.pi)) * galsim.radians
        )
        im = galsim.Convolve(gal, psf).drawImage(nx=SIZE, ny=SIZE, scale=0.168).array
        sed = _sed(LAMBDA / (1 + z[k]))
        flux = 10 ** (-0.4 * (m_i[k] - 27.0)) * sed / sed[2]
        clean[k] = im[..., None] * flux
    noise = rng.normal(size=clean.shape) * SKY
    return {
        "clean": clean,
        "noise": noise,
        "image": (clean + noise).astype(np.float32),
        "redshift": z,
    }


def _take(d: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in d.items()}


@pytest.fixture(scope="session")
def population():
    """Disjoint real samples of one population: ``A`` (240, the reference), ``B`` and ``C`` (240
    each, redshift-matched row by row to A by ``match_redshifts`` from pools of 360) and ``train``
    (800, for the photo-z)."""
    from morph_metrics import match_redshifts

    a = render(240, seed=1)
    out = {"A": a, "train": render(800, seed=4)}
    for name, seed in (("B", 2), ("C", 3)):
        pool = render(360, seed=seed)
        out[name] = _take(pool, match_redshifts(a["redshift"], pool["redshift"]))
    return out

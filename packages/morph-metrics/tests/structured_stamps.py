"""Structured galaxy stamps with known truth, rendered with GalSim (tests and bench).

Four kinds, each a bright, extended galaxy at the stamp centre with Gaussian sky noise:

* ``knots``: a Sérsic disk (1 <= n <= 1.5) with 35 % of its light in star-forming knots
  (``galsim.RandomKnots`` following the disk profile, each knot a 0.1" Gaussian).
* ``bulge_disk_knots``: a de Vaucouleurs bulge (B/T 0.25) + exponential disk + knots (30 %); no
  single Sérsic index, so ``n`` truth is NaN.
* ``spiral``: an exponential disk modulated by a two-armed logarithmic spiral (amplitude 0.7,
  in the disk plane) plus clumps (25 %).
* ``pair``: a Sérsic galaxy with knots and an overlapping companion (30-60 % of its flux, 2-3
  half-light radii away); truth is the central galaxy.

Truth: ``e = 1 - q`` (every component shares one shear), ``n`` of the smooth profile the knots
follow (NaN for bulge + disk), ``r_half`` the half-light semi-major axis (px) of the intrinsic,
PSF-free central galaxy measured in ellipses of the true q and angle (so knot shot noise is in
the truth). ``ideal_seg``: pixels where the noiseless PSF-convolved central galaxy exceeds the
sky sigma (and, for the pair, the companion); ``ideal_mask``: pixels the companion dominates.
"""

from __future__ import annotations

import numpy as np

KINDS = ("knots", "bulge_disk_knots", "spiral", "pair")
SCALE = 0.168  # arcsec / px


def _half_light_sma(img: np.ndarray, x0: float, y0: float, q: float, beta: float) -> float:
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]].astype(np.float64)
    dx, dy = xx - x0, yy - y0
    u = dx * np.cos(beta) + dy * np.sin(beta)
    v = -dx * np.sin(beta) + dy * np.cos(beta)
    r = np.sqrt(u**2 + (v / q) ** 2).ravel()
    order = np.argsort(r)
    cum = np.cumsum(img.ravel()[order])
    return float(r[order][np.searchsorted(cum, 0.5 * cum[-1])])


def _draw(prof, size: int, scale: float, **kw) -> np.ndarray:
    return prof.drawImage(nx=size, ny=size, scale=scale, **kw).array.astype(np.float64)


def make_stamp(
    kind: str, seed: int, size: int = 96, psf_fwhm: float = 0.5, snr: float = 400.0
) -> dict:
    """One stamp: ``image (size, size)``, ``truth`` dict (n, r_half px, e), ``ideal_seg``,
    ``ideal_mask``, ``sky_sigma``, ``psf`` kernel (None for psf_fwhm=0: a delta PSF)."""
    import galsim

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rng = np.random.default_rng(seed)
    grng = galsim.BaseDeviate(seed + 1)
    q = float(rng.uniform(0.45, 0.9))
    beta = float(rng.uniform(0, np.pi))
    hlr_px = float(rng.uniform(0.08, 0.11) * size)  # circularized, px
    hlr = hlr_px * SCALE
    flux = 1000.0
    knot = galsim.Gaussian(sigma=0.1)
    n_true = np.nan
    companion = None
    modulate = False

    def knots(frac, profile, npoints):
        # positions from RandomKnots; each knot a small Gaussian (a Sum draws in real space,
        # where convolving point sources would need a huge FFT)
        kn = galsim.RandomKnots(npoints, profile=profile, rng=grng)
        f = frac * flux / npoints
        return galsim.Sum([knot.withFlux(f).shift(x, y) for x, y in kn.points])

    if kind in ("knots", "pair"):
        n_true = float(rng.uniform(1.0, 1.5))
        disk = galsim.Sersic(n_true, half_light_radius=hlr)
        gal = disk.withFlux(0.65 * flux) + knots(0.35, disk, int(rng.integers(20, 40)))
    elif kind == "bulge_disk_knots":
        disk = galsim.Exponential(half_light_radius=hlr)
        bulge = galsim.DeVaucouleurs(half_light_radius=0.25 * hlr)
        gal = bulge.withFlux(0.25 * flux) + disk.withFlux(0.45 * flux)
        gal = gal + knots(0.30, disk, int(rng.integers(20, 40)))
    else:  # spiral: the disk is modulated in numpy below, clumps added here
        n_true = 1.0
        disk = galsim.Exponential(half_light_radius=hlr)
        gal = knots(0.25, disk, int(rng.integers(15, 30)))
        modulate = True
    gal = gal.shear(q=q, beta=beta * galsim.radians)
    big = 2 * size
    intrinsic = _draw(gal, big, SCALE, method="no_pixel")
    if modulate:
        yy, xx = np.mgrid[:big, :big] - (big - 1) / 2.0
        u = xx * np.cos(beta) + yy * np.sin(beta)
        v = (-xx * np.sin(beta) + yy * np.cos(beta)) / q
        r, phi = np.hypot(u, v), np.arctan2(v, u)
        rd = hlr_px / 1.678  # exponential scale length, px
        arms = 1 + 0.7 * np.cos(2 * (phi - np.log(r / rd + 1e-3) / np.tan(np.radians(20))))
        smooth = np.exp(-r / rd) * arms
        intrinsic += 0.75 * flux * smooth / smooth.sum()
    if kind == "pair":
        sep = float(rng.uniform(2.0, 3.0)) * hlr
        ang = float(rng.uniform(0, 2 * np.pi))
        cflux = float(rng.uniform(0.3, 0.6)) * flux
        comp = galsim.Sersic(float(rng.uniform(1, 3)), half_light_radius=0.6 * hlr, flux=cflux)
        comp = comp.shear(
            q=float(rng.uniform(0.5, 1)), beta=float(rng.uniform(0, np.pi)) * galsim.radians
        )
        companion = comp.shift(sep * np.cos(ang), sep * np.sin(ang))
    r_half = _half_light_sma(intrinsic, (big - 1) / 2, (big - 1) / 2, q, beta)
    # observed: intrinsic (pixel-integrated) convolved with the PSF, cropped to the stamp
    lo = (big - size) // 2
    if psf_fwhm > 0:
        from scipy.signal import fftconvolve

        kern = _draw(galsim.Gaussian(fwhm=psf_fwhm), 31, SCALE)
        kern /= kern.sum()
        central = fftconvolve(intrinsic, kern, mode="same")[lo : lo + size, lo : lo + size]
    else:
        kern = None
        central = intrinsic[lo : lo + size, lo : lo + size].copy()
    comp_img = np.zeros_like(central)
    if companion is not None:
        cp = (
            galsim.Convolve(companion, galsim.Gaussian(fwhm=psf_fwhm))
            if psf_fwhm > 0
            else companion
        )
        comp_img = _draw(cp, size, SCALE, method="auto" if psf_fwhm > 0 else "no_pixel")
    # sky sigma from the requested S/N of the central galaxy (GalSim's optimal-S/N definition)
    sky = float(np.sqrt((central**2).sum()) / snr)
    noise = rng.normal(0.0, sky, central.shape)
    image = central + comp_img + noise
    from scipy import ndimage

    above = (central > sky) & (central >= comp_img)
    lab, _ = ndimage.label(above)
    c = size // 2
    seg = lab == lab[c, c]
    mask = (comp_img > sky) & (comp_img > central)
    return {
        "image": image.astype(np.float32),
        "truth": {"n": n_true, "r_half": r_half, "e": 1.0 - q},
        "ideal_seg": seg,
        "ideal_mask": mask,
        "sky_sigma": sky,
        "psf": kern,
    }


def psf_kernel(stamp: dict) -> np.ndarray:
    """The stamp's PSF as a kernel for ``measure(psf=...)`` (``ones((1, 1))``: delta PSF)."""
    return np.ones((1, 1)) if stamp["psf"] is None else stamp["psf"]


def ideal_statmorph(stamp: dict) -> dict[str, float]:
    """statmorph (the same fit ``measure`` runs) on the truth-based segmentation map and mask,
    true sky 0 and the true noise: the best any segmentation can do on this stamp."""
    from morph_metrics._measure import _fit_statmorph, _Params

    p = _Params("statmorph", psf_kernel(stamp), None, 1.5, 5, 1.5, 0.5)
    img = stamp["image"].astype(np.float64)
    var = np.full(img.shape, stamp["sky_sigma"] ** 2)
    out, flag, _ = _fit_statmorph(img, stamp["ideal_seg"], stamp["ideal_mask"], var, p)
    return {
        "n": out["sersic_index"],
        "r_half": out["semi_major_axis"],
        "e": out["ellipticity"],
        "area": out["isophotal_area"],
        "x": out["x_centroid"],
        "y": out["y_centroid"],
        "flag": flag,
    }


#: ``measure`` keyword arguments that reproduce the segmentation before issue #16 (detection on
#: the PSF-convolved stamp only, contrast 0.001, no smoothing before the deblending).
OLD_SEGMENTATION = {"deblend_contrast": 0.001, "deblend_smooth": 0.0, "detect_fwhm": 0.0}

"""Survey parameters (pixel scale, PSF, gain) and the HSC preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Survey:
    """Survey parameters needed by :func:`morph_metrics.measure`.

    Attributes:
        name: label only.
        bands: band names in channel order.
        pixel_scale: arcsec per pixel.
        psf_fwhm: Gaussian PSF FWHM per band, arcsec (same order as ``bands``).
        gain: electrons per image unit for the source Poisson term of the statmorph weight map,
            or None (background-limited: the per-pixel error is the sky RMS).
    """

    name: str
    bands: tuple[str, ...]
    pixel_scale: float
    psf_fwhm: tuple[float, ...]
    gain: float | None = None

    def kwargs(self, band: int | str = 0) -> dict[str, Any]:
        """Keyword arguments for :func:`measure` for one band (index or name)."""
        if isinstance(band, str):
            if band not in self.bands:
                raise ValueError(f"{self.name}: unknown band {band!r}; bands are {self.bands}")
            band = self.bands.index(band)
        if not 0 <= band < len(self.bands):
            raise ValueError(
                f"{self.name}: band index {band} out of range 0..{len(self.bands) - 1}"
            )
        return {
            "band": band,
            "pixel_scale": self.pixel_scale,
            "psf_fwhm": self.psf_fwhm[band],
            "gain": self.gain,
        }


#: Hyper Suprime-Cam Subaru Strategic Program (PDR2 wide) as used by GalaxiesML: bands g,r,i,z,y,
#: 0.168"/px, median seeing FWHM g 0.77", r 0.76", i 0.58", z 0.68", y 0.68" (Aihara et al. 2019).
#: Coadd gain is left None (background-limited errors).
HSC = Survey(
    name="HSC-SSP PDR2 wide",
    bands=("g", "r", "i", "z", "y"),
    pixel_scale=0.168,
    psf_fwhm=(0.77, 0.76, 0.58, 0.68, 0.68),
    gain=None,
)


def gaussian_psf(fwhm_px: float, size: int | None = None) -> np.ndarray:
    """Normalized circular Gaussian PSF kernel ``(size, size)``, FWHM in pixels.

    ``size`` defaults to the odd integer ``2 * ceil(4 sigma) + 1``. Pixel values are the
    Gaussian integrated over each pixel (via error functions), then normalized to sum 1.
    """
    from scipy.special import erf

    if not (np.isfinite(fwhm_px) and fwhm_px > 0):
        raise ValueError(f"gaussian_psf: fwhm must be positive, got {fwhm_px}")
    sigma = fwhm_px * FWHM_TO_SIGMA
    if size is None:
        size = 2 * int(np.ceil(4 * sigma)) + 1
    half = (size - 1) / 2
    edges = np.arange(size + 1) - half - 0.5
    cdf = 0.5 * (1 + erf(edges / (np.sqrt(2) * sigma)))
    w = np.diff(cdf)
    k = np.outer(w, w)
    return k / k.sum()
